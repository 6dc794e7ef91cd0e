"""Help: what each screen shows and its keys, read from the screens' own bindings."""

from __future__ import annotations

from itertools import groupby

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

INTRO = (
    "reasonlab keeps every run (evaluation, SFT, rollout, RFT, pipeline) in one database and "
    "runs them as separate engine processes: they keep going when you quit and show up live "
    "again when you come back. Ctrl+P opens the command palette."
)


def key_lines(app, bindings: list[BindingType]) -> str:
    """One line per action: its keys, then what it does."""
    lines = []
    expanded = [b for b in Binding.make_bindings(bindings) if b.description]
    for (_action, _description), group in groupby(expanded, key=lambda b: (b.action, b.description)):
        group = list(group)
        keys = " / ".join(app.get_key_display(b) for b in group)
        lines.append(f"  {keys:<14} {group[0].tooltip or group[0].description}")
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close", id="help.close")]

    def __init__(self, sections: list[tuple[str, str, list[BindingType]]]) -> None:
        """`sections`: (title, what it shows, its bindings) for each screen."""
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide tall"):
            yield Label("reasonlab help (esc closes, arrows scroll)", classes="dialog-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(INTRO)
                for title, summary, bindings in self.sections:
                    yield Label(title, classes="section-title")
                    if summary:
                        yield Static(summary)
                    yield Static(key_lines(self.app, bindings), markup=False, classes="help-keys")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()
