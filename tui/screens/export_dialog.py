"""Export runs to a folder of CSV and JSON files, from the runs screen (what `engine export`
writes, through the same function)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from engine.core.errors import ReasonlabError
from engine.core.export import FILES, export_runs
from engine.core.store import open_store
from tui.data import plain
from tui.screens.worker_errors import ReportsWorkerErrors


def default_folder(db_path: Path) -> Path:
    """`export-<date>` beside the database: the runs' own folder, not wherever the app started."""
    return db_path.resolve().parent / f"export-{time.strftime('%Y-%m-%d')}"


def chosen_folder(text: str, db_path: Path) -> Path:
    """The folder typed, `~` expanded, a relative one taken beside the database; a ValueError
    says in one line why it cannot be written."""
    text = text.strip()
    if not text:
        raise ValueError("Type the folder to export to.")
    if "\0" in text:
        raise ValueError("A folder name cannot hold a NUL character; type another folder.")
    folder = db_path.resolve().parent / Path(text).expanduser()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{existing} is a file, not a folder; type another folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{existing} cannot be written to; type another folder.")
    return folder


class ExportDialog(ModalScreen[str | None], ReportsWorkerErrors):
    """Dismisses with a line saying what was written, or None when cancelled; a folder that
    cannot be written keeps the dialog open with the reason under it."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="export.cancel")]

    class Exported(Message):
        def __init__(self, note: str) -> None:
            super().__init__()
            self.note = note

    class Refused(Message):
        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    def __init__(self, db_path: Path, run_ids: list[int]) -> None:
        super().__init__()
        self.db_path = db_path
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        runs = ", ".join(f"#{i}" for i in self.run_ids)
        with Vertical(classes="dialog"):
            yield Label(f"Export {'run' if len(self.run_ids) == 1 else 'runs'} {runs}", classes="dialog-title")
            yield Label(
                f"Folder (made if missing; {', '.join(FILES)} there are replaced; "
                "a relative path lies beside the database)",
                classes="dialog-text",
            )
            yield Input(str(default_folder(self.db_path)), id="export-folder")
            yield Label("", id="export-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export (enter)", variant="primary", id="export-go")
                yield Button("Cancel (esc)", id="export-cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "export-go":
            self.action_export()
        else:
            self.action_cancel()

    def on_input_submitted(self) -> None:
        self.action_export()

    def action_export(self) -> None:
        try:
            folder = chosen_folder(self.query_one("#export-folder", Input).value, self.db_path)
        except ValueError as exc:
            self._show_error(str(exc))
            return
        self._show_error("")
        self._export(folder)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="export")
    def _export(self, folder: Path) -> None:
        try:
            with open_store(self.db_path) as store:
                counts = export_runs(store, [store.get_run(i) for i in self.run_ids], folder)
        except ReasonlabError as exc:
            self.post_message(self.Refused(str(exc)))
            return
        runs = f"{counts.runs} run{'s' if counts.runs != 1 else ''}"
        self.post_message(self.Exported(
            f"Exported {runs} ({counts.metric_points} metric points, {counts.samples} samples) to {folder}."
        ))

    def on_export_dialog_exported(self, message: Exported) -> None:
        self.dismiss(message.note)

    def on_export_dialog_refused(self, message: Refused) -> None:
        self._show_error(message.reason)

    def _show_error(self, text: str) -> None:
        self.query_one("#export-error", Label).update(plain(text))
