"""One run, live: charts, progress, log tail, samples, spec and artifacts, and the runs it
was built from or that were built from it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.message import Message
from textual.widgets import Footer, Header, Label, RichLog, Static, TabbedContent, TabPane

from engine.core.errors import ReasonlabError
from engine.core.metrics import CHARTS_BY_KIND
from engine.core.processes import cancel_run
from engine.core.store import (
    ACTIVE_STATUSES, FINAL_STATUSES, RESUMABLE_STATUSES, Lineage, RelatedRun, Run, open_store,
)
from tui.data import RESULT_KINDS, format_duration, plain
from tui.screens.confirm import ConfirmDialog
from tui.screens.family import FamilyScreen
from tui.screens.run_picker import RunPicker
from tui.screens.worker_errors import ReportsWorkerErrors
from tui.screens.sample_detail import SampleDialog
from tui.chart_math import RunScale, Series
from tui.widgets.metric_chart import ChartKeys, MetricChart, chart_bindings
from tui.widgets.rank_panel import RankPanel
from tui.widgets.result_panel import ResultPanel
from tui.widgets.run_details import RunDetails
from tui.widgets.run_progress import RunProgress
from tui.widgets.samples_view import SamplesView

if TYPE_CHECKING:
    from tui.app import ReasonlabApp

LOG_TAIL_BYTES = 64 * 1024
"""How much of an existing log is read when the screen opens."""

SAMPLES_PER_POLL = 1000

LINEAGE_EVERY_S = 5.0
"""How often the runs linked to this one are read again (a scan of every run's settings)."""

LOG_LINES = 2000
"""Lines kept in the log view (a wrapped line counts once per screen line)."""


@dataclass(frozen=True)
class PollState:
    """Where the last poll stopped, so the next reads only what is new."""

    after_steps: dict[str, int] = field(default_factory=dict)
    log_offset: int | None = None
    """Byte offset read up to; None before the first read (start near the end)."""
    sample_split: str | None = None
    sample_step: int | None = None
    sample_after_id: int = 0
    sample_filter: bool | None = None
    sample_pick: int | None = None
    """The step picked on the samples tab; None follows the latest."""
    split_pick: str | None = None
    """The split picked on the samples tab; None: the first the run scored (valid)."""


@dataclass(frozen=True)
class PollResult:
    run: Run
    points: dict[str, Series]
    log_lines: list[str]
    log_offset: int
    sample_split: str | None
    sample_splits: list[str]
    sample_step: int | None
    sample_steps: list[int]
    samples: list[dict[str, Any]]
    sample_counts: tuple[int, int]
    artifacts: list[dict[str, Any]]
    lineage: Lineage | None
    """None when this poll did not read it."""

    @property
    def has_news(self) -> bool:
        return any(len(p) for p in self.points.values()) or bool(self.log_lines) or bool(self.samples)


def read_log(path: Path, offset: int | None) -> tuple[list[str], int]:
    """Complete lines written since `offset` (a carriage return keeps only the text after it,
    as a terminal would show a progress bar) and the new offset."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return [], offset or 0
    start = max(0, size - LOG_TAIL_BYTES) if offset is None else offset
    if size <= start:
        return [], min(start, size)
    with path.open("rb") as f:
        f.seek(start)
        data = f.read(size - start)
    end = data.rfind(b"\n") + 1
    if end == 0:
        return [], start
    lines = data[:end].decode("utf-8", errors="replace").split("\n")[:-1]
    if offset is None and start > 0:
        lines = lines[1:]  # the tail starts mid-line
    lines = [line.rsplit("\r", 1)[-1] for line in lines]
    return lines, start + end


def lineage_line(run: Run, lineage: Lineage) -> str:
    """One line naming the keys to the run's relatives: 'f sweep ab12cd · p parent: #1
    sft-baseline (adapter) · o children: 3'; empty for a run with none."""
    parts = []
    family = next((t for t in run.tags if t.startswith(("pipeline:", "sweep:"))), None)
    if run.kind == "pipeline" or family:
        parts.append(f"f {family_name(run, family)}")
    if lineage.parents:
        first, more = lineage.parents[0], len(lineage.parents) - 1
        parts.append(f"p parent{'s' if more else ''}: {related_short(first)}{f' +{more}' if more else ''}")
    if len(lineage.children) == 1:
        parts.append(f"o child: {related_short(lineage.children[0])}")
    elif lineage.children:
        parts.append(f"o children: {len(lineage.children)}")
    return " · ".join(parts)


def family_name(run: Run, tag: str | None) -> str:
    """'stages' for a pipeline run, 'pipeline #7' for a stage, 'sweep ab12cd' for a sweep's run."""
    if run.kind == "pipeline":
        return "stages"
    kind, _, key = (tag or "").partition(":")
    return f"pipeline #{key}" if kind == "pipeline" else f"{kind} {key}"


def related_short(run: RelatedRun) -> str:
    return f"#{run.id} {run.label} ({', '.join(run.via)})"


def parents_first(lineage: Lineage) -> Lineage:
    """Parents named by a setting (adapter, data) before the pipeline a stage belongs to."""
    return Lineage(tuple(sorted(lineage.parents, key=lambda r: "pipeline" in r.via)), lineage.children)


class RunScreen(ChartKeys, ReportsWorkerErrors):
    CSS_PATH = "run.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the runs", id="run.back"),
        Binding("1", "tab('charts')", "Charts", tooltip="Loss, learning rate and accuracy against steps", id="run.charts"),
        Binding("2", "tab('samples')", "Samples", tooltip="Generated samples; enter shows one in full", id="run.samples"),
        Binding("3", "tab('log')", "Log", tooltip="The end of the run's log", id="run.log"),
        Binding("4", "tab('details')", "Details", tooltip="Settings, facts and artifacts", id="run.details"),
        Binding("x", "cancel_run", "Cancel", tooltip="Cancel the run (asks first)", id="run.cancel"),
        Binding("R", "resume_run", "Resume", tooltip="Resume the cancelled or failed run from its last checkpoint", id="run.resume"),
        Binding("C", "clone", "Clone", tooltip="Open the launch form with this run's settings", id="run.clone"),
        *chart_bindings("run"),
        Binding("p", "open_parent", "Parent", show=False, tooltip="Open the run this one was built from (a list when several)", id="run.parent"),
        Binding("o", "open_child", "Children", show=False, tooltip="Open a run built from this one (a list when several)", id="run.children"),
        Binding("f", "family", "Family", show=False, tooltip="The pipeline or sweep this run belongs to, or its lineage", id="run.family"),
    ]
    CHARTS_TAB = "charts"

    class Polled(Message):
        def __init__(self, state: PollState, result: PollResult) -> None:
            super().__init__()
            self.state = state
            self.result = result

    class Gone(Message):
        """The run is no longer in the database."""

    class Cancelled(Message):
        def __init__(self, note: str) -> None:
            super().__init__()
            self.note = note

    app: ReasonlabApp

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: Run | None = None
        self.lineage = Lineage((), ())
        self._lineage_due = 0.0
        """When the lineage is read next (time.monotonic())."""
        self.state = PollState()
        self.metrics: tuple[str, ...] = ()
        self._polling = False
        self._resume_pending = False
        """A resume was asked for: keep polling until the engine has claimed the run."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(f"Run #{self.run_id}", id="run-title")
        yield Label(id="run-lineage")
        yield RunProgress(id="run-progress")
        yield RankPanel(id="rank-panel")
        with TabbedContent(id="run-tabs"):
            with TabPane("Charts", id="charts"):
                yield ResultPanel(id="result-panel")
                yield Static("", markup=False, classes="chart-mode")
                yield Grid(id="charts-grid")
            with TabPane("Samples", id="samples"):
                yield SamplesView(id="samples-view")
            with TabPane("Log", id="log"):
                yield Static(id="run-error", markup=False)
                yield RichLog(max_lines=LOG_LINES, min_width=1, wrap=True, markup=False, id="run-log")
            with TabPane("Details", id="details"):
                yield RunDetails(id="run-details")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"Run #{self.run_id}"
        self.show_chart_mode()
        self.poll()
        self._timer = self.set_interval(self.app.run_poll_interval, self.poll)

    # -- polling --------------------------------------------------------------------------

    def poll(self) -> None:
        if not self._polling:
            self._polling = True
            with_lineage = time.monotonic() >= self._lineage_due
            if with_lineage:
                self._lineage_due = time.monotonic() + LINEAGE_EVERY_S
            self._poll(self.state, self.metrics, with_lineage)

    @work(thread=True, exit_on_error=False, group="run-poll")
    def _poll(self, state: PollState, metrics: tuple[str, ...], with_lineage: bool) -> None:
        try:
            with open_store(self.app.db_path) as store:
                run = store.get_run(self.run_id)
                metrics = metrics or CHARTS_BY_KIND.get(run.kind, ())
                points = {
                    m: Series.of(store.metric_series_timed(self.run_id, m, state.after_steps.get(m, -1)))
                    for m in metrics
                }
                splits = store.sample_splits(self.run_id)
                split = state.split_pick if state.split_pick in splits else (splits[0] if splits else None)
                steps = [] if split is None else store.sample_steps(self.run_id, split)
                step = state.sample_pick if state.sample_pick in steps else (steps[-1] if steps else None)
                same = (split, step) == (state.sample_split, state.sample_step)
                after_id = state.sample_after_id if same else 0
                samples = [] if step is None else store.samples_after(
                    self.run_id, split, step, after_id, state.sample_filter, SAMPLES_PER_POLL
                )
                counts = (0, 0) if step is None else store.sample_counts(self.run_id, split, step)
                artifacts = store.artifacts(self.run_id)
                lineage = parents_first(store.lineage(self.run_id)) if with_lineage else None
        except ReasonlabError:
            self.post_message(self.Gone())
            return
        log_lines, log_offset = read_log(Path(run.run_dir) / "log.txt", state.log_offset)
        result = PollResult(
            run, points, log_lines, log_offset, split, splits, step, steps, samples, counts, artifacts, lineage
        )
        self.post_message(self.Polled(state, result))

    def on_run_screen_polled(self, message: Polled) -> None:
        if self.closed:
            return
        self._polling = False
        if message.state != self.state:
            return  # the sample filter changed while reading; the next poll reads again
        r = message.result
        first = self.run is None
        status_changed = first or self.run.status != r.run.status
        self.run = r.run
        if status_changed:
            self.refresh_bindings()
            self._lineage_due = 0.0  # a stage or a run of its adapter may have just been made
        if first:
            self._first_show(r.run)
        self._show_run(r.run)
        for metric, points in r.points.items():
            self.query_one(f"#chart-{metric}", MetricChart).extend(points, scale=RunScale.of(r.run))
        if r.run.kind in RESULT_KINDS:
            self.query_one(ResultPanel).show(r.run, *r.sample_counts)
        log = self.query_one("#run-log", RichLog)
        for line in r.log_lines:
            log.write(plain(line))
        samples = self.query_one(SamplesView)
        other_view = (r.sample_split, r.sample_step) != (self.state.sample_split, self.state.sample_step)
        if other_view:
            samples.reset()
        samples.add(r.samples)
        samples.show_splits(r.sample_splits, r.sample_split)
        samples.show_steps(r.sample_steps, r.sample_step)
        samples.show_counts(r.sample_step, *r.sample_counts)
        if r.lineage is not None:
            self.lineage = r.lineage
        self.query_one(RunDetails).show(r.run, r.artifacts, self.lineage)
        self._show_lineage(r.run, self.lineage)
        self.state = PollState(
            after_steps={m: pts.last_step if len(pts) else self.state.after_steps.get(m, -1) for m, pts in r.points.items()},
            log_offset=r.log_offset,
            sample_split=r.sample_split,
            sample_step=r.sample_step,
            sample_after_id=r.samples[-1]["id"] if r.samples else (
                0 if other_view else self.state.sample_after_id
            ),
            sample_filter=self.state.sample_filter,
            sample_pick=self.state.sample_pick,
            split_pick=self.state.split_pick,
        )
        if r.run.status not in FINAL_STATUSES:
            self._resume_pending = False
        elif not r.has_news and not self._resume_pending:
            self._timer.pause()  # nothing more will come

    def _first_show(self, run: Run) -> None:
        self.metrics = CHARTS_BY_KIND.get(run.kind, ())
        grid = self.query_one("#charts-grid", Grid)
        has_results = run.kind in RESULT_KINDS
        self.query_one(ResultPanel).display = has_results
        grid.set_class(has_results, "-below-results")
        # Two charts a row, as many rows as they need; with an odd count the first (the run's
        # main curve) takes a whole row, so no cell is left empty.
        grid.set_class(len(self.metrics) % 2 == 1, "-odd")
        if has_results:
            self.query_one(TabbedContent).get_tab("charts").label = "Results"
        grid.mount_all(MetricChart(m, self.chart_options, id=f"chart-{m}") for m in self.metrics)
        if run.status == "failed":
            self.action_tab("log")  # a failed run opens on its error

    def _show_run(self, run: Run) -> None:
        parts = [f"#{run.id} {run.label}", run.kind, run.status, run.spec.model]
        if run.duration is not None:
            parts.append(format_duration(run.duration))
        self.query_one("#run-title", Label).update(plain(" · ".join(parts)))
        self.query_one(RunProgress).show(run)
        self.query_one(RankPanel).show(run)
        error = self.query_one("#run-error", Static)
        error.display = bool(run.error)
        error.set_class(run.status == "failed", "-failed")
        error.update(plain(f"{'Error' if run.status == 'failed' else 'Note'}: {run.error}" if run.error else ""))

    def _show_lineage(self, run: Run, lineage: Lineage) -> None:
        text = lineage_line(run, lineage)
        line = self.query_one("#run-lineage", Label)
        line.display = bool(text)
        line.update(plain(text))

    def on_run_screen_gone(self) -> None:
        if self.closed:
            return
        self.notify(f"Run #{self.run_id} no longer exists.", severity="warning", markup=False)
        self.dismiss()

    # -- actions --------------------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    @on(SamplesView.FilterChanged)
    def _samples_filter_changed(self, event: SamplesView.FilterChanged) -> None:
        self._read_samples_again(replace(self.state, sample_filter=event.correct))

    @on(SamplesView.StepChosen)
    def _samples_step_chosen(self, event: SamplesView.StepChosen) -> None:
        self._read_samples_again(replace(self.state, sample_pick=event.step))

    @on(SamplesView.SplitChosen)
    def _samples_split_chosen(self, event: SamplesView.SplitChosen) -> None:
        self._read_samples_again(replace(self.state, split_pick=event.split))

    def _read_samples_again(self, state: PollState) -> None:
        self.query_one(SamplesView).reset()
        self.state = replace(state, sample_split=None, sample_step=None, sample_after_id=0)
        self._timer.resume()
        self.poll()

    @on(SamplesView.Opened)
    def _sample_opened(self, event: SamplesView.Opened) -> None:
        self.app.push_screen(SampleDialog(event.sample))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Cancel is offered while the run is active, resume once it is cancelled or failed."""
        if action == "cancel_run":
            return self.run is None or self.run.status in ACTIVE_STATUSES
        if action == "resume_run":
            return self.run is not None and self.run.status in RESUMABLE_STATUSES
        return super().check_action(action, parameters)

    def action_cancel_run(self) -> None:
        label = f"#{self.run_id} {self.run.label}" if self.run else f"#{self.run_id}"
        question = f"Cancel run {label}? A training run saves a checkpoint first; R resumes it."
        self.app.push_screen(ConfirmDialog(question, "Cancel run"), lambda ok: ok and self._cancel())

    def action_resume_run(self) -> None:
        if self.app.resume_run(self.run_id):
            self._resume_pending = True
            self._timer.resume()

    def action_clone(self) -> None:
        if self.run is not None:
            self.app.clone(self.run)

    def action_open_parent(self) -> None:
        self._open_related("parent", self.lineage.parents)

    def action_open_child(self) -> None:
        self._open_related("child", self.lineage.children)

    def _open_related(self, relation: str, runs: tuple[RelatedRun, ...]) -> None:
        """Open the one related run, or list them when there are several."""
        if not runs:
            built = "was built from no other run" if relation == "parent" else "has no run built from it"
            self.notify(f"Run #{self.run_id} {built}.", markup=False)
        elif len(runs) == 1:
            self.app.open_run(runs[0].id)
        else:
            title = f"Run #{self.run_id} was built from:" if relation == "parent" else f"Runs built from #{self.run_id}:"
            self.app.push_screen(RunPicker(title, runs), lambda run_id: run_id is not None and self.app.open_run(run_id))

    def action_family(self) -> None:
        self.app.push_screen(FamilyScreen(self.run_id))

    @work(thread=True, exit_on_error=False, group="run-write")
    def _cancel(self) -> None:
        with open_store(self.app.db_path) as store:
            try:
                note = cancel_run(store, self.run_id)
            except ReasonlabError as exc:
                note = str(exc)
        self.post_message(self.Cancelled(note))

    def on_run_screen_cancelled(self, message: Cancelled) -> None:
        if self.closed:
            return
        self.notify(message.note, markup=False)
        self._timer.resume()
