"""Pickers for how the runs table looks: which columns it shows, and what it groups runs by."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, SelectionList
from textual.widgets.option_list import Option

from engine.core.columns import RunColumn
from engine.core.grouping import GROUPINGS
from tui.widgets.runs_table import ALWAYS_SHOWN, COLUMNS

NO_GROUPING = "none"


class ColumnsDialog(ModalScreen[list[str] | None]):
    """Dismisses with the chosen column keys in the order listed (fixed columns, settings,
    metrics), or None when cancelled."""

    CSS_PATH = ["dialogs.tcss", "table_choices.tcss"]
    BINDINGS = [
        Binding("ctrl+s", "apply", "Apply", id="columns.apply"),
        Binding("escape", "cancel", "Cancel", id="columns.cancel"),
    ]

    def __init__(self, shown: list[str], choosable: list[RunColumn]) -> None:
        super().__init__()
        self.shown = shown
        fixed = [(c.label, c.key) for c in COLUMNS if c.key != ALWAYS_SHOWN]
        self.options = fixed + [(c.title, c.key) for c in choosable]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog tall"):
            yield Label("Columns: space shows or hides one · ctrl+s applies · esc cancels", classes="dialog-title")
            yield SelectionList[str](*((Text(title), key, key in self.shown) for title, key in self.options), id="columns-list")

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def action_apply(self) -> None:
        chosen = set(self.query_one(SelectionList).selected)
        self.dismiss([key for _, key in self.options if key in chosen])

    def action_cancel(self) -> None:
        self.dismiss(None)


class GroupingDialog(ModalScreen[str | None]):
    """Dismisses with a grouping key of engine.core.grouping, NO_GROUPING, or None when cancelled."""

    CSS_PATH = ["dialogs.tcss", "table_choices.tcss"]
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="grouping.cancel")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        options = [Option(Text("no grouping: one row per run"), NO_GROUPING)]
        options += [Option(Text(title), key) for title, key in GROUPINGS]
        with Vertical(classes="dialog tall"):
            yield Label("Group runs by (enter picks, esc cancels)", classes="dialog-title")
            yield OptionList(*options, id="grouping-list")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        keys = [NO_GROUPING] + [key for _, key in GROUPINGS]
        options.highlighted = keys.index(self.current) if self.current in keys else 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
