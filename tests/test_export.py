"""`engine export`: the files load in pandas with the seeded runs' settings, metrics and samples."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from engine.cli import main
from tests.tui.seed import seed

SEEDED_POINTS = {1: 44, 2: 3, 3: 18, 4: 2}
"""Metric points per seeded run: sft logs loss and lr every 5 of 80 steps and accuracy and
shifted accuracy every 20 (17 + 17 + 5 + 5), the eval 3 at step 0, the rft 7 + 7 + 2 + 2 over 30
steps, the rollout 2."""


@pytest.fixture
def seeded(db_path):
    seed(db_path).close()
    return db_path


def export(db_path, out, *args: str) -> int:
    return main(["export", *args, "--db", str(db_path), "--out", str(out)])


def test_every_run_exports_to_files_pandas_reads(seeded, tmp_path):
    out = tmp_path / "export"
    assert export(seeded, out) == 0

    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.run_id) == [1, 2, 3, 4, 5, 6]
    assert {"name", "kind", "status", "duration_s", "spec.learning_rate", "spec.limit", "metric.accuracy"} <= set(runs.columns)
    by_id = runs.set_index("run_id")
    assert by_id.loc[2, "metric.accuracy"] == 0.25 and by_id.loc[2, "metric.tokens_per_s"] == 812.5
    assert by_id.loc[2, "spec.limit"] == 8 and by_id.loc[2, "spec.mode"] == "cot"
    assert by_id.loc[1, "spec.epochs"] == 2 and by_id.loc[1, "spec.learning_rate"] == 0.002  # given, and a default
    assert pd.isna(by_id.loc[2, "spec.epochs"])  # a training setting does not apply to an eval
    assert by_id.loc[1, "duration_s"] == 754 and by_id.loc[3, "status"] == "failed"

    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == ["run_id", "step", "name", "value", "time"]
    assert metrics.groupby("run_id").size().to_dict() == SEEDED_POINTS
    sft_accuracy = metrics.query("run_id == 1 and name == 'accuracy'")
    assert list(sft_accuracy.step) == [0, 20, 40, 60, 80] and sft_accuracy.value.iloc[-1] == pytest.approx(0.7)

    samples = pd.read_csv(out / "samples.csv")
    assert list(samples.columns) == ["run_id", "split", "step", "idx", "sample", "question", "target", "output", "answer", "correct"]
    assert samples.groupby("run_id").correct.agg(["size", "sum"]).to_dict("index") == {
        1: {"size": 16, "sum": 7}, 2: {"size": 8, "sum": 2},  # run 1 evaluated at steps 40 and 80
    }
    assert samples.output.str.contains("\n").all()  # multi-line outputs survive the round trip

    with open(out / "runs.json", encoding="utf-8") as f:
        objects = json.load(f)
    flat = pd.json_normalize(objects)
    assert len(flat) == 6 and flat.loc[0, "spec_given.epochs"] == 2 and flat.loc[0, "artifacts"][0]["kind"] == "adapter"
    assert flat.loc[1, "summary.accuracy"] == 0.25


def test_ids_or_filters_choose_the_runs(seeded, tmp_path):
    assert export(seeded, tmp_path / "evals", "--kind", "eval") == 0
    assert list(pd.read_csv(tmp_path / "evals" / "runs.csv").name) == ["eval-base", "eval-direct"]
    assert export(seeded, tmp_path / "two", "4", "2") == 0
    assert list(pd.read_csv(tmp_path / "two" / "runs.csv").run_id) == [4, 2]
    assert set(pd.read_csv(tmp_path / "two" / "metrics.csv").run_id) == {2, 4}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["99"], "No run with id 99"),
        (["2", "--tag", "baseline"], "not both"),
        (["--tag", "nothing"], "No runs in"),
    ],
)
def test_bad_selections_fail_with_one_line(seeded, tmp_path, capsys, args, message):
    assert export(seeded, tmp_path / "out", *args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_out_path_that_is_a_file_is_refused(seeded, tmp_path, capsys):
    assert export(seeded, seeded) == 1
    assert "is a file" in capsys.readouterr().err
