"""Edit a run's tags and notes in a modal dialog."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, TextArea

from engine.core.store import Run
from tui.data import plain


class EditRunDialog(ModalScreen[tuple[str, str] | None]):
    """Dismisses with (tags text, notes) on save, None on cancel."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="edit.save"),
        Binding("escape", "cancel", "Cancel", id="edit.cancel"),
    ]

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(plain(f"Tags and notes of run #{self.run.id} {self.run.label}"), classes="dialog-title")
            yield Label("Tags (separated by spaces or commas)")
            yield Input(" ".join(self.run.tags), id="edit-tags")
            yield Label("Notes")
            yield TextArea(self.run.notes, id="edit-notes")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="edit-save")
                yield Button("Cancel (esc)", id="edit-cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "edit-save":
            self.action_save()
        else:
            self.action_cancel()

    def on_input_submitted(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        tags = self.query_one("#edit-tags", Input).value
        self.dismiss((tags, self.query_one("#edit-notes", TextArea).text))

    def action_cancel(self) -> None:
        self.dismiss(None)
