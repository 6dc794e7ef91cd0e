"""What logging to the store costs a training step: steps alternate between logging every metric
through the Tracker (log_interval=1, the worst case) and not logging, in one run; prints the
ratio of their median times and the share of time spent inside tracker calls. Target: < 2%.
On a shared, busy machine the median ratio carries a few % of noise either way; the time
measured inside the tracker calls is the direct figure.

    .venv/bin/python bench/logging_overhead.py                 # tiny random model (fast steps: a harsh test)
    .venv/bin/python bench/logging_overhead.py --model smollm2-135m --steps 20
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import get_scheduler

from engine.model import load_model
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.tasks import get_task
from engine.tiny import save_tiny_model
from engine.core.tracker import Tracker
from engine.training import encode, new_adapter, optimizer_step, shared_prefix_length, training_plan


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="", help="model (default: a tiny random Llama)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="reasonlab-logging-"))
    model_name = args.model or save_tiny_model(folder / "tiny", train_steps=0)  # untrained: only step speed matters
    torch.manual_seed(0)
    loaded = load_model(model_name)
    model = new_adapter(loaded.model, RunSpec(kind="sft"))
    model.train()
    task = get_task("unit_conversion")
    encoded = encode(loaded.tokenizer, task, task.load("train")[:64], "direct")
    prefix = shared_prefix_length(encoded)
    plan = training_plan([len(e.ids) for e in encoded], args.batch_size, 1, 1, 0)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    scheduler = get_scheduler("constant", optimizer)
    store = RunStore(folder / "runs.db")
    tracker = Tracker(store, store.create_run(RunSpec(kind="sft")).id)

    times: dict[bool, list[float]] = {False: [], True: []}
    in_tracker = 0.0
    for step in range(args.steps):
        # Each pair of steps trains on the same batch, once logged; which one alternates, so
        # going first or second in a pair favours neither side.
        tracked = step % 2 == (step // 2) % 2
        began = time.perf_counter()
        loss, grad_norm = optimizer_step(
            model, params, optimizer, scheduler, encoded, plan[(step // 2) % len(plan)], prefix, loaded.tokenizer.pad_token_id
        )
        if tracked:
            logging_began = time.perf_counter()
            tracker.log(step, loss=loss, lr=scheduler.get_last_lr()[0], grad_norm=grad_norm, samples_per_s=1.0)
            tracker.progress(step, args.steps)
            in_tracker += time.perf_counter() - logging_began
        times[tracked].append(time.perf_counter() - began)
    logging_began = time.perf_counter()
    tracker.flush()
    in_tracker += time.perf_counter() - logging_began

    plain, logged = statistics.median(times[False]), statistics.median(times[True])
    print(f"model: {model_name}; {args.steps} steps of batch {args.batch_size}, half of them logging 4 metrics + progress")
    print(f"median step: {plain * 1e3:.2f} ms without logging, {logged * 1e3:.2f} ms with (ratio {logged / plain:.4f})")
    print(f"time inside tracker calls: {in_tracker * 1e3:.2f} ms = {in_tracker / sum(times[True]):.3%} of the logged steps")


if __name__ == "__main__":
    main()
