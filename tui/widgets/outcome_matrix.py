"""Question × run outcomes of several runs' final evaluations."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, DataTable, Label

from engine.core.text import visible
from engine.core.paired import Key, Outcome
from tui.data import outcome_matrix
from tui.widgets.state_checkbox import StateCheckbox

NOT_EVALUATED = "·"
"""The cell of a run that never evaluated the question (not a difference)."""


class OutcomeMatrix(Vertical):
    """Filtering happens here, on data already read (no database access); enter on a row
    posts `Opened` with its (split, question)."""

    class Opened(Message):
        def __init__(self, question: Key) -> None:
            super().__init__()
            self.question = question

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.labels: list[str] = []
        self.per_run: list[dict[Key, Outcome]] = []
        self._questions: list[Key] = []

    def compose(self) -> ComposeResult:
        with Horizontal(classes="matrix-bar"):
            yield StateCheckbox("Only differing outcomes", compact=True, id="matrix-differing")
            yield Label(id="matrix-count")
        yield DataTable(cursor_type="row", id="matrix-table")

    def show(self, labels: list[str], per_run: list[dict[Key, Outcome]]) -> None:
        self.labels = labels
        self.per_run = per_run
        self._fill()

    @on(Checkbox.Changed, "#matrix-differing")
    def _filter_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._fill()

    @on(DataTable.RowSelected, "#matrix-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.Opened(self._questions[int(event.row_key.value)]))

    def _fill(self) -> None:
        only_differing = self.query_one("#matrix-differing", Checkbox).value
        rows = outcome_matrix(self.per_run, only_differing)
        self._questions = [question for question, _ in rows]
        table = self.query_one("#matrix-table", DataTable)
        table.clear(columns=True)
        # The split column only where it tells questions apart: a training run scores valid
        # and shifted, an eval one split.
        with_split = len({split for run in self.per_run for split, _ in run}) > 1
        if with_split:
            table.add_column("Split", key="split")
        table.add_column("Question", key="question", width=40)
        for i, label in enumerate(self.labels):
            table.add_column(Text(label), key=f"run-{i}")
        for n, ((split, question), cells) in enumerate(rows):
            table.add_row(
                *([Text(visible(split), no_wrap=True, overflow="ellipsis")] if with_split else []),
                Text(visible(" ".join(question.split())), no_wrap=True, overflow="ellipsis"),
                *(Text(c.symbol if c else NOT_EVALUATED, justify="center") for c in cells),
                key=str(n),
            )
        total = len(outcome_matrix(self.per_run)) if only_differing else len(rows)
        self.query_one("#matrix-count", Label).update(
            f"{len(rows)} of {total} · {NOT_EVALUATED} = not evaluated · enter: outputs"
        )
