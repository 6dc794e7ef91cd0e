"""The pure helpers behind the screens."""

from __future__ import annotations

import dataclasses

from engine.core.spec import RunSpec
from engine.core.store import Run
from tui.data import (
    Axis,
    best_value,
    chart_title,
    eta_seconds,
    flatten,
    format_bytes,
    format_duration,
    format_value,
    nice_axis,
    nice_step,
    outcome_matrix,
    parse_tags,
    result_figures,
    spec_diff,
    tick_labels,
)
from engine.core.paired import Outcome, outcomes
from tui.widgets.run_progress import progress_text
from tui.widgets.runs_table import fit


def test_format_duration():
    assert [format_duration(s) for s in (None, 5, 65, 3725, 90000)] == ["", "5s", "1m05s", "1h02m", "1d01h"]


def test_format_value_and_bytes():
    assert format_value(0.123456) == "0.1235"
    assert format_value(1e-5) == "1e-05"
    assert format_value(32) == "32"
    assert format_value(None) == ""
    assert [format_bytes(b) for b in (12, 2048, 5 * 1024**2, 3 * 1024**3)] == ["12 B", "2.0 KB", "5.0 MB", "3.0 GB"]


def test_eta():
    assert eta_seconds(25, 100, 10.0) == 30.0
    assert eta_seconds(0, 100, 10.0) is None
    assert eta_seconds(100, 100, 10.0) is None
    assert eta_seconds(30, 100, 10.0, since_done=20) == 70.0  # 10 steps in 10 s, 70 to go
    assert eta_seconds(20, 100, 10.0, since_done=20) is None  # no step yet since the pace began


def test_a_resumed_runs_eta_counts_this_attempt_only():
    """Started 10 h ago, stopped most of that time, resumed 100 s ago at step 75: the ETA goes
    by the 50 steps since then, not by 125 steps in 10 h."""
    now = 1_000_000.0
    spec = RunSpec(kind="rft")
    run = Run(
        id=3, kind="rft", name="", status="running", spec=spec, created_at=now - 36_000, started_at=now - 36_000,
        finished_at=None, pid=None, pid_started=None, error=None, parent_id=None, tags=(), notes="",
        environment={}, run_dir="", progress_done=125, progress_total=939, summary={},
        pace_since=now - 100, pace_since_done=75,
    )
    assert progress_text(run, now) == "125/939 · ETA 27m08s"  # 814 steps at 2 s each
    assert progress_text(dataclasses.replace(run, pace_since=None), now) == "125/939 · ETA --"


def test_parse_tags():
    assert parse_tags("a, b  c,a") == ["a", "b", "c"]


def test_spec_diff_flattens_and_keeps_differences_only():
    a = {"kind": "sft", "lr": 1e-3, "env": {"gpu": "h100", "torch": "2.13"}}
    b = {"kind": "sft", "lr": 2e-3, "env": {"gpu": "h100"}}
    assert flatten(a)["env.gpu"] == "h100"
    assert spec_diff([a, b]) == [("env.torch", ["2.13", None]), ("lr", [1e-3, 2e-3])]


def test_outcome_matrix_matches_by_question_and_filters_differences():
    def row(question, correct, split="valid"):
        return {"split": split, "question": question, "correct": correct}

    run1 = outcomes([row("q1", 1), row("q2", 0), row("q3", 1), row("q3", 0), row("q1", 0, "shifted")])
    run2 = outcomes([row("q2", 0), row("q1", 0), row("q1", 1, "shifted")])
    assert run1["valid", "q3"] == Outcome(1, 2) and run1["valid", "q3"].symbol == "1/2"
    rows = outcome_matrix([run1, run2])
    assert [(q, [c.symbol if c else None for c in cells]) for q, cells in rows] == [
        (("valid", "q1"), ["✓", "✗"]), (("valid", "q2"), ["✗", "✗"]), (("valid", "q3"), ["1/2", None]),
        (("shifted", "q1"), ["✗", "✓"]),
    ]
    # q3 was never asked of run2: not evaluated is not a difference; the same wording on
    # another split is another question
    assert [q for q, _ in outcome_matrix([run1, run2], only_differing=True)] == [("valid", "q1"), ("shifted", "q1")]


def test_fit():
    assert fit("abcdef", 4) == "abc…"
    assert fit("ab", 4, right=True) == "  ab"


def test_steps_get_whole_round_ticks_inside_the_data():
    axis = nice_axis(0, 80, 4, integer=True)
    assert (axis.low, axis.high, axis.ticks, axis.labels) == (0, 80, [0, 20, 40, 60, 80], ["0", "20", "40", "60", "80"])
    assert nice_axis(1, 10, 5, integer=True).ticks == [2, 4, 6, 8, 10]
    assert nice_axis(0, 3, 10, integer=True).ticks == [0, 1, 2, 3]  # never a fractional step
    assert nice_axis(0, 10, 4, integer=True).ticks == [0, 5, 10]  # 2.5 is not a step of whole steps
    assert nice_axis(0, 100, 4, integer=True).ticks == [0, 25, 50, 75, 100]
    assert nice_axis(0, 3000, 3, integer=True).labels == ["0", "1000", "2000", "3000"]
    assert nice_axis(0, 1_000_000, 5, integer=True).labels == ["0", "0.2M", "0.4M", "0.6M", "0.8M", "1.0M"]
    assert nice_axis(0, 50_000, 5, integer=True).labels == ["0", "10k", "20k", "30k", "40k", "50k"]


def test_value_ticks_are_round_with_just_enough_digits():
    assert [nice_step(1.0, 5), nice_step(1.0, 4), nice_step(2.0, 3), nice_step(1e-3, 5)] == [0.2, 0.25, 1.0, 0.0002]
    assert nice_axis(0.2, 0.7, 3).labels == ["0.2", "0.4", "0.6"]
    assert nice_axis(0.2, 0.7, 2).labels == ["0.25", "0.50"]
    assert nice_axis(0.41, 2.43, 5).labels == ["0.5", "1.0", "1.5", "2.0"]
    assert nice_axis(0, 1e-3, 5).labels == ["0", "0.0002", "0.0004", "0.0006", "0.0008", "0.0010"]
    assert nice_axis(-0.3, 0.7, 5).labels == ["-0.2", "0", "0.2", "0.4", "0.6"]
    assert nice_axis(1e-5, 1.1e-5, 4).labels[:2] == ["1e-05", "1.025e-05"]
    assert tick_labels([0.1 + 0.2], 0.1) == ["0.3"]


def test_a_single_point_sits_on_a_short_axis_around_it():
    assert nice_axis(0.25, 0.25, 4) == Axis(0.225, 0.275, [0.25], ["0.25"])
    assert nice_axis(0, 0, 5, integer=True) == Axis(-0.5, 0.5, [0], ["0"])
    assert nice_axis(812.5, 812.5, 4).labels == ["812.5"]
    assert nice_axis(0.0, 0.0, 4) == Axis(-0.1, 0.1, [0.0], ["0"])


def test_chart_titles_show_the_last_and_best_values():
    assert best_value("loss", [2.0, 0.5, 0.7]) == 0.5 and best_value("accuracy/family=length", [0.2, 0.6, 0.4]) == 0.6
    assert best_value("lr", [1e-3, 0.0]) is None
    assert chart_title("Loss", "loss", [2.0, 0.5, 0.7]) == "Loss · last 0.7 · best 0.5"
    assert chart_title("Accuracy", "accuracy", [0.2, 0.7]) == "Accuracy · last 0.7 (best)"
    assert chart_title("Learning rate", "lr", [1e-3, 5e-4]) == "Learning rate · last 0.0005"
    assert chart_title("Accuracy", "accuracy", [0.25]) == "Accuracy · 0.25"
    assert chart_title("Loss", "loss", []) == "Loss (no points yet)"


def test_result_figures_of_a_rollout_and_of_training_runs():
    figures = result_figures("rollout", {"success_rate": 0.625, "questions_done": 8.0}, 32, 16, finished=True)
    assert [(f.title, f.value) for f in figures] == [("Success rate", "0.625"), ("Correct rate", "-"), ("Tokens / s", "-")]
    assert figures[0].caption == "of 8 questions solved" and figures[1].caption == "not logged"
    assert result_figures("sft", {"accuracy": 0.5}, 8, 4, finished=True) == []


def test_an_eval_with_the_calculator_says_so_under_its_accuracy():
    pure = result_figures("eval", {"accuracy": 0.5}, 8, 4, finished=True)
    tool = result_figures("eval", {"accuracy": 0.5}, 8, 4, finished=True, reasoning="calculator")
    assert pure[0].caption == "4 of 8 correct"
    assert tool[0].caption == "4 of 8 correct, with the calculator" and tool[0].value == pure[0].value
