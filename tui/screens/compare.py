"""Two or more runs side by side: spec diff, overlaid curves, summary and outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Label, Static, TabbedContent, TabPane

from engine.core.errors import ReasonlabError
from engine.core.metrics import TITLES as METRIC_TITLES
from engine.core.metrics import title as metric_title
from engine.core.store import Run, RunStore, open_store
from engine.core.text import visible
from tui.screens.side_by_side import RunOutputs, SideBySideDialog
from tui.screens.worker_errors import ReportsWorkerErrors
from engine.core.paired import Key, Outcome, PairedSplit, outcomes, paired_splits, scoring_conditions
from tui.data import format_duration, format_timestamp, format_value, plain, spec_diff
from tui.chart_math import RunScale, Series
from tui.widgets.metric_chart import ChartKeys, MetricChart, chart_bindings, legend
from tui.widgets.outcome_matrix import OutcomeMatrix

if TYPE_CHECKING:
    from tui.app import ReasonlabApp


@dataclass(frozen=True)
class Comparison:
    runs: list[Run]
    series: dict[str, list[Series]]
    """Per metric, each run's points (empty where a run has none)."""
    outcomes: list[dict[Key, Outcome]]
    """Per run, its final evaluation's outcome on each (split, question)."""

    @property
    def labels(self) -> list[str]:
        return [visible(f"#{r.id} {r.label}") for r in self.runs]

    @property
    def paired(self) -> list[list[PairedSplit]]:
        """Each run against the first, question by question per split (none for the first)."""
        return [[]] + [paired_splits(self.outcomes[0], other) for other in self.outcomes[1:]]


def metric_order(names: set[str]) -> list[str]:
    """Known metrics in their usual order, then the rest alphabetically."""
    known = [m for m in METRIC_TITLES if m in names]
    return known + sorted(names - set(known))


def read_comparison(store: RunStore, run_ids: list[int]) -> Comparison:
    runs = [store.get_run(i) for i in run_ids]
    names = {n for r in runs for n in store.metric_names(r.id)}
    scales = [RunScale.of(r) for r in runs]
    series = {
        m: [Series.of(store.metric_series_timed(r.id, m), scale) for r, scale in zip(runs, scales)]
        for m in metric_order(names)
    }
    return Comparison(runs, series, [outcomes(store.final_samples(r.id)) for r in runs])


class CompareScreen(ChartKeys, ReportsWorkerErrors):
    CSS_PATH = "compare.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the runs", id="compare.back"),
        Binding("1", "tab('curves')", "Curves", tooltip="Each metric, runs overlaid", id="compare.curves"),
        Binding("2", "tab('diff')", "Spec diff", tooltip="Settings that differ between the runs", id="compare.diff"),
        Binding("3", "tab('summary')", "Summary", tooltip="Facts and final metrics side by side", id="compare.summary"),
        Binding("4", "tab('outcomes')", "Outcomes", tooltip="Each question's outcome per run", id="compare.outcomes"),
        Binding("r", "reload", "Reload", tooltip="Read the runs again", id="compare.reload"),
        *chart_bindings("compare"),
    ]
    CHARTS_TAB = "curves"

    class Read(Message):
        def __init__(self, comparison: Comparison) -> None:
            super().__init__()
            self.comparison = comparison

    class QuestionRead(Message):
        """Every compared run's outputs for one question, for the side-by-side dialog."""

        def __init__(self, question: Key, runs: list[RunOutputs]) -> None:
            super().__init__()
            self.question = question
            self.runs = runs

    class Failed(Message):
        """A run could not be read (deleted meanwhile)."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    app: ReasonlabApp

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="compare-tabs"):
            with TabPane("Curves", id="curves"):
                yield Static("", markup=False, id="compare-legend")
                yield Static("", markup=False, classes="chart-mode")
                with VerticalScroll():
                    yield Grid(id="compare-charts")
            with TabPane("Spec diff", id="diff"):
                yield DataTable(cursor_type="row", id="diff-table")
            with TabPane("Summary", id="summary"):
                yield DataTable(cursor_type="row", id="summary-table")
            with TabPane("Outcomes", id="outcomes"):
                yield OutcomeMatrix(id="outcome-matrix")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Compare " + ", ".join(f"#{i}" for i in self.run_ids)
        self.show_chart_mode()
        self.action_reload()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_reload(self) -> None:
        self._read()

    @work(thread=True, exit_on_error=False, exclusive=True, group="compare-read")
    def _read(self) -> None:
        with open_store(self.app.db_path) as store:
            try:
                comparison = read_comparison(store, self.run_ids)
            except ReasonlabError as exc:
                self.post_message(self.Failed(str(exc)))
                return
        self.post_message(self.Read(comparison))

    def on_compare_screen_failed(self, message: Failed) -> None:
        if self.closed:
            return
        self.notify(message.reason, severity="error", markup=False)
        self.dismiss()

    async def on_compare_screen_read(self, message: Read) -> None:
        if self.closed:
            return
        c = message.comparison
        self._show_diff(c)  # the tables first: mounting the charts takes longest
        self._show_summary(c)
        self.query_one(OutcomeMatrix).show(c.labels, c.outcomes)
        await self._show_curves(c)

    @on(OutcomeMatrix.Opened)
    def _question_opened(self, event: OutcomeMatrix.Opened) -> None:
        self._read_question(event.question)

    @work(thread=True, exit_on_error=False, exclusive=True, group="compare-question")
    def _read_question(self, question: Key) -> None:
        runs = []
        with open_store(self.app.db_path) as store:
            for run_id in self.run_ids:
                run = store.get_run(run_id)
                runs.append(RunOutputs(visible(f"#{run.id} {run.label}"), store.question_samples(run_id, *question)))
        self.post_message(self.QuestionRead(question, runs))

    def on_compare_screen_question_read(self, message: QuestionRead) -> None:
        if self.closed:
            return
        self.app.push_screen(SideBySideDialog(message.question[1], message.runs))

    async def _show_curves(self, c: Comparison) -> None:
        grid = self.query_one("#compare-charts", Grid)
        await grid.remove_children()
        self.query_one("#compare-legend", Static).update(legend(self.app, c.labels))
        charts = []
        for metric, per_run in c.series.items():
            chart = MetricChart(metric, self.chart_options, classes="compare-chart")
            for label, points in zip(c.labels, per_run):
                chart.series[label] = points
            charts.append(chart)
        if charts:
            await grid.mount_all(charts)
        else:
            await grid.mount(Label("None of these runs has logged a metric yet."))

    def _table_per_run(self, selector: str, first_column: str, c: Comparison) -> DataTable:
        """A cleared table with a leading column and one column per compared run."""
        table = self.query_one(selector, DataTable)
        table.clear(columns=True)
        table.add_columns(first_column, *(plain(label) for label in c.labels))
        return table

    def _show_diff(self, c: Comparison) -> None:
        table = self._table_per_run("#diff-table", "Setting", c)
        rows = spec_diff([r.spec.relevant() for r in c.runs])
        for key, values in rows:
            table.add_row(key, *(plain(format_value(v) if v != "" else "(empty)") for v in values))
        if not rows:
            table.add_row("(the specs are identical)", *("" for _ in c.labels))

    def _show_summary(self, c: Comparison) -> None:
        table = self._table_per_run("#summary-table", "", c)
        facts = {
            "kind": [r.kind for r in c.runs],
            "status": [r.status for r in c.runs],
            "model": [r.spec.model for r in c.runs],
            "started": [format_timestamp(r.started_at) for r in c.runs],
            "duration": [format_duration(r.duration) for r in c.runs],
        }
        conditions = [scoring_conditions(r) for r in c.runs]
        if any(conditions):  # runs from before these were recorded have none
            facts["scored with"] = [value or "–" for value in conditions]
        for name, values in facts.items():
            table.add_row(name, *(plain(v) for v in values))
        for metric in metric_order({m for r in c.runs for m in r.summary}):
            table.add_row(metric_title(metric), *(format_value(r.summary.get(metric)) for r in c.runs))
        table.add_row("questions (final)", *(str(len(o)) for o in c.outcomes))
        paired = c.paired  # computed once: each split's row reads every run's pairs
        for split in dict.fromkeys(s.split for pairs in paired for s in pairs):
            table.add_row(
                plain(f"{split}: gained / lost against #{c.runs[0].id} (p)"),
                *(_paired_cell(next((s for s in pairs if s.split == split), None)) for pairs in paired),
            )


def _paired_cell(paired: PairedSplit | None) -> str:
    """'12 / 5 (p 0.14)': questions right only here, right only in the first run, and the exact
    McNemar p-value; '–' where there is nothing to pair."""
    if paired is None:
        return "–"
    return f"{paired.gained} / {paired.lost} (p {paired.p_value:.2g})"
