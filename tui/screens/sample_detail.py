"""One sample in full: question, target, parsed answer and the whole generated text."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui.data import format_value


class SampleDialog(ModalScreen[None]):
    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close", id="sample.close")]

    def __init__(self, sample: dict[str, Any]) -> None:
        super().__init__()
        self.sample = sample

    def compose(self) -> ComposeResult:
        s = self.sample
        verdict = "✓ correct" if s["correct"] else "✗ incorrect"
        answer = "none parsed" if s["answer"] is None else format_value(s["answer"])
        with Vertical(classes="dialog wide"):
            yield Label(
                f"Question {s['idx']}, sample {s['sample']}, step {s['step']}: {verdict}",
                classes="dialog-title",
            )
            with VerticalScroll(classes="sample-body"):
                yield Label("Question", classes="section-title")
                yield Static(s["question"], markup=False)
                yield Label(f"Target {format_value(s['target'])} · parsed answer {answer}", classes="section-title")
                yield Label("Generated text", classes="section-title")
                yield Static(s["output"], markup=False, classes="sample-output")
