"""The generated samples of a run's latest evaluation, filterable by outcome."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Label, Select

from tui.data import format_value

FILTERS = [("All samples", "all"), ("Correct", "correct"), ("Incorrect", "incorrect")]
MAX_ROWS = 5000
"""Rows kept in the table; a rollout can generate far more."""


class SamplesView(Vertical):
    """Rows arrive with `add`; choosing a filter posts `FilterChanged` so the screen reads the
    samples again; enter on a row posts `Opened` with the full sample."""

    class FilterChanged(Message):
        def __init__(self, correct: bool | None) -> None:
            super().__init__()
            self.correct = correct

    class Opened(Message):
        def __init__(self, sample: dict[str, Any]) -> None:
            super().__init__()
            self.sample = sample

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._samples: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        with Horizontal(classes="samples-bar"):
            yield Select(FILTERS, value="all", allow_blank=False, compact=True, id="samples-filter")
            yield Label("No samples yet.", id="samples-count")
        table = DataTable(cursor_type="row", id="samples-table")
        table.add_column("#", key="idx")
        table.add_column("Question", key="question", width=38)
        table.add_column("Target", key="target")
        table.add_column("Answer", key="answer")
        table.add_column("", key="correct")
        yield table

    @property
    def correct_filter(self) -> bool | None:
        value = self.query_one("#samples-filter", Select).value
        return None if value == "all" else value == "correct"

    def reset(self) -> None:
        self._samples.clear()
        self.query_one(DataTable).clear()

    def add(self, rows: list[dict[str, Any]]) -> None:
        table = self.query_one(DataTable)
        for row in rows[: max(0, MAX_ROWS - len(self._samples))]:
            key = str(row["id"])
            self._samples[key] = row
            number = f"{row['idx']}" + (f".{row['sample']}" if row["sample"] else "")
            table.add_row(
                number,
                Text(" ".join(row["question"].split()), no_wrap=True, overflow="ellipsis"),
                format_value(row["target"]),
                "–" if row["answer"] is None else format_value(row["answer"]),
                "✓" if row["correct"] else "✗",
                key=key,
            )

    def show_counts(self, step: int | None, total: int, correct: int) -> None:
        label = self.query_one("#samples-count", Label)
        if not total:
            label.update("No samples yet.")
            return
        label.update(f"step {step}: {total} samples, {correct} correct ({correct / total:.1%})")

    @on(Select.Changed, "#samples-filter")
    def _filter_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.FilterChanged(self.correct_filter))

    @on(DataTable.RowSelected, "#samples-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.Opened(self._samples[str(event.row_key.value)]))
