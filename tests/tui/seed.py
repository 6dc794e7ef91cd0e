"""A small, fixed set of runs for the TUI tests and snapshots (fixed times, so stable output)."""

from __future__ import annotations

import math
from pathlib import Path

from engine.core.spec import RunSpec
from engine.core.store import RunStore

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC

QUESTIONS = [f"How many metres are in {n} kilometres?" for n in range(1, 9)]


def _training_points(steps: int, scale: float) -> list[tuple[int, str, float, float]]:
    points = []
    for step in range(0, steps + 1, 5):
        points.append((step, "loss", scale * (0.4 + 2.0 * math.exp(-step / 15)), T0))
        points.append((step, "lr", 1e-3 * 0.5 * (1 + math.cos(math.pi * step / steps)), T0))
        if step % 20 == 0:
            points.append((step, "accuracy", 0.2 + 0.5 * step / steps / scale, T0))
    return points


def _samples(step: int, correct: set[int]) -> list[dict]:
    return [
        {
            "step": step, "idx": i, "sample": 0, "question": q, "target": (i + 1) * 1000.0,
            "output": f"{i + 1} km is {i + 1} x 1000 m = {(i + 1) * 1000} m.\n<answer>{(i + 1) * 1000}</answer>",
            "answer": (i + 1) * 1000.0 if i in correct else (None if i % 2 else 7.0),
            "correct": i in correct,
        }
        for i, q in enumerate(QUESTIONS)
    ]


def _finish(store: RunStore, run_id: int, status: str, start: float, seconds: float, error: str | None = None) -> None:
    store.update_run(
        run_id, status=status, created_at=start - 5, started_at=start, finished_at=start + seconds,
        error=error, pid=None,
    )


def seed(db_path: Path) -> RunStore:
    """Six runs: sft (completed), eval (completed), rft (failed), rollout (completed),
    eval (cancelled), pipeline (queued)."""
    store = RunStore(db_path)
    sft = store.create_run(RunSpec(kind="sft", name="sft-baseline", epochs=2), tags=["baseline"])
    store.log_metrics(sft.id, _training_points(80, 1.0))
    store.set_progress(sft.id, 80, 80)
    store.add_samples(sft.id, _samples(80, {0, 1, 2, 4, 5}))
    store.add_samples(sft.id, _samples(40, {0, 1}))  # an earlier periodic evaluation
    adapter = Path(sft.run_dir) / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 4096)
    store.add_artifact(sft.id, "adapter", adapter)
    _finish(store, sft.id, "completed", T0, 754)

    ev = store.create_run(RunSpec(kind="eval", name="eval-base", limit=8), tags=["baseline"])
    store.log_metrics(ev.id, [(0, "accuracy", 0.25, T0), (0, "answer_rate", 0.75, T0), (0, "tokens_per_s", 812.5, T0)])
    store.set_progress(ev.id, 8, 8)
    store.add_samples(ev.id, _samples(0, {0, 3}))
    _finish(store, ev.id, "completed", T0 + 900, 42)

    rft = store.create_run(RunSpec(kind="rft", name="rft-round1", adapter=str(sft.id)), parent_id=sft.id, tags=["rft"])
    store.log_metrics(rft.id, _training_points(30, 1.2))
    store.set_progress(rft.id, 30, 120)
    _finish(store, rft.id, "failed", T0 + 1800, 3725, error="CUDA out of memory")

    rollout = store.create_run(RunSpec(kind="rollout", adapter=str(sft.id), num_samples=4), parent_id=sft.id)
    store.log_metrics(rollout.id, [(8, "success_rate", 0.625, T0), (8, "correct_rate", 0.5, T0)])
    store.set_progress(rollout.id, 8, 8)
    _finish(store, rollout.id, "completed", T0 + 5600, 95)

    cancelled = store.create_run(RunSpec(kind="eval", name="eval-direct", mode="direct"))
    _finish(store, cancelled.id, "cancelled", T0 + 6000, 12, error="Cancelled from the app")

    queued = store.create_run(RunSpec(kind="pipeline", name="pipe"), tags=["rft"])
    store.update_run(queued.id, created_at=T0 + 7000)
    return store


EVAL_CATEGORIES = {
    "accuracy/family=length": 0.95, "accuracy/family=mass": 0.41, "accuracy/family=time": 0.6,
    "accuracy/values=1-10": 0.9, "accuracy/values=11-99": 0.5,
    "accuracy/phrasing=held-out": 0.375, "accuracy/phrasing=train": 0.8125,
}
"""Accuracy by category, as an eval of a task with categories logs it."""


def add_eval_categories(store: RunStore, run_id: int = 2) -> None:
    """Log `EVAL_CATEGORIES` for the seeded eval (kept out of `seed`, whose runs other tests
    count metrics of)."""
    store.log_metrics(run_id, [(0, name, value, T0) for name, value in EVAL_CATEGORIES.items()])
