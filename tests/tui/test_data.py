"""The pure helpers behind the screens."""

from __future__ import annotations

from tui.data import (
    Outcome,
    downsample,
    eta_seconds,
    flatten,
    format_bytes,
    format_duration,
    format_value,
    outcome_matrix,
    outcomes,
    parse_tags,
    spec_diff,
)
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


def test_parse_tags():
    assert parse_tags("a, b  c,a") == ["a", "b", "c"]


def test_spec_diff_flattens_and_keeps_differences_only():
    a = {"kind": "sft", "lr": 1e-3, "env": {"gpu": "h100", "torch": "2.13"}}
    b = {"kind": "sft", "lr": 2e-3, "env": {"gpu": "h100"}}
    assert flatten(a)["env.gpu"] == "h100"
    assert spec_diff([a, b]) == [("env.torch", ["2.13", None]), ("lr", [1e-3, 2e-3])]


def test_outcome_matrix_matches_by_question_and_filters_differences():
    run1 = outcomes([
        {"question": "q1", "correct": 1}, {"question": "q2", "correct": 0},
        {"question": "q3", "correct": 1}, {"question": "q3", "correct": 0},
    ])
    run2 = outcomes([{"question": "q2", "correct": 0}, {"question": "q1", "correct": 0}])
    assert run1["q3"] == Outcome(1, 2) and run1["q3"].symbol == "1/2"
    rows = outcome_matrix([run1, run2])
    assert [(q, [c.symbol if c else None for c in cells]) for q, cells in rows] == [
        ("q1", ["✓", "✗"]), ("q2", ["✗", "✗"]), ("q3", ["1/2", None]),
    ]
    assert [q for q, _ in outcome_matrix([run1, run2], only_differing=True)] == ["q1", "q3"]


def test_downsample_keeps_last_point():
    points = [(i, float(i)) for i in range(1001)]
    kept = downsample(points, 100)
    assert len(kept) <= 102 and kept[-1] == (1000, 1000.0) and kept[0] == (0, 0.0)


def test_fit():
    assert fit("abcdef", 4) == "abc…"
    assert fit("ab", 4, right=True) == "  ab"
