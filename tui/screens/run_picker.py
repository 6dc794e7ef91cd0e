"""Pick one of a run's parents or children to open."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from engine.core.store import RelatedRun
from tui.data import plain


def related_text(run: RelatedRun) -> Text:
    """'#3 rft-round1 · rft · failed · adapter': the run, and how it is linked."""
    return plain(f"#{run.id} {run.label} · {run.kind} · {run.status} · {', '.join(run.via)}")


class RunPicker(ModalScreen[int | None]):
    """Dismisses with the chosen run's id, or None."""

    CSS_PATH = "dialogs.tcss"
    DEFAULT_CSS = """
    #picker-list {
        height: auto;
        max-height: 14;
    }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Close", id="picker.close")]

    def __init__(self, title: str, runs: tuple[RelatedRun, ...]) -> None:
        super().__init__()
        self.title_text = title
        self.runs = runs

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            yield OptionList(*(Option(related_text(r), id=str(r.id)) for r in self.runs), id="picker-list")
            yield Label("enter opens · esc closes", classes="dialog-hint")

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))
