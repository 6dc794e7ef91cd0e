"""Grouping runs and their mean ± std (engine.core.grouping), without a database."""

from __future__ import annotations

import math

import pytest

from engine.core.grouping import NO_KEY, SWEEP, Stat, group_runs, stat_of


def test_a_three_seed_sweep_is_one_group_with_mean_and_std():
    rows = [("sweep:7", 7, 0.80, 0), ("sweep:7", 8, 0.83, 1), ("sweep:7", 9, 0.79, 2)]
    [group] = group_runs(rows, ["metric:accuracy", "setting:seed"], {"metric:accuracy"}).groups
    assert group.key == "sweep:7" and group.run_ids == (7, 8, 9)
    stat = group.stats["metric:accuracy"]
    assert stat.n == 3 and stat.mean == pytest.approx(0.80667, abs=1e-5)
    assert stat.std == pytest.approx(0.020817, abs=1e-6)  # sample std (n - 1)
    assert stat.text() == "0.81 ± 0.02 (n=3)"
    assert group.values["setting:seed"] == (0, 1, 2)


@pytest.mark.parametrize(
    ("stat", "text"),
    [
        (Stat(0.8066, 0.0208, 3), "0.81 ± 0.02 (n=3)"),
        (Stat(812.5, 30.2, 4), "812 ± 30 (n=4)"),
        (Stat(0.25, 0.0, 2), "0.25 ± 0 (n=2)"),
        (Stat(0.7, 0.0, 1), "0.7 (n=1)"),
        (Stat(1.5e-4, 2.5e-5, 3), "0.00015 ± 2.5e-05 (n=3)"),
        (Stat(2.5e6, 1.2e5, 2), "2.5e+06 ± 1.2e+05 (n=2)"),
    ],
)
def test_stat_text_rounds_the_mean_to_the_std(stat, text):
    assert stat.text() == text


def test_stat_of_keeps_finite_numbers_only():
    assert stat_of([None, "0.5", math.nan, math.inf, True]) is None
    assert stat_of([None, 1, 3.0, math.nan]) == Stat(2.0, math.sqrt(2), 2)


def test_groups_in_natural_order_runs_without_a_key_last_and_each_run_once_per_group():
    rows = [
        (None, 1, 0.1), ("sweep:10", 2, 0.2), ("sweep:9", 3, 0.3), ("sweep:10", 2, 0.2), ("sweep:9", 4, None),
    ]
    groups = group_runs(rows, ["accuracy"], {"accuracy"}).groups
    assert [g.key for g in groups] == ["sweep:9", "sweep:10", None]
    assert [g.run_ids for g in groups] == [(3, 4), (2,), (1,)]
    assert groups[0].stats["accuracy"] == Stat(0.3, 0.0, 1)  # the run without a value is not counted
    assert groups[2].label(SWEEP) == NO_KEY[SWEEP]


def test_numeric_keys_sort_by_value_and_other_columns_keep_distinct_values():
    rows = [(2e-3, 1, "completed"), (1e-3, 2, "failed"), (2e-3, 3, "completed"), (1e-3, 4, None)]
    groups = group_runs(rows, ["status"], set()).groups
    assert [(g.key, g.values["status"]) for g in groups] == [(1e-3, ("failed",)), (2e-3, ("completed",))]
    assert groups[0].stats == {}


def test_only_the_first_groups_are_summarised_and_all_are_counted():
    rows = [(f"sweep:{i // 3}", i, float(i)) for i in range(30)]
    grouped = group_runs(rows, ["accuracy"], {"accuracy"}, first=2)
    assert grouped.count == 10
    assert [(g.key, g.run_ids, g.stats["accuracy"].mean) for g in grouped.groups] == [
        ("sweep:0", (0, 1, 2), 1.0), ("sweep:1", (3, 4, 5), 4.0),
    ]
