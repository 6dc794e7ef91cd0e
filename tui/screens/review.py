"""The review before a launch: what will run, on what, and which settings differ from the
defaults. Nothing starts until it is confirmed, so a stray key never costs a long run."""

from __future__ import annotations

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
from engine.core.store import RunStore
from tui.data import format_value, plain

LABEL_WIDTH = 10


@dataclass(frozen=True)
class LaunchReview:
    """A spec about to be launched, with what its parent runs and files turned out to be."""

    spec: RunSpec
    sources: tuple[tuple[str, str], ...]
    """(title, description) of the adapter, dataset or RFT data the run reads."""

    def lines(self) -> list[str]:
        spec = self.spec
        rows = [("Kind", spec.kind), ("Model", spec.model), *self.sources]
        lines = [f"{title:<{LABEL_WIDTH}}{text}" for title, text in rows]
        changed = spec.explicit_values()
        lines += ["", "Changed from the defaults" if changed else "Every setting has its default."]
        width = max(map(len, changed), default=0) + 2
        lines += [f"  {name:<{width}}{format_value(value)}" for name, value in changed.items()]
        return lines


def read_review(store: RunStore, spec: RunSpec) -> LaunchReview:
    """Look up the adapter run's base model and count the dataset's rows. A parent run that
    is gone or a dataset file that cannot be read is a SpecError naming the setting, so the
    form shows it inline."""
    applying = {f.name for f in RunSpec.settings(spec.kind)}
    sources = []
    if "adapter" in applying:
        sources.append(("Adapter", _describe_adapter(store, spec.adapter)))
    if "dataset" in applying:
        sources.append(("Dataset", _describe_file("dataset", spec.dataset, "questions", spec.limit)))
    if "data" in applying:
        sources.append(("Data", _describe_data(store, spec.data, spec.limit)))
    return LaunchReview(spec, tuple(sources))


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
            yield Label("Launch this run?", classes="dialog-title")
            with VerticalScroll(id="review-body"):
                yield Static(plain("\n".join(self.review.lines())), id="review-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Launch (enter)", variant="primary", id="review-launch")
                yield Button("Back (esc)", id="review-back")

    def on_mount(self) -> None:
        self.query_one("#review-launch", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "review-launch")

    def action_answer(self, confirmed: bool) -> None:
        self.dismiss(confirmed)
