"""bench/grpo_vs_rft.py's curves read what a training run logs while it trains: if the engine's
metric names or the times it logs at change, the curves must not silently come out empty."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.runner import execute

_spec = importlib.util.spec_from_file_location("grpo_vs_rft", Path(__file__).parent.parent / "bench" / "grpo_vs_rft.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_an_arms_curve_pairs_valid_and_shifted_by_step_after_its_offset(tiny_model_dir, db_path):
    store = RunStore(db_path)
    spec = RunSpec(kind="sft", model=tiny_model_dir, limit=8, batch_size=4, epochs=2, eval_interval=2, eval_limit=2,
                   checkpoint_interval=0)
    run = execute(store, store.create_run(spec).id)
    assert run.status == "completed"
    curve = bench._accuracy_curve(store, run, offset=100.0)
    assert [step for step, *_ in curve] == [2, 4]
    valid, shifted = dict(store.metric_series(run.id, "accuracy")), dict(store.metric_series(run.id, "shifted_accuracy"))
    assert [(v, s) for _, _, v, s in curve] == [(valid[2], shifted[2]), (valid[4], shifted[4])]
    seconds = [t for _, t, _, _ in curve]
    assert 100.0 <= seconds[0] <= seconds[1] <= 100.0 + run.duration
