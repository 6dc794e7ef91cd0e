"""The headless CLI: runs recorded in the store, one-line errors, non-zero exits, failed runs."""

import json

import pytest

from engine.cli import main
from engine.core.store import RunStore
from engine.tasks import get_task


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_eval_records_run_samples_and_json(capsys, db_path, tiny_model_dir):
    code, out, err = _run(capsys, "eval", "--model", tiny_model_dir, "--mode", "direct", "--limit", "6",
                          "--batch-size", "4", "--max-new-tokens", "4", "--tag", "smoke", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "completed" and result["kind"] == "eval"
    assert set(result["metrics"]) >= {"accuracy", "answer_rate", "tokens_per_s"}
    store = RunStore(db_path)
    run = store.get_run(result["run_id"])
    assert run.tags == ("smoke",) and run.environment["packages"]["torch"]
    samples = store.samples(run.id)
    assert [s["idx"] for s in samples] == list(range(6))
    valid = get_task("unit_conversion").load("valid")[:6]
    assert [(s["question"], s["target"]) for s in samples] == [(ex.question, ex.answer) for ex in valid]
    assert "completed" in (open(f"{run.run_dir}/log.txt").read())


def test_runs_and_show_list_what_was_recorded(capsys, db_path, tiny_model_dir):
    _run(capsys, "eval", "--model", tiny_model_dir, "--mode", "direct", "--limit", "2", "--max-new-tokens", "2",
         "--name", "tiny-eval")
    code, out, _ = _run(capsys, "runs")
    assert code == 0 and "tiny-eval" in out and "completed" in out
    code, out, _ = _run(capsys, "show", "1")
    assert code == 0 and "max_new_tokens" in out and "accuracy" in out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "not found"),
        ("[[\"q\", 1.0]", "not valid JSON"),
        ("[[\"Convert 1 km to m.\", \"a lot\"]]", "row 0"),
    ],
)
def test_bad_dataset_fails_the_run_with_one_line(capsys, db_path, tmp_path, tiny_model_dir, content, expected):
    path = tmp_path / "data.json"
    if content is not None:
        path.write_text(content)
    code, _, err = _run(capsys, "eval", "--model", tiny_model_dir, "--dataset", str(path))
    assert code == 1
    line = _error_line(err)
    assert expected in line
    run = RunStore(db_path).get_run(1)
    assert run.status == "failed" and expected in run.error and "\n" not in run.error


def test_unknown_model_fails_fast_with_advice(capsys, db_path):
    code, _, err = _run(capsys, "eval", "--model", "no-such-model", "--limit", "1")
    assert code == 1
    assert "smollm2-135m" in _error_line(err)
    assert RunStore(db_path).get_run(1).status == "failed"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["eval", "--batch-size", "-3"], "batch_size: must be at least 1"),
        (["eval", "--limit", "ten"], "limit: expected an integer"),
        (["sft", "--learning-rate", "2"], "learning_rate: must be at most 1"),
        (["show", "42"], "No run with id 42"),
        (["resume", "42"], "No run with id 42"),
    ],
)
def test_invalid_settings_are_refused_before_a_run_exists(capsys, db_path, argv, expected):
    code, _, err = _run(capsys, *argv)
    assert code == 1
    assert expected in _error_line(err)
    assert RunStore(db_path).list_runs() == []


def test_a_completed_run_cannot_be_started_again(capsys, db_path, tiny_model_dir):
    _run(capsys, "eval", "--model", tiny_model_dir, "--mode", "direct", "--limit", "1", "--max-new-tokens", "2")
    code, _, err = _run(capsys, "start", "1")
    assert code == 1 and "already completed" in _error_line(err)


def test_unusable_db_path(capsys, tmp_path):
    code, _, err = _run(capsys, "runs", "--db", str(tmp_path / "missing" / "runs.db"))
    assert code == 1 and "does not exist" in _error_line(err)
