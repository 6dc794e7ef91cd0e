"""The review's duration line: a median of earlier runs of the same size, per run or summed
over a sweep's sizes, and nothing when no earlier run tells."""

from __future__ import annotations

from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.core.sweep import plan_sweep

from tui.screens.review import read_review


def finished(store: RunStore, spec: RunSpec, seconds: float) -> None:
    run = store.create_run(spec)
    store.update_run(run.id, status="completed", started_at=100.0, finished_at=100.0 + seconds)


def duration(store: RunStore, kind: str, texts: dict[str, str]) -> list[str]:
    return [line for line in read_review(store, plan_sweep(kind, texts)).lines() if line.startswith("Duration")]


def test_the_review_estimates_from_earlier_runs_of_the_same_size(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    assert duration(store, "eval", {"limit": "20"}) == []
    for seconds in (600, 720, 900):
        finished(store, RunSpec(kind="eval", limit=20, seed=int(seconds)), seconds)
    finished(store, RunSpec(kind="eval", limit=40), 120)
    assert duration(store, "eval", {"limit": "20"}) == ["Duration  ≈ 12 min (median of 3 earlier runs)"]
    assert duration(store, "eval", {"limit": "20", "seed": "0..1"}) == ["Duration  ≈ 12 min a run (median of 3 earlier runs)"]
    assert duration(store, "eval", {"limit": "20, 40"}) == ["Duration  ≈ 14 min for all 2 (medians by size)"]
    assert duration(store, "eval", {"limit": "20, 60"}) == []  # no earlier run of 60 questions
    assert duration(store, "eval", {"limit": "40"}) == ["Duration  ≈ 2 min (1 earlier run)"]
