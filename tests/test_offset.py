"""`--offset`: a run can take questions or rows further into a dataset (new questions for a run
that goes on from another's adapter), and the pipeline's rounds each roll out the next block."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.core.errors import DataError
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.datasets import window
from engine.pipeline import round_questions
from engine.tasks import get_task
from tests.test_bad_input import _error_line


def test_window_skips_offset_rows_then_takes_limit():
    rows = list(range(10))
    assert window(rows, 0, 0, "x") == rows
    assert window(rows, 3, 0, "x") == [3, 4, 5, 6, 7, 8, 9]
    assert window(rows, 3, 4, "x") == [3, 4, 5, 6]
    assert window(rows, 8, 4, "x") == [8, 9]
    with pytest.raises(DataError, match=r"offset: 10 skips all 10 rows of x; lower --offset\."):
        window(rows, 10, 0, "x")


def test_eval_scores_the_questions_after_the_offset(capsys, db_path, tiny_model_dir):
    code = main(["eval", "--model", tiny_model_dir, "--mode", "direct", "--max-new-tokens", "2",
                 "--offset", "3", "--limit", "2"])
    assert code == 0, capsys.readouterr().err
    valid = get_task("unit_conversion").load("valid")
    assert [s["question"] for s in RunStore(db_path).samples(1)] == [ex.question for ex in valid[3:5]]


def test_an_offset_past_the_last_question_fails_the_run_with_one_line(capsys, db_path, tiny_model_dir):
    code = main(["eval", "--model", tiny_model_dir, "--offset", "200"])
    line = _error_line(capsys.readouterr().err)
    assert code == 1 and "offset: 200 skips all 200 rows of 'valid'; lower --offset." in line
    assert RunStore(db_path).get_run(1).status == "failed"


def test_rft_trains_on_the_rows_after_the_offset_and_names_rows_by_their_place_in_the_file(
    capsys, db_path, tmp_path, tiny_model_dir
):
    path = tmp_path / "rows.json"
    rows = [[f"Convert {n} km to m.", n * 1000, f"1 km = 1000 m. {n} * 1000 = {n * 1000}."] for n in range(1, 6)]
    path.write_text(json.dumps(rows))
    common = ["rft", "--model", tiny_model_dir, "--data", str(path), "--epochs", "1", "--batch-size", "2",
              "--eval-limit", "1", "--eval-interval", "0", "--checkpoint-interval", "0"]
    assert main([*common, "--offset", "2", "--limit", "2"]) == 0, capsys.readouterr().err
    assert RunStore(db_path).get_run(1).summary["train_examples"] == 2
    rows[3][2] = "1 km = 1000 m. " * 700  # about 4,000 tokens: the tiny model reads 1,024
    path.write_text(json.dumps(rows))
    assert main([*common, "--offset", "2"]) == 1
    assert f"Dataset file {path}, row 3: the row is" in _error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("pool", "rollout_limit", "expected"),
    [
        (range(0, 8), 3, [(0, 3), (3, 3), (6, 2), (0, 3)]),  # blocks of 3, the last short, then round again
        (range(5, 11), 3, [(5, 3), (8, 3), (5, 3), (8, 3)]),  # the pool starts after rft0's questions
        (range(0, 8), 0, [(0, 8)] * 4),  # no rollout limit: every round rolls out all
        (range(2, 8), 20, [(2, 6)] * 4),  # a block larger than the pool is the pool
    ],
)
def test_each_round_rolls_out_the_next_block_of_questions(pool, rollout_limit, expected):
    spec = RunSpec(kind="pipeline", rollout_limit=rollout_limit)
    assert [round_questions(spec, r, pool) for r in range(1, 5)] == expected
