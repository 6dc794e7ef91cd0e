"""Generation throughput: plain `model.generate` versus the engine's loop, side by side.

Same model, prompts (cot format, train questions), greedy decoding and stop rule (`</answer>` or
EOS) for both; throughput counts the tokens each sequence needed up to its stop, so neither side
gets credit for padding. The two run alternately, `--repeats` times, and the best of each counts,
so a noisy neighbour skews both alike. `--bf16` adds the engine's loop on a bfloat16 copy.
Usage: python bench/generation.py [--model smollm2-135m] [--max-new-tokens 96] [--bf16]
"""

from __future__ import annotations

import argparse
import time

import torch

from engine.generation import Sampling, generate
from engine.model import load_model
from engine.tasks import get_task


def hf_generate(loaded, prompts, max_new_tokens, batch_size, **options) -> int:
    """`model.generate` on micro-batches of `batch_size` prompts, greedy unless `options` say
    otherwise (bench/sampling.py samples k per prompt); the tokens each sequence needed."""
    options = {"do_sample": False} | options
    tok = loaded.tokenizer
    useful = 0
    for start in range(0, len(prompts), batch_size):
        enc = tok(prompts[start : start + batch_size], return_tensors="pt", padding=True, padding_side="left",
                  add_special_tokens=False).to(loaded.device)
        with torch.inference_mode():
            out = loaded.model.generate(
                **enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                stop_strings="</answer>", tokenizer=tok, **options,
            )
        for row in out[:, enc["input_ids"].shape[1]:]:
            text_ids = row.tolist()
            useful += next((i + 1 for i, t in enumerate(text_ids) if t == tok.eos_token_id), len(text_ids))
    return useful


def engine_generate(loaded, prompts, max_new_tokens, batch_size) -> int:
    results = generate(loaded.model, loaded.tokenizer, prompts, Sampling(max_new_tokens), batch_size=batch_size)
    return sum(c[0].tokens for c in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--batch-sizes", default="1,16,64")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    loaded = load_model(args.model)
    contenders = {"hf": (hf_generate, loaded), "engine": (engine_generate, loaded)}
    if args.bf16:
        contenders["engine bf16"] = (engine_generate, load_model(args.model, dtype="bfloat16"))
    task = get_task("unit_conversion")
    questions = [ex.question for ex in task.load("train")]
    print(f"model {args.model} on {loaded.device}, {torch.get_num_threads()} threads, max_new_tokens {args.max_new_tokens}")
    print(f"{'batch':>5} {'prompts':>7} " + " ".join(f"{name + ' tok/s':>17} {'ratio':>6}" for name in contenders))
    for batch_size in map(int, args.batch_sizes.split(",")):
        count = max(4, batch_size)
        prompts = [task.prompt(q, "cot", loaded.tokenizer) for q in questions[:count]]
        rates = dict.fromkeys(contenders, 0.0)
        for _ in range(args.repeats):
            for name, (fn, model) in contenders.items():
                began = time.perf_counter()
                tokens = fn(model, prompts, args.max_new_tokens, batch_size)
                rates[name] = max(rates[name], tokens / (time.perf_counter() - began))
        cells = " ".join(f"{rate:>17.1f} {rate / rates['hf']:>5.2f}x" for rate in rates.values())
        print(f"{batch_size:>5} {count:>7} {cells}", flush=True)


if __name__ == "__main__":
    main()
