"""bench/quality.py's paired table: each stage against the one before it on both splits, the
base model's two eval runs (one per split) standing for one stage."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

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


def _bench(monkeypatch, *argv: str) -> None:
    monkeypatch.setattr("sys.argv", ["quality.py", *argv])
    monkeypatch.setenv("COLUMNS", "400")  # rows on one line each
    quality.main()


def test_the_bench_goes_on_with_a_stopped_pipeline_and_reuses_the_base_evals(tiny_model_dir, db_path, monkeypatch, capsys):
    """A full pipeline outlasts a sitting on a CPU: `--pipeline N` resumes it from its checkpoint
    (no new pipeline), and a second call only prints, reusing the base model's evals."""
    from engine import training
    from engine.core.errors import RunCancelled
    from engine.runner import execute

    store = RunStore(db_path)
    spec = RunSpec(
        kind="pipeline", model=tiny_model_dir, limit=8, batch_size=8, epochs=1, eval_limit=2, eval_interval=0,
        max_new_tokens=8, rounds=0, checkpoint_interval=0,
    )
    real_step, steps = training.optimizer_step, []

    def stop_in_rft0(*args):
        steps.append(1)
        if len(steps) == 2:  # sft is one step (8 rows, batch 8)
            raise RunCancelled()
        return real_step(*args)

    monkeypatch.setattr(training, "optimizer_step", stop_in_rft0)
    pipeline = execute(store, store.create_run(spec).id)
    assert pipeline.status == "cancelled"
    monkeypatch.setattr(training, "optimizer_step", real_step)

    _bench(monkeypatch, "--db", str(db_path), "--pipeline", str(pipeline.id))
    runs = store.list_runs()
    assert store.get_run(pipeline.id).status == "completed"
    assert [r.kind for r in runs].count("pipeline") == 1 and [r.kind for r in runs].count("eval") == 2
    first = capsys.readouterr().out
    assert "rft0" in first and "the pipeline's model" in first

    _bench(monkeypatch, "--db", str(db_path), "--pipeline", str(pipeline.id))
    assert [r.id for r in store.list_runs()] == [r.id for r in runs]
    assert capsys.readouterr().out.count("rft0") == first.count("rft0")


def test_the_bench_refuses_a_run_that_is_not_a_pipeline_in_one_line(tiny_model_dir, db_path, monkeypatch, capsys):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval", model=tiny_model_dir))
    with pytest.raises(SystemExit) as exit_:
        _bench(monkeypatch, "--db", str(db_path), "--pipeline", str(run.id))
    assert exit_.value.code == 2
    assert f"error: run {run.id} (eval) is not a pipeline" in capsys.readouterr().err.splitlines()[-1]
    assert len(store.list_runs()) == 1


def test_the_bench_refuses_a_pipeline_still_running_in_a_live_process(tiny_model_dir, db_path, monkeypatch, capsys):
    from engine.core.processes import Owner

    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="pipeline", model=tiny_model_dir))
    store.claim_run(run.id, Owner.of_this_process(), {}, resume=False)  # this test's process holds it
    with pytest.raises(SystemExit) as exit_:
        _bench(monkeypatch, "--db", str(db_path), "--pipeline", str(run.id))
    assert exit_.value.code == 2
    assert f"error: pipeline run {run.id} is running in process" in capsys.readouterr().err.splitlines()[-1]
    assert [r.kind for r in store.list_runs()] == ["pipeline"]  # no eval ran
