"""The columns a runs list can add to its fixed ones: any setting of the run spec (its effective
value: the one given, else the kind's default) and any final metric (the run's summary).

A column is named by a key, `setting:<name>` or `metric:<name>`; keys are what the app stores
as its choice, so a key read back from a database is checked here before any SQL is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.core.metrics import TITLES, is_declared
from engine.core.metrics import title as metric_title
from engine.core.spec import RunSpec

SETTING = "setting:"
METRIC = "metric:"

FACT_SETTINGS = ("kind", "name", "model")
"""Settings every runs list shows as fixed columns already."""

SETTING_NAMES: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(RunSpec) if "kinds" in f.metadata and f.name not in FACT_SETTINGS
)
"""Every setting a column may show, in the spec's order."""


@dataclass(frozen=True)
class RunColumn:
    key: str
    title: str
    """What pickers list: the setting's name, or the metric's title and name."""
    header: str
    """The table header: the setting's or metric's name."""

    @property
    def is_metric(self) -> bool:
        return self.key.startswith(METRIC)

    @property
    def name(self) -> str:
        return self.key.partition(":")[2]


def setting_column(name: str) -> RunColumn:
    return RunColumn(SETTING + name, f"setting {name}", name)


def metric_column(name: str) -> RunColumn:
    return RunColumn(METRIC + name, f"{metric_title(name)} ({name})", name)


def is_valid_key(key: str) -> bool:
    """A key that names a known setting, or a declared metric whose name can sit in a JSON path."""
    kind, _, name = key.partition(":")
    if kind + ":" == SETTING:
        return name in SETTING_NAMES
    if kind + ":" == METRIC:
        return is_declared(name) and name.isprintable() and '"' not in name and "\\" not in name
    return False


def column_for(key: str) -> RunColumn:
    """The column a valid key names."""
    return setting_column(key[len(SETTING):]) if key.startswith(SETTING) else metric_column(key[len(METRIC):])


def choosable_columns(logged_metrics: list[str]) -> list[RunColumn]:
    """Every setting, then every declared metric and any other metric a run logged (per-category
    breakdowns such as `accuracy/family=length`)."""
    metrics = list(TITLES) + sorted(set(logged_metrics) - set(TITLES))
    columns = [setting_column(name) for name in SETTING_NAMES]
    return columns + [metric_column(name) for name in metrics if is_valid_key(METRIC + name)]
