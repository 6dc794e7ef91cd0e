"""Runs grouped by a setting, a tag, a sweep or a pipeline, with each metric's mean ± std.

Pure: the store reads one row per (group key, run) and `group_runs` folds them here, in Python.
Measured (bench/tui.py, 10,000 runs in 3,334 sweeps, a 2-core machine at load 12-14): the store's
read plus this fold took 0.68 s, the same groups folded in SQL alone (count, avg and avg of
squares, no std in SQLite) 0.94 s; this fold summarises only the page of groups shown, SQL's
`group by` all of them. Python also keeps an exact sample std and tags' one-group-per-tag rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.core.columns import SETTING, SETTING_NAMES

SWEEP = "sweep"
PIPELINE = "pipeline"
TAG = "tag"
TAG_PREFIXES = {SWEEP: "sweep:", PIPELINE: "pipeline:"}
"""Sweeps tag their runs `sweep:<id>`, pipelines their stages `pipeline:<id>`."""

GROUPINGS: tuple[tuple[str, str], ...] = (
    ("sweep (runs tagged sweep:<id>)", SWEEP),
    ("pipeline (a pipeline run and its stages)", PIPELINE),
    ("tag (a run with two tags is in both groups)", TAG),
) + tuple((f"setting {name}", SETTING + name) for name in SETTING_NAMES)
"""(what pickers list, key) of every way to group runs."""

NUMBER_TYPES = (int, float)
"""Numbers as SQLite returns them (a bool is no metric value)."""
NO_KEY = {SWEEP: "(no sweep)", PIPELINE: "(no pipeline)", TAG: "(no tag)"}
NO_VALUE = "(not set)"


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation of one metric over a group's runs that logged it."""

    mean: float
    std: float
    n: int

    def text(self) -> str:
        """'0.81 ± 0.02 (n=3)': the std to one significant digit and the mean to as many
        decimals; one run shows its value alone."""
        if self.n == 1:
            return f"{self.mean:.4g} (n=1)"
        if self.std == 0:
            return f"{self.mean:.4g} ± 0 (n={self.n})"
        if abs(self.mean) >= 1e5 or max(abs(self.mean), self.std) < 1e-3:
            return f"{self.mean:.2g} ± {self.std:.2g} (n={self.n})"
        decimals = max(0, -math.floor(math.log10(self.std)))
        return f"{self.mean:.{decimals}f} ± {self.std:.{decimals}f} (n={self.n})"


def stat_of(values: Iterable[Any]) -> Stat | None:
    """The Stat of the finite numbers among `values` (None when there are none). Plain float
    sums: `statistics.stdev` computes exactly, with fractions, about 50x slower, and a shown
    grouping of 10,000 runs is folded again at every poll."""
    numbers = [float(v) for v in values if type(v) in NUMBER_TYPES and math.isfinite(v)]
    if not numbers:
        return None
    n = len(numbers)
    mean = math.fsum(numbers) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in numbers) / (n - 1)) if n > 1 else 0.0
    return Stat(mean, std, n)


@dataclass(frozen=True)
class RunGroup:
    key: Any
    """The value the runs share (None: runs without one)."""
    run_ids: tuple[int, ...]
    stats: dict[str, Stat | None]
    """Per metric column."""
    values: dict[str, tuple[Any, ...]]
    """Per other column, its distinct values in the group (None left out)."""

    def label(self, grouping: str) -> str:
        if self.key is None:
            return NO_KEY.get(grouping, NO_VALUE)
        return str(self.key)


@dataclass(frozen=True)
class Grouped:
    groups: list[RunGroup]
    """The first groups in key order, with their stats."""
    count: int
    """How many groups there are in all."""


def group_runs(
    rows: Iterable[Sequence[Any]], columns: Sequence[str], metrics: set[str], first: int | None = None
) -> Grouped:
    """Fold rows of (group key, run id, one value per column) into groups, in natural key order
    (sweep:2 before sweep:10; runs without a key last). A run listed twice under one key counts
    once. `metrics` names the columns summarised as mean ± std; the others keep their distinct
    values. Only the `first` groups (all when None) are summarised: a table shows a page of
    them, and summarising all 3,334 groups of 10,000 runs took most of the time."""
    members: dict[Any, dict[int, Sequence[Any]]] = {}
    for key, run_id, *values in rows:
        members.setdefault(key, {}).setdefault(run_id, values)
    keys = sorted(members, key=_natural)
    groups = []
    for key in keys[:first]:
        runs = members[key]
        stats, distinct = {}, {}
        for column, values in zip(columns, zip(*runs.values())):
            if column in metrics:
                stats[column] = stat_of(values)
            else:
                distinct[column] = tuple(dict.fromkeys(v for v in values if v is not None))
        groups.append(RunGroup(key, tuple(runs), stats, distinct))
    return Grouped(groups, len(keys))


def _natural(key: Any) -> tuple:
    if key is None:
        return (2, ())
    if type(key) in NUMBER_TYPES:
        return (0, (float(key),))
    parts = re.split(r"(\d+)", str(key))
    return (1, tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts))
