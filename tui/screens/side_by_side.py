"""One question's outputs from each compared run, side by side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import HorizontalScroll, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui.data import format_value, plain


@dataclass(frozen=True)
class RunOutputs:
    """What one run generated for the question at its final evaluation (no samples: it never
    evaluated the question)."""

    label: str
    samples: list[dict[str, Any]]


def verdict(sample: dict[str, Any]) -> str:
    """'✓ answer 1000' or '✗ no answer parsed', one line above an output."""
    answer = "no answer parsed" if sample["answer"] is None else f"answer {format_value(sample['answer'])}"
    return f"{'✓' if sample['correct'] else '✗'} {answer}"


class SideBySideDialog(ModalScreen[None]):
    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close", id="side-by-side.close")]

    def __init__(self, question: str, runs: list[RunOutputs]) -> None:
        super().__init__()
        self.question = question
        self.runs = runs

    @property
    def target(self) -> str:
        targets = {format_value(s["target"]) for r in self.runs for s in r.samples}
        return " / ".join(sorted(targets)) or "unknown"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog tall side-by-side"):
            yield Label(plain(f"Target {self.target} · esc closes"), classes="dialog-title")
            yield Static(plain(self.question), classes="side-question")
            with HorizontalScroll(classes="side-columns"):
                for run in self.runs:
                    column = VerticalScroll(classes="side-column")
                    column.styles.width = f"{100 / len(self.runs):.2f}%"
                    with column:
                        yield Label(plain(run.label), classes="section-title")
                        if not run.samples:
                            yield Label("not evaluated", classes="dialog-hint")
                        for sample in run.samples:
                            number = f"sample {sample['sample']} · " if len(run.samples) > 1 else ""
                            yield Label(plain(f"{number}step {sample['step']} · {verdict(sample)}"), classes="side-verdict")
                            yield Static(plain(sample["output"]), classes="sample-output")
