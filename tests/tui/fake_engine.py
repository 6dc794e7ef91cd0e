"""A stand-in for `python -m engine` in the TUI tests: `start` or `resume RUN --db PATH` only.

It writes what the real engine writes (status, pid, metrics, progress, samples, an artifact)
in about a second, using the run core only. FAKE_ENGINE_SECONDS makes it run longer (for
cancel tests); SIGTERM marks the run cancelled, as the engine does.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.core.errors import RunCancelled  # noqa: E402
from engine.core.processes import Owner  # noqa: E402
from engine.core.store import RunStore  # noqa: E402

STEPS = 10


def on_sigterm(_signum, _frame) -> None:
    raise RunCancelled()


def run(store: RunStore, run_id: int, seconds: float, resume: bool) -> None:
    run = store.claim_run(run_id, Owner.of_this_process(), {"engine": "fake"}, resume=resume)
    print(f"fake engine: run {run_id} ({run.kind}) {'resumed' if resume else 'started'}", flush=True)
    for step in range(1, STEPS + 1):
        time.sleep(seconds / STEPS)
        now = time.time()
        points = [(step, "loss", 2.0 / step, now), (step, "lr", 1e-3 * (1 - step / STEPS), now)]
        if step % 5 == 0:
            points.append((step, "accuracy", step / STEPS * 0.8, now))
        store.log_metrics(run_id, points)
        store.set_progress(run_id, step, STEPS)
        print(f"step {step}/{STEPS} loss {2.0 / step:.3f}", flush=True)
    store.add_samples(
        run_id,
        [
            {
                "step": STEPS, "idx": i, "sample": 0, "question": f"Convert {i} km to m.",
                "target": i * 1000.0, "output": f"{i} km is {i * 1000} m. <answer>{i * 1000}</answer>",
                "answer": i * 1000.0 if i % 3 else None, "correct": i % 3 != 0,
            }
            for i in range(6)
        ],
    )
    artifact = store.run_folder(run) / "adapter"
    artifact.mkdir(parents=True, exist_ok=True)
    (artifact / "adapter_model.safetensors").write_bytes(b"0" * 2048)
    store.add_artifact(run_id, "adapter", artifact)
    store.mark_finished(run_id, "completed")
    print("fake engine: done", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["start", "resume"])
    parser.add_argument("run_id", type=int)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    store = RunStore(args.db)
    try:
        run(store, args.run_id, float(os.environ.get("FAKE_ENGINE_SECONDS", "1")), args.command == "resume")
    except RunCancelled:
        store.mark_finished(args.run_id, "cancelled", "Cancelled by SIGTERM")
        print("fake engine: cancelled", flush=True)


if __name__ == "__main__":
    main()
