"""Throughput of the same SFT and rollout runs on 1, 2 (and 4, where the cores allow) processes,
side by side in one invocation: each configuration runs through the CLI (`--processes N`, launched
by accelerate for N > 1) in alternating rounds, so a change in the machine's load hits every
configuration alike.

Two figures per run: the engine's own throughput (training samples/s over the optimiser steps,
rollout tokens/s over generation; both summed over ranks) and the wall time of the whole command,
which adds the launch (interpreter, torch and model start-up on every rank) and the final eval.

    .venv/bin/python bench/scaling.py                          # tiny random model, 1 and 2 processes
    .venv/bin/python bench/scaling.py --model smollm2-135m --rounds 2

Rows: 1 process on every core (a plain run), 1 process on 1 thread (the per-core baseline), then
N ranks with cores // N threads each. On a 2-core machine 2 ranks get one core each where 1 process
gets both: the machine can show whether 2 ranks use 2 cores better than 2 threads do (for small
models, whose ops are too small to split over threads, they do), but not how the engine scales to
a core or GPU per rank on a bigger machine; and on a shared machine threads that wait for each
other can make the multi-threaded row far slower than its share of the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.tiny import save_tiny_model

WORKLOADS = {
    "sft": ("samples_per_s", ["--limit", "64", "--batch-size", "8", "--epochs", "2", "--eval-limit", "8",
                              "--eval-interval", "0", "--log-interval", "1000", "--checkpoint-interval", "0"]),
    "rollout": ("tokens_per_s", ["--limit", "16", "--num-samples", "4", "--batch-size", "8", "--max-new-tokens", "64"]),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="", help="model (default: a tiny random Llama)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds over every configuration")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="reasonlab-scaling-"))
    model = args.model or save_tiny_model(folder / "tiny")
    cores = len(os.sched_getaffinity(0))
    # (processes, torch threads per process): one process on every core is what a plain run
    # does; one process on one thread is the per-core baseline the ranks are measured against.
    configs = [(1, cores), (1, 1)] + [(n, max(1, cores // n)) for n in (2, 4) if n <= max(2, cores)]
    results: dict[tuple[str, tuple[int, int]], list[tuple[float, float]]] = {}
    for round_ in range(args.rounds):
        for kind, (metric, options) in WORKLOADS.items():
            for config in configs:
                summary = _run(kind, model, options, *config, folder / "runs.db")
                results.setdefault((kind, config), []).append((summary["metrics"][metric], summary["duration_s"]))
                print(f"round {round_ + 1} {kind} processes={config[0]} threads={config[1]}: "
                      f"{summary['metrics'][metric]:.1f} {metric}, {summary['duration_s']:.1f} s wall", flush=True)
    print(f"\n{cores} cores, load average {os.getloadavg()[0]:.1f} at the end; model {Path(model).name}")
    print(f"{'workload':10} {'processes':>9} {'threads':>7} {'throughput':>12} {'vs 1x1':>7} {'wall s':>8} {'vs 1x1':>7}")
    for kind, (metric, _) in WORKLOADS.items():
        base_rate = statistics.median(r for r, _ in results[(kind, (1, 1))])
        base_wall = statistics.median(w for _, w in results[(kind, (1, 1))])
        for config in configs:
            rate = statistics.median(r for r, _ in results[(kind, config)])
            wall = statistics.median(w for _, w in results[(kind, config)])
            print(f"{kind:10} {config[0]:9d} {config[1]:7d} {rate:12.1f} {rate / base_rate:7.2f} {wall:8.1f} "
                  f"{wall / base_wall:7.2f}   ({metric})")


def _run(kind: str, model: str, options: list[str], processes: int, threads: int, db: Path) -> dict:
    """One run through the CLI. A one-process run's threads are set through OMP_NUM_THREADS;
    ranks get theirs from the launch (cores // processes)."""
    command = [sys.executable, "-m", "engine", kind, "--model", model, "--device", "cpu", "--processes", str(processes),
               "--db", str(db), "--json", *options]
    env = os.environ | ({"OMP_NUM_THREADS": str(threads)} if processes == 1 else {})
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{kind} on {processes} processes failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
