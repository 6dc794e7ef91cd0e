"""The runs table: one row per run, updated in place as runs progress, with the fixed columns
and any chosen setting and metric columns (engine.core.columns)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from engine.core.columns import column_for, is_valid_key
from engine.core.store import RunOrder, RunRow
from engine.core.text import visible
from tui.data import STATUS_THEME_COLOURS, format_duration, format_timestamp, format_value


@dataclass(frozen=True)
class ColumnSpec:
    key: str
    label: str
    width: int
    right: bool = False
    flexible: bool = False
    """Flexible columns share the width left over by the others."""


COLUMNS = (
    ColumnSpec("id", "ID", 6, right=True),
    ColumnSpec("name", "Name", 9, flexible=True),
    ColumnSpec("kind", "Kind", 8),
    ColumnSpec("status", "Status", 9),
    ColumnSpec("model", "Model", 9, flexible=True),
    ColumnSpec("accuracy", "Acc", 6, right=True),
    ColumnSpec("loss", "Loss", 6, right=True),
    ColumnSpec("started", "Started", 11),
    ColumnSpec("duration", "Time", 6, right=True),
)
GAP = 1
SCROLLBAR = 2
MARK = "●"
DEFAULT_KEYS = tuple(c.key for c in COLUMNS)
ALWAYS_SHOWN = "id"
CHOSEN_WIDTH = (6, 10)
"""A chosen column is as wide as its header, within these bounds."""


def column_spec(key: str) -> ColumnSpec:
    """The fixed column `key`, or a chosen setting or metric column (metrics right-aligned)."""
    fixed = next((c for c in COLUMNS if c.key == key), None)
    if fixed is not None:
        return fixed
    column = column_for(key)
    width = min(max(len(column.header), CHOSEN_WIDTH[0]), CHOSEN_WIDTH[1])
    return ColumnSpec(key, column.header, width, right=column.is_metric)


def shown_keys(chosen: list[str]) -> list[str]:
    """The columns to show for a stored choice: the ID first, then the valid keys chosen (a
    key this version does not know is left out)."""
    valid = [k for k in dict.fromkeys(chosen) if k != ALWAYS_SHOWN and (k in DEFAULT_KEYS or is_valid_key(k))]
    return [ALWAYS_SHOWN, *valid]


def chosen_value_keys(keys: list[str]) -> list[str]:
    """The shown columns whose values the store reads besides the fixed ones."""
    return [k for k in keys if k not in DEFAULT_KEYS]


def fit(text: str, width: int, right: bool = False) -> str:
    """Exactly `width` characters: cut with an ellipsis or padded."""
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.rjust(width) if right else text.ljust(width)


def status_text(row: RunRow) -> str:
    """The status, with a queued run's place in the queue in as many words as fit."""
    if row.status != "queued" or row.queue_position is None:
        return row.status
    width = column_spec("status").width
    forms = (f"queued #{row.queue_position}", f"queue #{row.queue_position}", f"#{row.queue_position}")
    return next((text for text in forms if len(text) <= width), forms[-1])


def cell_texts(row: RunRow, marked: bool, now: float, keys: list[str]) -> dict[str, str]:
    """The plain text of each shown cell (before fitting) for one run."""
    end = row.finished_at or (now if row.status == "running" else None)
    duration = end - row.started_at if row.started_at and end else None
    fixed = {
        "id": (MARK if marked else "") + str(row.id),
        "name": row.label,
        "kind": row.kind,
        "status": status_text(row),
        "model": row.model,
        "accuracy": "" if row.accuracy is None else f"{row.accuracy:.1%}",
        "loss": format_value(row.loss),
        "started": format_timestamp(row.started_at),
        "duration": format_duration(duration),
    }
    return {key: fixed[key] if key in fixed else visible(format_value(row.values.get(key))) for key in keys}


class RunsTable(DataTable):
    """Shows a page of runs; `show` diffs against what is on screen so live updates keep the
    cursor and scroll position. Only shown runs stay selected: a run that a filter hides, or a
    delete removes, leaves the selection that compare and delete act on."""

    class SortRequested(Message):
        """A column header was clicked."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", cell_padding=0, **kwargs)
        self.marked: set[int] = set()
        self.keys: list[str] = list(DEFAULT_KEYS)
        self._rows: list[RunRow] = []
        self._shown: dict[int, dict[str, str]] = {}
        self._widths = {c.key: c.width for c in COLUMNS}
        self._order = RunOrder()

    @property
    def specs(self) -> list[ColumnSpec]:
        return [column_spec(key) for key in self.keys]

    def on_mount(self) -> None:
        self._add_columns()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._redraw())

    def _add_columns(self) -> None:
        self._fit_widths()
        for column in self.specs:
            self.add_column(self._header(column), width=self._widths[column.key] + GAP, key=column.key)

    def set_keys(self, keys: list[str]) -> None:
        """Show these columns (see `shown_keys`); the rows are redrawn once the next page,
        read with their values, arrives in `show`."""
        if keys == self.keys:
            return
        self.keys = keys
        self._rows, self._shown = [], {}
        self.clear(columns=True)
        self._add_columns()

    # -- what is shown --------------------------------------------------------------------

    @property
    def run_ids(self) -> list[int]:
        return [row.id for row in self._rows]

    @property
    def current_run(self) -> RunRow | None:
        if not self._rows or not self.is_valid_row_index(self.cursor_row):
            return None
        return self._rows[self.cursor_row]

    def rows_by_id(self) -> dict[int, RunRow]:
        return {row.id: row for row in self._rows}

    def show(self, rows: list[RunRow]) -> None:
        """Display `rows`, changing only the cells that differ when the runs are the same."""
        if [r.id for r in rows] != self.run_ids:
            current, index = self.current_run, self.cursor_row
            self._rows = rows
            self.marked &= set(self.run_ids)
            self._rebuild()
            if current is not None and current.id in self.run_ids:
                self.select_run(current.id)
            elif rows:
                self.move_cursor(row=min(index, len(rows) - 1), animate=False)
            return
        self._rows = rows
        now = time.time()
        for row in rows:
            texts = cell_texts(row, row.id in self.marked, now, self.keys)
            old = self._shown[row.id]
            for key, text in texts.items():
                if old[key] != text:
                    self.update_cell(str(row.id), key, self._cell(key, text, row.status))
            self._shown[row.id] = texts

    def toggle_mark(self) -> None:
        row = self.current_run
        if row is not None:
            self._set_marks(self.marked ^ {row.id})

    def clear_marks(self) -> None:
        self._set_marks(set())

    def _set_marks(self, marked: set[int]) -> None:
        changed, self.marked = self.marked ^ marked, marked
        rows = self.rows_by_id()
        for run_id in changed & set(rows):
            text = cell_texts(rows[run_id], run_id in marked, time.time(), self.keys)["id"]
            self._shown[run_id]["id"] = text
            self.update_cell(str(run_id), "id", self._cell("id", text, rows[run_id].status))

    def select_run(self, run_id: int) -> None:
        if run_id in self.run_ids:
            self.move_cursor(row=self.run_ids.index(run_id), animate=False)

    def set_order(self, order: RunOrder) -> None:
        self._order = order
        for column in self.specs:
            self.columns[column.key].label = self._header(column)  # type: ignore[index]
        self.refresh()

    # -- rendering ------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Redraw every row (the cursor goes back to the top)."""
        self.clear()
        now = time.time()
        self._shown = {}
        for row in self._rows:
            texts = cell_texts(row, row.id in self.marked, now, self.keys)
            self._shown[row.id] = texts
            self.add_row(*(self._cell(key, text, row.status) for key, text in texts.items()), key=str(row.id))

    def _redraw(self) -> None:
        """Redraw every row in place (new theme or widths), keeping the cursor."""
        current = self.current_run
        self._rebuild()
        if current is not None:
            self.select_run(current.id)

    def _cell(self, key: str, text: str, status: str) -> Text:
        column = column_spec(key)
        style = ""
        if key == "status":
            style = self.app.theme_variables.get(STATUS_THEME_COLOURS.get(status, ""), "")
        elif key == "id" and text.startswith(MARK):
            style = self.app.theme_variables.get("accent", "")
        fitted = fit(text, self._widths[key], column.right)
        return Text(fitted + " " * GAP, style=style, no_wrap=True, end="")

    def _header(self, column: ColumnSpec) -> Text:
        label, width = column.label, self._widths[column.key]
        if column.key == self._order.column:  # the arrow stays when a long label is cut
            label = fit(label, min(len(label), width - 1)) + ("▼" if self._order.descending else "▲")
        return Text(fit(label, width, column.right) + " " * GAP)

    def _fit_widths(self) -> bool:
        """Share spare width among the flexible columns shown; True when widths changed."""
        specs = self.specs
        flexible = [c for c in specs if c.flexible]
        spare = self.size.width - SCROLLBAR - sum(c.width + GAP for c in specs)
        extra = max(0, spare) // len(flexible) if flexible else 0
        widths = {c.key: c.width + (extra if c.flexible else 0) for c in specs}
        changed = widths != self._widths
        self._widths = widths
        return changed

    def on_resize(self) -> None:
        if self.columns and self._fit_widths():
            for column in self.specs:
                self.columns[column.key].width = self._widths[column.key] + GAP  # type: ignore[index]
                self.columns[column.key].label = self._header(column)  # type: ignore[index]
            self._redraw()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.post_message(self.SortRequested(str(event.column_key.value)))
