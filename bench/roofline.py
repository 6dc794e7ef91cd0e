"""Roofline: how close each stage comes to this CPU's matrix-multiply peak, fp32 and bf16.

First it measures the peak: the best of a few 2048x2048 matrix products per dtype, on
`--threads` threads (2 by default, the machine's cores). Then it runs a short, real piece of each
stage on the real model (default: the embedded SmolLM2-135M) and estimates the FLOPs that
piece needed:

    FLOPs = tokens x parameters x 2            forward (eval, rollout: generation)
    FLOPs = tokens x parameters x 2 x 2        LoRA training (sft, rft)

Full fine-tuning costs 3 forwards (the backward pass computes gradients for the activations and
for the weights). With LoRA the base weights are frozen, so the backward pass computes only the
activation gradients (one forward's worth) plus the LoRA matrices' own (under 1% of the
parameters): about 2 forwards in all. Attention's score products are left out (prompts stay
under ~400 tokens, where they are a few % of the total).

"tokens" are the tokens a stage needs: real tokens, never padding, and a prompt prefix shared by
a batch counted once (the engine computes it once). `pad` shows the share of computed positions
that were padding. achieved GFLOP/s = needed FLOPs / wall time; "of peak" divides it by the
same dtype's peak. bf16 on a CPU without native bf16 (AVX-512 BF16 or AMX) is emulated and far
slower than fp32; this script still measures it, so the table says so.

Usage: nice -n 10 python bench/roofline.py [--dtypes float32,bfloat16] [--train-steps 1]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

from engine.core.spec import RunSpec, default_max_new_tokens
from engine.generation import Sampling, generate
from engine.model import cpu_native_bf16, load_model
from engine.tasks import get_task
from engine.tasks.base import Example
from engine.training import encode, new_adapter, optimizer_step, shared_prefix_length, training_plan

MATMUL_SIZE = 2048
PEAK_SECONDS = 3.0  # repeat the product until this much time has passed (at least 2 runs)


@dataclass
class Measured:
    tokens: int  # needed tokens (see the module docstring)
    computed: int  # positions the model actually ran, padding included
    seconds: float
    forwards: int  # 1 for generation, 2 for LoRA training

    def gflops(self, parameters: int) -> float:
        return self.tokens * parameters * 2 * self.forwards / self.seconds / 1e9


def matmul_peak(dtype: torch.dtype) -> float:
    """GFLOP/s of the best 2048x2048 product; a first, unmeasured product warms the kernels up
    unless one product alone takes seconds (emulated bf16)."""
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, dtype=dtype)
    b = torch.randn(MATMUL_SIZE, MATMUL_SIZE, dtype=dtype)
    best, spent, runs = float("inf"), 0.0, 0
    while runs < 2 or spent < PEAK_SECONDS:
        began = time.perf_counter()
        a @ b
        seconds = time.perf_counter() - began
        spent, runs = spent + seconds, runs + 1
        best = min(best, seconds) if runs > 1 or seconds > PEAK_SECONDS else best
        if spent > 4 * PEAK_SECONDS:
            break
    return 2 * MATMUL_SIZE**3 / best / 1e9


class TokenCounter:
    """Counts the positions the decoder runs: all of them, and those not masked as padding."""

    def __init__(self, model) -> None:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.computed = self.real = 0
        self.handle = base.get_decoder().register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        self.computed += ids.numel()
        self.real += int(mask[:, -ids.shape[1]:].sum()) if mask is not None else ids.numel()

    def close(self) -> None:
        self.handle.remove()


def measure_generation(loaded, prompts: list[str], sampling: Sampling, k: int, batch_size: int) -> Measured:
    counter = TokenCounter(loaded.model)
    began = time.perf_counter()
    generate(loaded.model, loaded.tokenizer, prompts, sampling, num_return_sequences=k, batch_size=batch_size)
    seconds = time.perf_counter() - began
    counter.close()
    # The last generated token of each sequence is never fed back; the counter saw the rest.
    return Measured(counter.real, counter.computed, seconds, 1)


def measure_training(model_name: str, dtype: str, examples: list[Example], mode: str, steps: int, batch_size: int) -> Measured:
    torch.manual_seed(0)
    loaded = load_model(model_name, dtype=dtype)
    spec = RunSpec(kind="sft")
    model = new_adapter(loaded.model, spec)
    model.train()
    encoded = encode(loaded.tokenizer, get_task(spec.task), examples, mode)
    prefix = shared_prefix_length(encoded)
    plan = training_plan([len(e.ids) for e in encoded], batch_size, 1, 1, 0)[:steps]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    tokens = computed = 0
    for micro_batches in plan:
        for batch in micro_batches:
            rows = [encoded[i] for i in batch]
            tokens += prefix + sum(len(r.ids) - prefix for r in rows)
            computed += prefix + len(rows) * (max(len(r.ids) for r in rows) - prefix)
    began = time.perf_counter()
    for micro_batches in plan:
        optimizer_step(model, params, optimizer, scheduler, encoded, micro_batches, prefix, loaded.tokenizer.pad_token_id)
    return Measured(tokens, computed, time.perf_counter() - began, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="dtypes the stages run in")
    parser.add_argument("--peak-dtypes", default="", help="dtypes whose matmul peak is measured (default: --dtypes)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=1, help="optimiser steps (batch 32) per training stage")
    parser.add_argument("--eval-questions", type=int, default=8, help="valid questions generated per eval stage")
    parser.add_argument("--rollout-questions", type=int, default=1, help="train questions rolled out (k samples each)")
    parser.add_argument("--generation-only", action="store_true", help="skip the training stages")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task("unit_conversion")
    train, valid = task.load("train"), task.load("valid")
    dtypes = args.dtypes.split(",")
    batch = RunSpec.default_for("sft", "batch_size")
    eval_batch = RunSpec.default_for("eval", "batch_size")
    rollout_batch, k = RunSpec.default_for("rollout", "batch_size"), RunSpec.default_for("rollout", "num_samples")
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_native_bf16()}", flush=True)
    peaks = {name: matmul_peak(getattr(torch, name)) for name in dict.fromkeys((args.peak_dtypes or args.dtypes).split(",") + dtypes)}
    print("matmul peak " + ", ".join(f"{name} {peak:.3g} GFLOP/s" for name, peak in peaks.items()), flush=True)
    parameters = load_model(args.model).parameter_count
    print(f"parameters {parameters / 1e6:.1f}M; FLOPs = tokens x parameters x 2 (x2 again for LoRA training)")
    header = f"{'stage':<24} {'tokens':>7} {'pad':>4}" + "".join(
        f" | {name + ' s':>10} {'GFLOP/s':>7} {'of peak':>7}" for name in dtypes)
    print(header + "\n" + "-" * len(header), flush=True)

    def generation_stage(mode: str, questions: list[Example], sampling: Sampling, k: int, batch_size: int):
        def run(name: str) -> Measured:
            loaded = load_model(args.model, dtype=name)
            prompts = [task.prompt(ex.question, mode, loaded.tokenizer) for ex in questions]
            return measure_generation(loaded, prompts, sampling, k, batch_size)
        return run

    def training_stage(mode: str, examples: list[Example]):
        return lambda name: measure_training(args.model, name, examples, mode, args.train_steps, batch)

    sft_rows = train[: batch * args.train_steps]
    stages = {
        "eval direct (sft's)": generation_stage(
            "direct", valid[: args.eval_questions], Sampling(default_max_new_tokens("direct")), 1, eval_batch),
        "eval cot (rft's)": generation_stage(
            "cot", valid[: args.eval_questions], Sampling(default_max_new_tokens("cot")), 1, eval_batch),
        f"rollout k={k}": generation_stage(
            "cot", train[: args.rollout_questions], Sampling(default_max_new_tokens("cot"), 0.8, 0.95), k, rollout_batch),
        "sft (direct)": training_stage("direct", sft_rows),
        "rft (cot, reference)": training_stage(
            "cot", [Example(ex.question, ex.answer, task.completion(ex, "cot")) for ex in sft_rows]),
    }
    if args.generation_only:
        stages = {label: run for label, run in stages.items() if not label.startswith(("sft", "rft"))}
    for label, run in stages.items():
        measured = {name: run(name) for name in dtypes}
        first = next(iter(measured.values()))
        cells = ""
        for name, m in measured.items():
            rate = m.gflops(parameters)
            cells += f" | {m.seconds:>10.1f} {rate:>7.1f} {rate / peaks[name]:>7.0%}"
        print(f"{label:<24} {first.tokens:>7} {1 - first.tokens / first.computed:>4.0%}{cells}", flush=True)


if __name__ == "__main__":
    main()
