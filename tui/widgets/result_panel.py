"""An eval's or rollout's headline numbers, large, with the count of questions done."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Digits, Label

from engine.core.store import Run
from tui.data import ResultFigure, progress_count, result_figures

FIGURES = 3


class ResultCard(Vertical):
    """One figure: its title, the value in large digits, and what it counts."""

    def compose(self) -> ComposeResult:
        yield Label(classes="result-title")
        yield Digits("-", classes="result-value")
        yield Label(classes="result-caption")

    def show(self, figure: ResultFigure) -> None:
        self.query_one(".result-title", Label).update(figure.title)
        self.query_one(Digits).update(figure.value)
        self.query_one(".result-caption", Label).update(figure.caption)


class ResultPanel(Vertical):
    """Updated on every poll of the run page; the values come from the run's summary and
    its stored samples, so they move while the run goes on."""

    def compose(self) -> ComposeResult:
        yield Label(id="result-count")
        with Horizontal(id="result-cards"):
            for i in range(FIGURES):
                yield ResultCard(id=f"result-card-{i}")

    def show(self, run: Run, samples: int, correct: int) -> None:
        figures = result_figures(run.kind, run.summary, samples, correct, run.status != "running")
        for card, figure in zip(self.query(ResultCard), figures):
            card.show(figure)
        count = progress_count(run.progress_done, run.progress_total)
        self.query_one("#result-count", Label).update(f"{count} · {run.status}")

    @property
    def text(self) -> str:
        """Everything the panel shows, as plain text, in reading order (what a test checks)."""
        parts = [str(self.query_one("#result-count", Label).content)]
        for card in self.query(ResultCard):
            parts += [
                str(card.query_one(".result-title", Label).content),
                card.query_one(Digits).value,
                str(card.query_one(".result-caption", Label).content),
            ]
        return "\n".join(parts)
