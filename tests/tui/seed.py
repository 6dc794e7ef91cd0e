"""A small, fixed set of runs for the TUI tests and snapshots (fixed times, so stable output)."""

from __future__ import annotations

import math
from pathlib import Path

from engine.core.spec import RunSpec
from engine.core.store import RunStore

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC

QUESTIONS = [f"How many metres are in {n} kilometres?" for n in range(1, 9)]


def _training_points(steps: int, scale: float, start: float) -> list[tuple[int, str, float, float]]:
    """Points every 5 steps, logged 9 s of wall time apart from `start`."""
    points = []
    for step in range(0, steps + 1, 5):
        time = start + 9 * step
        points.append((step, "loss", scale * (0.4 + 2.0 * math.exp(-step / 15)), time))
        points.append((step, "lr", 1e-3 * 0.5 * (1 + math.cos(math.pi * step / steps)), time))
        if step % 20 == 0:
            points.append((step, "accuracy", 0.2 + 0.5 * step / steps / scale, time))
            points.append((step, "shifted_accuracy", 0.1 + 0.3 * step / steps / scale, time))
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
    store.log_metrics(sft.id, _training_points(80, 1.0, T0))
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
    store.log_metrics(rft.id, _training_points(30, 1.2, T0 + 1800))
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


SWEEP_ACCURACIES = {"sweep:7": (0.80, 0.83, 0.79), "sweep:8": (0.55, 0.61, 0.58)}
"""Final accuracy of seeds 0, 1, 2 in each seeded sweep: sweep 7 at learning rate 2e-3, sweep 8 at 1e-3."""
SWEEP_LEARNING_RATES = {"sweep:7": 2e-3, "sweep:8": 1e-3}


def seed_sweeps(store: RunStore) -> list[int]:
    """Two completed 3-seed SFT sweeps after the six runs of `seed` (runs 7-12), as
    `engine sweep` tags them; returns their ids."""
    ids = []
    for tag, accuracies in SWEEP_ACCURACIES.items():
        lr = SWEEP_LEARNING_RATES[tag]
        for seed_value, accuracy in enumerate(accuracies):
            spec = RunSpec(kind="sft", name=f"sft lr={lr:g} seed={seed_value}", learning_rate=lr, seed=seed_value)
            run = store.create_run(spec, tags=[tag])
            store.log_metrics(run.id, [(100, "accuracy", accuracy, T0), (100, "loss", 1.5 - accuracy, T0)])
            _finish(store, run.id, "completed", T0 + 8000 + 100 * len(ids), 600)
            ids.append(run.id)
    return ids
SWEEP_TAG = "sweep:ab12cd"


def seed_families(db_path: Path) -> RunStore:
    """The six runs of `seed`, then a completed pipeline (run 7) with its four stages (8-11:
    sft, rft0, rollout1, rft1, linked as the pipeline links them), an eval of its last adapter
    (12), and a sweep of three evals of run 1's adapter (13-15, one failed)."""
    store = seed(db_path)
    pipe = store.create_run(RunSpec(kind="pipeline", name="pipe-small", rounds=1))
    store.set_progress(pipe.id, 4, 4)
    tag = [f"pipeline:{pipe.id}"]
    start = T0 + 8000
    sft = store.create_run(RunSpec(kind="sft", name="pipe-small sft"), parent_id=pipe.id, tags=tag)
    store.log_metrics(sft.id, [(40, "loss", 0.61, T0), (40, "accuracy", 0.31, T0)])
    _finish(store, sft.id, "completed", start, 300)
    rft0 = store.create_run(
        RunSpec(kind="rft", name="pipe-small rft0", adapter=str(sft.id), data="reference_rft.json"),
        parent_id=sft.id, tags=tag,
    )
    store.log_metrics(rft0.id, [(20, "loss", 0.42, T0), (20, "accuracy", 0.44, T0)])
    _finish(store, rft0.id, "completed", start + 300, 200)
    rollout = store.create_run(
        RunSpec(kind="rollout", name="pipe-small rollout1", adapter=str(rft0.id)), parent_id=rft0.id, tags=tag,
    )
    store.log_metrics(rollout.id, [(0, "success_rate", 0.52, T0), (0, "correct_rate", 0.38, T0)])
    _finish(store, rollout.id, "completed", start + 500, 150)
    rft1 = store.create_run(
        RunSpec(kind="rft", name="pipe-small rft1", adapter=str(rft0.id), data=str(rollout.id)),
        parent_id=rollout.id, tags=tag,
    )
    store.log_metrics(rft1.id, [(20, "loss", 0.35, T0), (20, "accuracy", 0.49, T0)])
    _finish(store, rft1.id, "completed", start + 650, 250)
    store.log_metrics(pipe.id, [(3, "accuracy", 0.49, T0), (4, "accuracy", 0.49, T0), (4, "model_run", rft1.id, T0)])
    _finish(store, pipe.id, "completed", start, 900)

    check = store.create_run(RunSpec(kind="eval", name="eval-pipe", adapter=str(rft1.id)), parent_id=rft1.id)
    store.log_metrics(check.id, [(0, "accuracy", 0.5, T0)])
    _finish(store, check.id, "completed", start + 1000, 40)

    for n, temperature in enumerate((0.3, 0.7, 1.0)):
        spec = RunSpec(kind="eval", name=f"sweep temperature={temperature}", adapter=str(1), temperature=temperature)
        run = store.create_run(spec, parent_id=1, tags=[SWEEP_TAG])
        if n == 2:
            _finish(store, run.id, "failed", start + 2000 + 60 * n, 5, error="The engine process was killed")
        else:
            store.log_metrics(run.id, [(0, "accuracy", 0.4 - 0.1 * n, T0), (0, "answer_rate", 0.9, T0)])
            _finish(store, run.id, "completed", start + 2000 + 60 * n, 50)
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


SHIFTED_QUESTIONS = [f"Express {n}.5 kilometre in metre." for n in range(11, 17)]


def add_shifted_samples(db_path: Path) -> None:
    """The seeded sft run's (run 1) shifted samples beside valid's, at its periodic evaluation
    (step 40) and its last (step 80): right on the first two at the end. Kept out of `seed`,
    whose screens other snapshots show with valid alone."""
    store = RunStore(db_path)
    for step, correct in ((40, set()), (80, {0, 1})):
        store.add_samples(1, [
            {
                "step": step, "idx": i, "sample": 0, "question": q, "target": (i + 11.5) * 1000,
                "output": f"<answer>{(i + 11.5) * 1000 if i in correct else 1150}</answer>",
                "answer": (i + 11.5) * 1000 if i in correct else 1150.0, "correct": i in correct,
            }
            for i, q in enumerate(SHIFTED_QUESTIONS)
        ], split="shifted")
    store.close()
