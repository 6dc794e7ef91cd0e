"""bf16 LoRA training, three ways, against fp32: speed per step, memory kept for backward, and
how closely the loss agrees.

- fp32: fp32 weights, fp32 compute (the reference).
- bf16: the frozen base weights in bf16, the LoRA weights, gradients and AdamW state in fp32, the
  LoRA products in bf16 (what `dtype` bfloat16, or auto on a bf16 CPU, trains with;
  `engine.training.lora_products_in_base_dtype`).
- bf16 with fp32 LoRA inputs: the same, but peft casts each LoRA layer's input to fp32 and
  multiplies in fp32 (the engine before that function; backward keeps the fp32 copies).
- autocast: fp32 weights, matrix products in bf16 under `torch.autocast` (the base weights are
  cast to bf16 again at every forward).

All start from the same LoRA initialisation and see the same batches (the engine's training
plan and loss), so the per-step losses are directly comparable. They run one step each in turn,
so a noisy neighbour slows all alike. "saved" is what the step's forward keeps for backward
(distinct storages, largest step). On a CPU without native bf16 (see
`engine.model.cpu_native_bf16`) the bf16 variants are emulated; their speed then says nothing
about a bf16 CPU, their losses and memory still do.

Usage: nice -n 10 python bench/bf16_training.py [--mode direct|cot] [--steps 3] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from unittest import mock

import torch

from engine import training
from engine.core.spec import RunSpec
from engine.model import cpu_native_bf16, load_model
from engine.tasks import get_task
from engine.tasks.base import Example
from engine.training import MAX_GRAD_NORM, batch_loss, encode, new_adapter, shared_prefix_length, training_plan

MIB = 2**20


def lora_model(model_name: str, dtype: str):
    spec = RunSpec(kind="sft")
    loaded = load_model(model_name, dtype=dtype)
    torch.manual_seed(0)
    model = new_adapter(loaded.model, spec)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    return loaded.tokenizer, model, params, torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--mode", default="direct", choices=("direct", "cot"), help="direct: SFT rows; cot: RFT rows")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task("unit_conversion")
    rows = task.load("train")[: args.batch_size * args.steps]
    if args.mode == "cot":
        rows = [Example(ex.question, ex.answer, task.completion(ex, "cot")) for ex in rows]
    fp32_lora_inputs = lambda: mock.patch.object(  # noqa: E731
        training, "lora_products_in_base_dtype", lambda base: contextlib.nullcontext()
    )
    variants = {
        "fp32": ("float32", contextlib.nullcontext),
        "bf16": ("bfloat16", contextlib.nullcontext),
        "bf16 with fp32 LoRA inputs": ("bfloat16", fp32_lora_inputs),
        "autocast": ("float32", lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
    }
    models = {name: lora_model(args.model, dtype) for name, (dtype, _) in variants.items()}
    tokenizer = next(iter(models.values()))[0]
    encoded = encode(tokenizer, task, rows, args.mode)
    prefix = shared_prefix_length(encoded)
    plan = training_plan([len(e.ids) for e in encoded], args.batch_size, 1, 1, 0)
    print(f"{args.mode} rows, batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"native bf16: {cpu_native_bf16()}, shared prefix {prefix} tokens")
    print(f"{'step':>4} " + " ".join(f"{name + ' loss':>28} {'s':>6}" for name in variants))
    seconds = dict.fromkeys(variants, 0.0)
    deviation = dict.fromkeys(variants, 0.0)
    saved = dict.fromkeys(variants, 0)
    for step, micro_batches in enumerate(plan, 1):
        cells, losses = [], {}
        for name, (_, setting) in variants.items():
            _, model, params, optimizer = models[name]
            batch = [encoded[i] for i in micro_batches[0]]
            tokens = sum(r.completion_len for r in batch)
            kept: dict[int, int] = {}
            began = time.perf_counter()
            with setting(), torch.autograd.graph.saved_tensors_hooks(lambda t: remember(kept, t), lambda t: t):
                loss = batch_loss(model, batch, prefix, tokenizer.pad_token_id) / tokens
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            took = time.perf_counter() - began
            seconds[name] += took
            saved[name] = max(saved[name], sum(kept.values()))
            losses[name] = loss.item()
            deviation[name] = max(deviation[name], abs(losses[name] - losses["fp32"]) / losses["fp32"])
            cells.append(f"{losses[name]:>28.4f} {took:>6.1f}")
        print(f"{step:>4} " + " ".join(cells), flush=True)
    print("speed vs fp32:  " + ", ".join(f"{name} {seconds['fp32'] / seconds[name]:.2f}x" for name in variants))
    print("max |loss - fp32| / fp32:  " + ", ".join(f"{name} {deviation[name]:.4f}" for name in variants))
    print("saved for backward, MiB:  " + ", ".join(f"{name} {saved[name] / MIB:.0f}" for name in variants))


def remember(kept: dict[int, int], tensor: torch.Tensor) -> torch.Tensor:
    """Counts each storage backward keeps once, however many saved tensors view it."""
    storage = tensor.untyped_storage()
    kept[storage.data_ptr()] = storage.nbytes()
    return tensor


if __name__ == "__main__":
    main()
