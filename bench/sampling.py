"""Rollout sampling throughput: the engine's top-p cut against `model.generate`'s, side by side.

A rollout samples k chains per question at temperature 0.8 with top-p 0.95 (the rollout
defaults). `model.generate`'s top-p (transformers' TopPLogitsWarper) sorts every row's whole
vocabulary at every step, as the engine did until it looked for the cut among each row's 256
likeliest tokens first. The contenders, on the same prompts (cot, partial products, broad
questions) and micro-batches formed as a rollout forms them (`--batch-size` sequences, 64 by
default: 6 questions x k=10):
- `engine`: the engine's generation with top-p 0.95;
- `engine, whole rows`: the same with every row's whole vocabulary searched for the cut (the
  candidates set to the vocabulary's size), which costs what the full sort did;
- `engine, no cut`: top-p 1.0, the same loop with no cut at all (the floor the cut adds to);
- `hf`: `model.generate(do_sample=True, temperature=0.8, top_p=0.95)` with the same stop rule.
Throughput counts each chain's tokens up to its stop. The contenders run alternately,
`--repeats` times, and the best of each counts, so a noisy neighbour skews all alike.
Give `--adapter` a trained RFT adapter for chains of the length a rollout sees (the base model
rarely closes its answer, so its chains run to the token cap).

Usage: python bench/sampling.py [--adapter PATH] [--questions 6] [--repeats 2] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import time
from unittest.mock import patch

import torch

from generation import hf_generate  # bench/generation.py: this folder is the script's first import path

from engine import generation
from engine.core.spec import RunSpec
from engine.generation import Sampling, generate
from engine.model import load_model
from engine.rollout import questions_per_batch
from engine.tasks import get_task

ROLLOUT = RunSpec(kind="rollout")


def engine_sample(loaded, prompts: list[str], spec: RunSpec, top_p: float, candidates: int = generation.NUCLEUS_CANDIDATES) -> int:
    sampling = Sampling(spec.max_new_tokens, spec.temperature, top_p, seed=0)
    per_batch = questions_per_batch(spec)
    tokens = 0
    with patch.object(generation, "NUCLEUS_CANDIDATES", candidates):
        for start in range(0, len(prompts), per_batch):
            chunk = prompts[start : start + per_batch]
            results = generate(loaded.model, loaded.tokenizer, chunk, sampling, num_return_sequences=spec.num_samples,
                               batch_size=spec.batch_size, keys=list(range(start, start + len(chunk))))
            tokens += sum(c.tokens for samples in results for c in samples)
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=ROLLOUT.model)
    parser.add_argument("--adapter", default="")
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=ROLLOUT.batch_size, help="sequences per micro-batch (the rollout's default)")
    args = parser.parse_args()
    spec = ROLLOUT.replace(batch_size=args.batch_size)
    loaded = load_model(args.model, adapter=args.adapter or None)
    task = get_task(ROLLOUT.task, ROLLOUT.reasoning)
    prompts = [task.prompt(ex.question, "cot", loaded.tokenizer) for ex in task.load("broad")[: args.questions]]
    vocabulary = loaded.model.get_output_embeddings().weight.shape[0]
    contenders = {
        "engine": lambda: engine_sample(loaded, prompts, spec, spec.top_p),
        "engine, whole rows": lambda: engine_sample(loaded, prompts, spec, spec.top_p, candidates=vocabulary),
        "engine, no cut": lambda: engine_sample(loaded, prompts, spec, 1.0),
        "hf": lambda: hf_generate(
            loaded, prompts, spec.max_new_tokens, questions_per_batch(spec), do_sample=True,
            temperature=spec.temperature, top_p=spec.top_p, top_k=0, num_return_sequences=spec.num_samples,
        ),
    }
    print(f"model {args.model}{' + ' + args.adapter if args.adapter else ''} on {loaded.device}, "
          f"{torch.get_num_threads()} threads; {len(prompts)} questions x k={spec.num_samples}, "
          f"{questions_per_batch(spec)} questions per micro-batch, temperature {spec.temperature}, "
          f"max_new_tokens {spec.max_new_tokens}")
    rates = dict.fromkeys(contenders, 0.0)
    for _ in range(args.repeats):
        for name, sample in contenders.items():
            began = time.perf_counter()
            tokens = sample()
            rates[name] = max(rates[name], tokens / (time.perf_counter() - began))
    for name, rate in rates.items():
        print(f"{name:>18} {rate:8.1f} tok/s  {rate / rates['engine, whole rows']:5.2f}x whole rows  {rate / rates['hf']:5.2f}x hf")


if __name__ == "__main__":
    main()
