"""The runs table: one row per run, updated in place as runs progress."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from tui.data import STATUS_THEME_COLOURS, format_duration, format_timestamp, format_value
from engine.core.store import RunOrder, RunRow


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


def fit(text: str, width: int, right: bool = False) -> str:
    """Exactly `width` characters: cut with an ellipsis or padded."""
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.rjust(width) if right else text.ljust(width)


def status_text(row: RunRow) -> str:
    """The status, with a queued run's place in the queue in as many words as fit."""
    if row.status != "queued" or row.queue_position is None:
        return row.status
    width = next(c.width for c in COLUMNS if c.key == "status")
    forms = (f"queued #{row.queue_position}", f"queue #{row.queue_position}", f"#{row.queue_position}")
    return next((text for text in forms if len(text) <= width), forms[-1])


def cell_texts(row: RunRow, marked: bool, now: float) -> dict[str, str]:
    """The plain text of each cell (before fitting) for one run."""
    end = row.finished_at or (now if row.status == "running" else None)
    duration = end - row.started_at if row.started_at and end else None
    return {
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


class RunsTable(DataTable):
    """Shows a page of runs; `show` diffs against what is on screen so live updates keep the
    cursor and scroll position."""

    class SortRequested(Message):
        """A column header was clicked."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", cell_padding=0, **kwargs)
        self.marked: set[int] = set()
        self._rows: list[RunRow] = []
        self._shown: dict[int, dict[str, str]] = {}
        self._widths = {c.key: c.width for c in COLUMNS}
        self._order = RunOrder()

    def on_mount(self) -> None:
        self._fit_widths()
        for column in COLUMNS:
            self.add_column(self._header(column), width=self._widths[column.key] + GAP, key=column.key)
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._redraw())

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
            self._rebuild()
            if current is not None and current.id in self.run_ids:
                self.select_run(current.id)
            elif rows:
                self.move_cursor(row=min(index, len(rows) - 1), animate=False)
            return
        self._rows = rows
        now = time.time()
        for row in rows:
            texts = cell_texts(row, row.id in self.marked, now)
            old = self._shown[row.id]
            for key, text in texts.items():
                if old[key] != text:
                    self.update_cell(str(row.id), key, self._cell(key, text, row.status))
            self._shown[row.id] = texts

    def toggle_mark(self) -> None:
        row = self.current_run
        if row is None:
            return
        self.marked ^= {row.id}
        text = cell_texts(row, row.id in self.marked, time.time())["id"]
        self._shown[row.id]["id"] = text
        self.update_cell(str(row.id), "id", self._cell("id", text, row.status))

    def select_run(self, run_id: int) -> None:
        if run_id in self.run_ids:
            self.move_cursor(row=self.run_ids.index(run_id), animate=False)

    def set_order(self, order: RunOrder) -> None:
        self._order = order
        for column in COLUMNS:
            self.columns[column.key].label = self._header(column)  # type: ignore[index]
        self.refresh()

    # -- rendering ------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Redraw every row (the cursor goes back to the top)."""
        self.clear()
        now = time.time()
        self._shown = {}
        for row in self._rows:
            texts = cell_texts(row, row.id in self.marked, now)
            self._shown[row.id] = texts
            self.add_row(*(self._cell(key, text, row.status) for key, text in texts.items()), key=str(row.id))

    def _redraw(self) -> None:
        """Redraw every row in place (new theme or widths), keeping the cursor."""
        current = self.current_run
        self._rebuild()
        if current is not None:
            self.select_run(current.id)

    def _cell(self, key: str, text: str, status: str) -> Text:
        column = next(c for c in COLUMNS if c.key == key)
        style = ""
        if key == "status":
            style = self.app.theme_variables.get(STATUS_THEME_COLOURS.get(status, ""), "")
        elif key == "id" and text.startswith(MARK):
            style = self.app.theme_variables.get("accent", "")
        fitted = fit(text, self._widths[key], column.right)
        return Text(fitted + " " * GAP, style=style, no_wrap=True, end="")

    def _header(self, column: ColumnSpec) -> Text:
        label = column.label
        if column.key == self._order.column:
            label += "▼" if self._order.descending else "▲"
        return Text(fit(label, self._widths[column.key], column.right) + " " * GAP)

    def _fit_widths(self) -> bool:
        """Share spare width among the flexible columns; True when widths changed."""
        fixed = sum(c.width + GAP for c in COLUMNS if not c.flexible)
        flexible = [c for c in COLUMNS if c.flexible]
        spare = self.size.width - SCROLLBAR - fixed - sum(c.width + GAP for c in flexible)
        extra = max(0, spare) // len(flexible)
        widths = {**self._widths, **{c.key: c.width + extra for c in flexible}}
        changed = widths != self._widths
        self._widths = widths
        return changed

    def on_resize(self) -> None:
        if self.columns and self._fit_widths():
            for column in COLUMNS:
                self.columns[column.key].width = self._widths[column.key] + GAP  # type: ignore[index]
                self.columns[column.key].label = self._header(column)  # type: ignore[index]
            self._redraw()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.post_message(self.SortRequested(str(event.column_key.value)))
