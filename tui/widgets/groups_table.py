"""The runs table grouped: one row per group with its run count, each shown metric column's
mean ± std, and each shown setting's value when the group's runs share it."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from engine.core.columns import METRIC
from engine.core.grouping import RunGroup
from engine.core.text import visible
from tui.data import format_value
from tui.widgets.runs_table import GAP, SCROLLBAR, ColumnSpec, column_spec, fit

AGGREGATED_FACTS = ("accuracy", "loss")
"""Fixed columns summarised as mean ± std in a group."""
PER_RUN_FACTS = ("id", "name", "started", "duration")
"""Fixed columns that say nothing about a group."""
STAT_WIDTH = 17
"""Room for '0.813 ± 0.021 (n=3)' less a digit; longer ones are cut with an ellipsis."""
GROUP = ColumnSpec("group", "Group", 12, flexible=True)
RUNS = ColumnSpec("runs", "Runs", 5, right=True)


def group_keys(keys: list[str]) -> list[str]:
    """The shown run columns that a group row summarises."""
    return [k for k in keys if k not in PER_RUN_FACTS]


def is_aggregated(key: str) -> bool:
    return key in AGGREGATED_FACTS or key.startswith(METRIC)


def group_cell(group: RunGroup, key: str) -> str:
    """Mean ± std (n) of a metric column; the shared value of another one, or how many differ."""
    if is_aggregated(key):
        stat = group.stats.get(key)
        return "" if stat is None else stat.text()
    values = group.values.get(key, ())
    if len(values) == 1:
        return format_value(values[0])
    return f"{len(values)} values" if values else ""


class GroupsTable(DataTable):
    """Shows the groups of the runs screen; `groups[cursor_row]` is the group under the cursor."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", cell_padding=0, **kwargs)
        self.groups: list[RunGroup] = []
        self.grouping = ""
        self._keys: list[str] = []
        self._specs: list[ColumnSpec] = []

    @property
    def current_group(self) -> RunGroup | None:
        if not self.groups or not self.is_valid_row_index(self.cursor_row):
            return None
        return self.groups[self.cursor_row]

    def show(self, grouping: str, keys: list[str], groups: list[RunGroup]) -> None:
        """Display `groups` (made by `grouping` over the run columns `keys`), keeping the cursor
        on the same group when it is still there."""
        if (grouping, keys, groups) == (self.grouping, self._keys, self.groups) and self.columns:
            return  # a poll that found nothing new: keep the scroll position
        current = self.current_group
        specs = [GROUP, RUNS] + [
            ColumnSpec(k, column_spec(k).label, STAT_WIDTH, right=True) if is_aggregated(k) else column_spec(k)
            for k in group_keys(keys)
        ]
        if specs != self._specs or not self.columns:
            self._specs = specs
            self.clear(columns=True)
            widths = self._widths()
            for spec in specs:
                self.add_column(Text(fit(spec.label, widths[spec.key], spec.right) + " " * GAP), key=spec.key, width=widths[spec.key] + GAP)
        else:
            self.clear()
        self.groups, self.grouping, self._keys = groups, grouping, keys
        widths = self._widths()
        for group in groups:
            texts = {GROUP.key: group.label(grouping), RUNS.key: str(len(group.run_ids))}
            texts |= {spec.key: group_cell(group, spec.key) for spec in specs[2:]}
            texts = {key: visible(text) for key, text in texts.items()}
            self.add_row(*(Text(fit(texts[s.key], widths[s.key], s.right) + " " * GAP, no_wrap=True, end="") for s in specs))
        keys_now = [g.key for g in groups]
        if current is not None and current.key in keys_now:
            self.move_cursor(row=keys_now.index(current.key), animate=False)

    def _widths(self) -> dict[str, int]:
        spare = self.size.width - SCROLLBAR - sum(s.width + GAP for s in self._specs)
        return {s.key: s.width + (max(0, spare) if s.flexible else 0) for s in self._specs}

    def on_resize(self) -> None:
        if self._specs:
            self.clear(columns=True)
            self._specs = []
            self.show(self.grouping, list(self._keys), list(self.groups))
