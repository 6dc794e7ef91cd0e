"""The generated samples of one of a run's evaluations (the latest unless one is picked), of
one split (a training run scores valid and shifted), filterable by outcome."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Label, Select

from engine.core.text import visible
from tui.data import format_value

FILTERS = [("All samples", "all"), ("Correct", "correct"), ("Incorrect", "incorrect")]
MAX_ROWS = 5000
"""Rows kept in the table; a rollout can generate far more."""


class SamplesView(Vertical):
    """Rows arrive with `add`; choosing a filter posts `FilterChanged`, choosing a split
    `SplitChosen` and choosing a step `StepChosen`, so the screen reads the samples again; enter
    on a row posts `Opened` with the full sample."""

    BINDINGS = [
        Binding("left_square_bracket", "step(-1)", "Earlier step", show=False, tooltip="Samples of the evaluation before", id="samples.earlier"),
        Binding("right_square_bracket", "step(1)", "Later step", show=False, tooltip="Samples of the evaluation after", id="samples.later"),
    ]

    class FilterChanged(Message):
        def __init__(self, correct: bool | None) -> None:
            super().__init__()
            self.correct = correct

    class SplitChosen(Message):
        def __init__(self, split: str) -> None:
            super().__init__()
            self.split = split

    class StepChosen(Message):
        """`step` is None when the latest step was chosen: the view then follows new ones."""

        def __init__(self, step: int | None) -> None:
            super().__init__()
            self.step = step

    class Opened(Message):
        def __init__(self, sample: dict[str, Any]) -> None:
            super().__init__()
            self.sample = sample

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._samples: dict[str, dict[str, Any]] = {}
        self._steps: list[int] = []
        self._splits: list[str] = []

    def compose(self) -> ComposeResult:
        with Horizontal(classes="samples-bar"):
            yield Select(FILTERS, value="all", allow_blank=False, compact=True, id="samples-filter")
            yield Select([("no samples yet", None)], allow_blank=False, compact=True, id="samples-split")
            yield Select([("no samples yet", None)], allow_blank=False, compact=True, id="samples-step")
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

    @property
    def steps(self) -> list[int]:
        """The steps the picker offers, oldest first."""
        return list(self._steps)

    def show_splits(self, splits: list[str], shown: str | None) -> None:
        """The splits that have samples, `shown` selected; the picker hides while there is only one."""
        if self._offer("#samples-split", splits, self._splits, shown, [(visible(s), s) for s in splits]):
            self._splits = splits

    def show_steps(self, steps: list[int], shown: int | None) -> None:
        """The steps that have samples, newest first, with `shown` selected; the picker hides
        while there is only one."""
        options = [(f"step {s}" + (" (latest)" if s == steps[-1] else ""), s) for s in reversed(steps)]
        if self._offer("#samples-step", steps, self._steps, shown, options):
            self._steps = steps

    def _offer(self, picker: str, values: list, offered: list, shown, options: list[tuple[str, Any]]) -> bool:
        """Fill one picker quietly (no change message): new options when `values` are not the
        ones `offered`, then `shown` picked; hidden while there is only one value. Returns
        whether the options were replaced."""
        select = self.query_one(picker, Select)
        select.display = len(values) > 1
        replaced = bool(values) and values != offered
        with self.prevent(Select.Changed):
            if replaced:
                select.set_options(options)
            if shown is not None and select.value != shown:
                select.value = shown
        return replaced

    def action_step(self, delta: int) -> None:
        """Show the step `delta` places later (or earlier) than the one shown."""
        value = self.query_one("#samples-step", Select).value
        if value not in self._steps:
            return
        position = self._steps.index(value) + delta
        if 0 <= position < len(self._steps):
            self.query_one("#samples-step", Select).value = self._steps[position]

    def show_counts(self, step: int | None, total: int, correct: int) -> None:
        label = self.query_one("#samples-count", Label)
        if not total:
            label.update("No samples yet.")
            return
        shown_step = "" if self.query_one("#samples-step", Select).display else f"step {step}: "
        label.update(f"{shown_step}{total} samples, {correct} correct ({correct / total:.1%})")

    @on(Select.Changed, "#samples-filter")
    def _filter_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.FilterChanged(self.correct_filter))

    @on(Select.Changed, "#samples-split")
    def _split_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value in self._splits:
            self.post_message(self.SplitChosen(event.value))

    @on(Select.Changed, "#samples-step")
    def _step_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value in self._steps:
            latest = event.value == self._steps[-1]
            self.post_message(self.StepChosen(None if latest else event.value))

    @on(DataTable.RowSelected, "#samples-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.Opened(self._samples[str(event.row_key.value)]))
