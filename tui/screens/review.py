"""The review before a launch: what will run, on what, which settings differ from the
defaults (for a sweep: which vary, and over what values), and how long earlier runs of the same
size took. Nothing starts until it is confirmed, so a stray key never costs a long run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from engine.core.dataset_files import count_rows
from engine.core.errors import DataError, ReasonlabError, SpecError
from engine.core.ids import run_id_or_none
from engine.core.spec import RunSpec
from engine.core.store import RunStore, run_size
from engine.core.sweep import SweepPlan
from tui.data import format_value, plain

LABEL_WIDTH = 10


@dataclass(frozen=True)
class LaunchReview:
    """Runs about to be launched (one, or a sweep's), with what their parent runs and files
    turned out to be and how long earlier runs of their size took."""

    plan: SweepPlan
    sources: tuple[tuple[str, str], ...]
    """(title, description) of the adapter, dataset or RFT data the runs read (a source that
    varies across a sweep is listed with the varying settings instead)."""
    estimate: str = ""
    """'≈ 12 min (median of 3 earlier runs)', or empty when no earlier run tells."""

    @property
    def title(self) -> str:
        count = len(self.plan.specs)
        return "Launch this run?" if not self.plan.varying else f"Queue these {count} runs?"

    def lines(self) -> list[str]:
        plan, spec = self.plan, self.plan.specs[0]
        rows = [("Kind", spec.kind)]
        if "model" not in plan.varying:
            rows.append(("Model", spec.model))
        rows += self.sources
        if plan.varying:
            drawn = len(plan.specs) < plan.grid_size
            rows.append(("Runs", f"{len(plan.specs)} drawn from the grid's {plan.grid_size}" if drawn else str(plan.grid_size)))
        if self.estimate:
            rows.append(("Duration", self.estimate))
        lines = [f"{title:<{LABEL_WIDTH}}{text}" for title, text in rows]
        if plan.varying:
            lines += ["", "Varying", *_aligned({
                name: ", ".join(map(format_value, values)) for name, values in plan.varying.items()
            })]
        changed = plan.common
        if changed:
            lines += ["", "Changed from the defaults" + (" in every run" if plan.varying else "")]
        else:
            lines += ["", "Every other setting has its default." if plan.varying else "Every setting has its default."]
        lines += _aligned({name: format_value(value) for name, value in changed.items()})
        return lines


def _aligned(rows: dict[str, str]) -> list[str]:
    width = max(map(len, rows), default=0) + 2
    return [f"  {name:<{width}}{text}" for name, text in rows.items()]


SOURCE_SETTINGS = {"adapter": "Adapter", "dataset": "Dataset", "data": "Data"}


def read_review(store: RunStore, plan: SweepPlan) -> LaunchReview:
    """Look up the adapter runs' base models, count the datasets' rows and estimate the
    duration. A parent run that is gone or a dataset file that cannot be read is a SpecError
    naming the setting, so the form shows it inline; every run's sources are checked."""
    applying = {f.name for f in RunSpec.settings(plan.kind)}
    sources = []
    described = set()
    for spec in plan.specs:
        for name, title in SOURCE_SETTINGS.items():
            depends_on = (name,) if name == "adapter" else (name, "limit")
            key = tuple(getattr(spec, setting) for setting in depends_on)
            if name not in applying or (name, key) in described:
                continue
            described.add((name, key))
            text = _describe(store, spec, name)
            if not any(setting in plan.varying for setting in depends_on):
                sources.append((title, text))
    return LaunchReview(plan, tuple(sources), _estimate(store, plan))


def _describe(store: RunStore, spec: RunSpec, setting: str) -> str:
    if setting == "adapter":
        return _describe_adapter(store, spec.adapter)
    if setting == "dataset":
        return _describe_file("dataset", spec.dataset, "questions", spec.limit)
    return _describe_data(store, spec.data, spec.limit)


def _estimate(store: RunStore, plan: SweepPlan) -> str:
    """The median duration of earlier completed runs of the same size (engine.core.store's
    `run_size`): per run when a sweep's runs share one size, else the sum over its runs when
    every size has earlier runs; empty when none tells."""
    by_size = {run_size(spec): spec for spec in plan.specs}
    estimates = [store.duration_estimate(spec) for spec in by_size.values()]
    if not estimates or any(estimate is None for estimate in estimates):
        return ""
    if len(estimates) == 1:
        (estimate,) = estimates
        runs = f"{estimate.runs} earlier run{'s' if estimate.runs != 1 else ''}"
        each = " a run" if plan.varying else ""
        return f"≈ {_rough(estimate.seconds)}{each} ({'median of ' if estimate.runs > 1 else ''}{runs})"
    runs_of_size = Counter(run_size(spec) for spec in plan.specs)
    total = sum(estimate.seconds * runs_of_size[size] for size, estimate in zip(by_size, estimates))
    return f"≈ {_rough(total)} for all {len(plan.specs)} (medians by size)"


def _rough(seconds: float) -> str:
    """An estimate's duration, no finer than it is known: 40 s, 12 min, 2 h 05 min."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _parent(store: RunStore, setting: str, run_id: int):
    try:
        return store.get_run(run_id)
    except ReasonlabError as exc:
        raise SpecError(setting, str(exc)) from None


def _describe_adapter(store: RunStore, text: str) -> str:
    run_id = run_id_or_none(text)
    if not text.strip():
        return "none"
    if run_id is None:
        return f"{text} (folder)"
    run = _parent(store, "adapter", run_id)
    return f"#{run.id} {run.label}, trained on {run.spec.model}"


def _describe_data(store: RunStore, text: str, limit: int) -> str:
    run_id = run_id_or_none(text)
    if run_id is None:
        return _describe_file("data", text, "rows", limit) if text.strip() else "none"
    run = _parent(store, "data", run_id)
    return f"#{run.id} {run.label}, its correct samples"


def _describe_file(setting: str, text: str, noun: str, limit: int) -> str:
    """The file with its row count, and how many of them the run uses when `limit` cuts it."""
    try:
        rows = count_rows(text)
    except DataError as exc:
        raise SpecError(setting, str(exc)) from None
    used = f", the first {limit} used" if 0 < limit < rows else ""
    return f"{text}, {rows} {noun}{used}"


class ReviewDialog(ModalScreen[bool]):
    """Dismisses with True when the launch is confirmed (enter or y), False to go back."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [
        Binding("enter,y", "answer(True)", "Launch", id="review.launch"),
        Binding("escape,n", "answer(False)", "Back", id="review.back"),
    ]

    def __init__(self, review: LaunchReview) -> None:
        super().__init__()
        self.review = review

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="review"):
            yield Label(self.review.title, classes="dialog-title")
            with VerticalScroll(id="review-body"):
                yield Static(plain("\n".join(self.review.lines())), id="review-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Queue (enter)" if self.review.plan.varying else "Launch (enter)", variant="primary", id="review-launch")
                yield Button("Back (esc)", id="review-back")

    def on_mount(self) -> None:
        self.query_one("#review-launch", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "review-launch")

    def action_answer(self, confirmed: bool) -> None:
        self.dismiss(confirmed)
