"""The store's duration estimate: the median of earlier completed runs of the same kind and size."""

from __future__ import annotations

from engine.core.spec import RunSpec
from engine.core.store import ESTIMATE_RUNS, RunStore


def finished(store: RunStore, spec: RunSpec, seconds: float, status: str = "completed", at: float = 1000.0) -> int:
    run = store.create_run(spec)
    store.update_run(run.id, status=status, started_at=at, finished_at=at + seconds)
    return run.id


def test_the_estimate_is_the_median_of_runs_of_the_same_size(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    spec = RunSpec(kind="sft", epochs=2, limit=100)
    assert store.duration_estimate(spec) is None
    for seconds in (600, 700, 1000):
        finished(store, RunSpec(kind="sft", epochs=2, limit=100, learning_rate=seconds / 1e6, seed=1), seconds)
    finished(store, RunSpec(kind="sft", epochs=2, limit=100), 5, status="failed")
    finished(store, RunSpec(kind="sft", epochs=3, limit=100), 5)
    finished(store, RunSpec(kind="sft", epochs=2, limit=200), 5)
    finished(store, RunSpec(kind="sft", epochs=2, limit=100, model="other"), 5)
    finished(store, RunSpec(kind="rft", epochs=2, limit=100), 5)
    queued = store.create_run(RunSpec(kind="sft", epochs=2, limit=100))
    assert store.get_run(queued.id).status == "queued"
    estimate = store.duration_estimate(spec)
    assert (estimate.seconds, estimate.runs) == (700, 3)


def test_a_default_given_explicitly_is_the_same_size(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    finished(store, RunSpec(kind="eval"), 42)
    estimate = store.duration_estimate(RunSpec(kind="eval", limit=0, dataset="valid"))
    assert (estimate.seconds, estimate.runs) == (42, 1)


def test_only_the_newest_runs_count(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    for n in range(ESTIMATE_RUNS):
        finished(store, RunSpec(kind="eval"), 10, at=2000.0 + n)
    for n in range(ESTIMATE_RUNS):
        finished(store, RunSpec(kind="eval"), 1000, at=1000.0 + n)  # finished before the others
    estimate = store.duration_estimate(RunSpec(kind="eval"))
    assert (estimate.seconds, estimate.runs) == (10, ESTIMATE_RUNS)
