"""An eval's or rollout's headline numbers, large, with the count of questions done, and its
accuracy by category (family, value range, phrasing) below them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Digits, Label, Static

from engine.core.metrics import TITLES, base_name, category
from engine.core.metrics import title as metric_title
from engine.core.store import Run
from engine.core.text import visible
from tui.data import ResultFigure, progress_count, result_figures

FIGURES = 3


@dataclass(frozen=True)
class Breakdown:
    """One metric split by one category: `accuracy` by `family` is length 0.95, mass 0.41."""

    metric: str
    group: str
    values: list[tuple[str, float]]

    @property
    def line(self) -> str:
        parts = " · ".join(f"{visible(value)} {rate:.2f}" for value, rate in self.values)
        return f"{metric_title(self.metric)} by {visible(self.group)}: {parts}"


def breakdowns(summary: Mapping[str, float]) -> list[Breakdown]:
    """The per-category metrics of a summary, grouped by metric then category, metrics in
    their declared order, categories and their values alphabetically."""
    grouped: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for name in sorted(summary):
        split = category(name)
        if split is not None:
            grouped.setdefault((base_name(name), split[0]), []).append((split[1], summary[name]))
    order = list(TITLES)
    keys = sorted(grouped, key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k))
    return [Breakdown(metric, group, grouped[metric, group]) for metric, group in keys]


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
        yield Static(id="result-categories", markup=False)

    def show(self, run: Run, samples: int, correct: int) -> None:
        figures = result_figures(run.kind, run.summary, samples, correct, run.status != "running", run.spec.reasoning)
        for card, figure in zip(self.query(ResultCard), figures):
            card.show(figure)
        count = progress_count(run.progress_done, run.progress_total)
        self.query_one("#result-count", Label).update(f"{count} · {run.status}")
        lines = [b.line for b in breakdowns(run.summary)]
        categories = self.query_one("#result-categories", Static)
        categories.display = bool(lines)
        categories.update("\n".join(lines))

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
        categories = self.query_one("#result-categories", Static)
        if categories.display:
            parts.append(str(categories.content))
        return "\n".join(parts)
