"""bench/quality.py's paired table: each stage against the one before it on both splits, the
base model's two eval runs (one per split) standing for one stage."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine.core.spec import RunSpec
from engine.core.store import RunStore

_spec = importlib.util.spec_from_file_location("quality", Path(__file__).parent.parent / "bench" / "quality.py")
quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality)


def _scored(store: RunStore, kind: str, dataset: str | None, right: dict[str, list[int]]):
    run = store.create_run(RunSpec(kind=kind, **({"dataset": dataset} if dataset else {})))
    for split, outcomes in right.items():
        store.add_samples(run.id, [
            {"idx": i, "question": f"{split} {i}", "target": 1.0, "output": "", "answer": None, "correct": c}
            for i, c in enumerate(outcomes)
        ], split=split)
    return run


def test_each_stage_is_paired_with_the_one_before_on_both_splits(db_path):
    store = RunStore(db_path)
    base = [_scored(store, "eval", "valid", {"valid": [0, 0, 1, 0]}), _scored(store, "eval", "shifted", {"shifted": [0, 0, 0]})]
    sft = _scored(store, "sft", None, {"valid": [1, 1, 1, 0], "shifted": [1, 0, 0]})
    rft = _scored(store, "rft", None, {"valid": [1, 1, 0, 1], "shifted": [1, 1, 1]})
    table = quality._paired_table(store, [("cot (base model)", base), ("sft", [sft]), ("rft0", [rft])])
    rows = list(zip(*(column.cells for column in table.columns)))
    assert rows == [
        ("sft", "cot (base model)", "valid", "4", "2", "0", "0.5"),
        ("sft", "cot (base model)", "shifted", "3", "1", "0", "1"),
        ("rft0", "sft", "valid", "4", "1", "1", "1"),
        ("rft0", "sft", "shifted", "3", "2", "0", "0.5"),
    ]
