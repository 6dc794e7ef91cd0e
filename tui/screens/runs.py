"""The home screen: every run, filtered, sorted and updated live."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from engine.core.errors import ReasonlabError
from engine.core.processes import cancel_run
from engine.core.store import ACTIVE_STATUSES, RESUMABLE_STATUSES, Run, RunFilter, RunOrder, RunPage, open_store
from tui.data import parse_tags
from tui.screens.worker_errors import ReportsWorkerErrors
from tui.screens.confirm import ConfirmDialog
from tui.screens.edit_run import EditRunDialog
from tui.screens.export_dialog import ExportDialog
from tui.widgets.filter_bar import FilterBar
from tui.widgets.runs_table import COLUMNS, RunsTable

if TYPE_CHECKING:
    from tui.app import ReasonlabApp

PAGE_SIZE = 100
"""Rows fetched at a time; more load when the cursor reaches the last one."""

ASCENDING_FIRST = {"name", "kind", "status", "model"}

EMPTY_DATABASE = (
    "No runs yet.\n\n"
    "Press [b]n[/b] to launch one — an [b]eval[/b] of the embedded SmolLM2-135M with the cot "
    "prompt is a good first run; then [b]sft[/b], [b]rollout[/b] and [b]rft[/b], or the whole "
    "[b]pipeline[/b].\nRuns started from the terminal (python -m engine …) show up here too.\n\n"
    "[b]F1[/b] help · [b]ctrl+p[/b] commands · [b]q[/b] quit"
)
EMPTY_FILTERED = "No runs match these filters. Clear them, or press [b]/[/b] to change the search."


class RunsScreen(ReportsWorkerErrors):
    CSS_PATH = "runs.tcss"
    BINDINGS = [
        Binding(
            "enter", "open_run", "Open",
            tooltip="Open the run under the cursor",
            id="runs.open",
        ),
        Binding("n", "launch", "New", tooltip="Launch a new run", id="runs.new"),
        Binding(
            "space", "mark", "Select",
            tooltip="Select or unselect the run (for compare and delete)",
            id="runs.select",
        ),
        Binding("c", "compare", "Compare", tooltip="Compare the selected runs", id="runs.compare"),
        Binding(
            "x", "cancel_run", "Cancel",
            tooltip="Cancel the run under the cursor (asks first)",
            id="runs.cancel",
        ),
        Binding(
            "R", "resume_run", "Resume",
            tooltip="Resume the cancelled or failed run under the cursor from its last checkpoint",
            id="runs.resume",
        ),
        Binding(
            "C", "clone", "Clone",
            tooltip="Open the launch form with the settings of the run under the cursor",
            id="runs.clone",
        ),
        Binding(
            "d,delete", "delete", "Delete",
            tooltip="Delete the selected runs (or the current one) and their files",
            id="runs.delete",
        ),
        Binding(
            "e", "export", "Export", show=False,
            tooltip="Export the selected runs (or the current one) to CSV and JSON files",
            id="runs.export",
        ),
        Binding("t", "edit", "Tags/notes", tooltip="Edit the run's tags and notes", id="runs.edit"),
        Binding("s", "sort", "Sort", show=False, tooltip="Sort by the next column", id="runs.sort"),
        Binding(
            "r", "reverse", "Reverse", show=False,
            tooltip="Reverse the sort order",
            id="runs.reverse",
        ),
        Binding(
            "slash", "search", "Search", show=False,
            tooltip="Search names, models, notes, tags and ids",
            id="runs.search",
        ),
        Binding("m", "more", "More", show=False, tooltip="Load more rows", id="runs.more"),
        Binding(
            "escape", "focus_table", "Table", show=False,
            tooltip="Back to the table from the filters",
            id="runs.table",
        ),
        Binding("q", "app.quit", "Quit", show=False, id="runs.quit"),
    ]

    class Loaded(Message):
        """A page of runs was read for `request`."""

        def __init__(self, request: tuple[RunFilter, RunOrder, int], page: RunPage, tags: list[str]) -> None:
            super().__init__()
            self.request = request
            self.page = page
            self.tags = tags

    class RunRead(Message):
        """A run was read in full, for `purpose`: 'edit' its tags and notes, or 'clone' it."""

        def __init__(self, run: Run, purpose: str) -> None:
            super().__init__()
            self.run = run
            self.purpose = purpose

    class Done(Message):
        """A change to the runs finished; `note` tells the user what happened."""

        def __init__(self, note: str, deleted: tuple[int, ...] = ()) -> None:
            super().__init__()
            self.note = note
            self.deleted = deleted

    app: ReasonlabApp

    def __init__(self) -> None:
        super().__init__()
        self.run_filter = RunFilter()
        self.order = RunOrder()
        self.limit = PAGE_SIZE
        self.page = RunPage([], 0)
        self._loading = False
        self._stale = False
        self._select_after_load: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterBar()
        yield RunsTable(id="runs-table")
        yield Static(id="runs-empty")
        yield Static(id="runs-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = self.app.db_path.name
        self.query_one(RunsTable).focus()
        self.reload()
        self.set_interval(self.app.poll_interval, self.reload)

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    # -- loading --------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the runs again (at most one read in flight; a change meanwhile reads again)."""
        if self._loading:
            self._stale = True
            return
        self._loading = True
        self._stale = False
        self._load((self.run_filter, self.order, self.limit))

    @work(thread=True, exit_on_error=False, group="runs-load")
    def _load(self, request: tuple[RunFilter, RunOrder, int]) -> None:
        with open_store(self.app.db_path) as store:
            store.reap_dead_runs()
            page = store.run_page(*request)
            tags = store.all_tags()
        self.post_message(self.Loaded(request, page, tags))

    def worker_failed(self, worker) -> None:
        super().worker_failed(worker)
        if worker.group == "runs-load":
            self._loading = False  # the next poll reads again

    def on_runs_screen_loaded(self, message: Loaded) -> None:
        self._loading = False
        if self._stale or message.request != (self.run_filter, self.order, self.limit):
            self.reload()
            return
        self.page = message.page
        self.query_one(FilterBar).set_tags(message.tags)
        self.table.show(message.page.rows)
        if self._select_after_load in self.table.run_ids:
            self.table.select_run(self._select_after_load)
            self._select_after_load = None
        self._show_status()
        self.refresh_bindings()  # the run under the cursor may have become resumable

    def _show_status(self) -> None:
        shown, total = len(self.page.rows), self.page.total
        empty = self.query_one("#runs-empty", Static)
        empty.display = total == 0
        if total == 0:
            empty.update(EMPTY_FILTERED if self.run_filter != RunFilter() else EMPTY_DATABASE)
        parts = [f"{shown} of {total} runs" if shown < total else f"{total} runs"]
        if self.table.marked:
            parts.append(f"{len(self.table.marked)} selected")
        column = next(c.label for c in COLUMNS if c.key == self.order.column)
        parts.append(f"sorted by {column} {'▼' if self.order.descending else '▲'}")
        if shown < total:
            parts.append("m: more")
        self.query_one("#runs-status", Static).update(" · ".join(parts))

    def select_when_loaded(self, run_id: int) -> None:
        """Put the cursor on `run_id` once it shows up (after a launch)."""
        self._select_after_load = run_id
        self.reload()

    # -- filtering and sorting ------------------------------------------------------------

    @on(FilterBar.Changed)
    def _filter_changed(self, event: FilterBar.Changed) -> None:
        self.apply_filter(event.run_filter)

    def apply_filter(self, run_filter: RunFilter) -> None:
        self.run_filter = run_filter
        self.limit = PAGE_SIZE
        self.reload()

    @on(RunsTable.SortRequested)
    def _sort_requested(self, event: RunsTable.SortRequested) -> None:
        self.sort_by(event.column, toggle=True)

    def sort_by(self, column: str, toggle: bool = False) -> None:
        if toggle and column == self.order.column:
            self.order = replace(self.order, descending=not self.order.descending)
        else:
            self.order = RunOrder(column, descending=column not in ASCENDING_FIRST)
        self.table.set_order(self.order)
        self.reload()

    def action_sort(self) -> None:
        keys = [c.key for c in COLUMNS]
        self.sort_by(keys[(keys.index(self.order.column) + 1) % len(keys)])

    def action_reverse(self) -> None:
        self.sort_by(self.order.column, toggle=True)

    def action_search(self) -> None:
        self.query_one(FilterBar).focus_search()

    def action_focus_table(self) -> None:
        self.table.focus()

    def action_more(self) -> None:
        if len(self.page.rows) < self.page.total:
            self.limit += PAGE_SIZE
            self.reload()

    @on(DataTable.RowHighlighted, "#runs-table")
    def _maybe_load_more(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_bindings()
        if event.cursor_row == self.table.row_count - 1:
            self.action_more()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Resume is offered only on a run that can be resumed (it keeps the footer short)."""
        if action == "resume_run":
            rows = [table.current_run for table in self.query(RunsTable)]
            return bool(rows) and rows[0] is not None and rows[0].status in RESUMABLE_STATUSES
        return True

    # -- acting on runs -------------------------------------------------------------------

    @on(DataTable.RowSelected, "#runs-table")
    def action_open_run(self) -> None:
        row = self.table.current_run
        if row is not None:
            self.app.open_run(row.id)

    def action_launch(self) -> None:
        self.app.launch()

    def action_mark(self) -> None:
        self.table.toggle_mark()
        self._show_status()

    def action_compare(self) -> None:
        marked = sorted(self.table.marked)
        if len(marked) < 2:
            self.notify("Select two or more runs with space, then press c.", severity="warning", markup=False)
            return
        self.app.compare(marked)

    def _targets(self) -> list[int]:
        """The selected runs, or the one under the cursor when none is selected."""
        if self.table.marked:
            return sorted(self.table.marked)
        row = self.table.current_run
        return [row.id] if row else []

    def action_cancel_run(self) -> None:
        row = self.table.current_run
        if row is not None:
            question = f"Cancel run #{row.id} {row.label}? A training run saves a checkpoint first; R resumes it."
            self.app.push_screen(ConfirmDialog(question, "Cancel run"), lambda ok: ok and self._cancel(row.id))

    def action_resume_run(self) -> None:
        row = self.table.current_run
        if row is not None:
            if self.app.resume_run(row.id):
                self.reload()

    def action_clone(self) -> None:
        row = self.table.current_run
        if row is not None:
            self._read_run(row.id, "clone")

    @work(thread=True, exit_on_error=False, group="runs-write")
    def _cancel(self, run_id: int) -> None:
        with open_store(self.app.db_path) as store:
            try:
                note = cancel_run(store, run_id)
            except ReasonlabError as exc:
                note = str(exc)
        self.post_message(self.Done(note))

    def action_delete(self) -> None:
        ids = self._targets()
        if not ids:
            return
        rows = self.table.rows_by_id()
        active = [i for i in ids if i in rows and rows[i].status in ACTIVE_STATUSES]
        if active:
            listed = ", ".join(f"#{i}" for i in active)
            self.notify(f"Cancel {listed} before deleting.", severity="warning", markup=False)
            return
        what = f"run #{ids[0]}" if len(ids) == 1 else f"{len(ids)} runs ({', '.join(f'#{i}' for i in ids)})"
        question = f"Delete {what} with its metrics, samples and files (artifacts included)?"
        self.app.push_screen(ConfirmDialog(question, "Delete"), lambda ok: ok and self._delete(ids))

    @work(thread=True, exit_on_error=False, group="runs-write")
    def _delete(self, ids: list[int]) -> None:
        with open_store(self.app.db_path) as store:
            deleted, refused = [], []
            for run_id in ids:
                try:
                    store.delete_run(run_id, remove_files=True)
                    deleted.append(run_id)
                except ReasonlabError as exc:
                    refused.append(str(exc))
        note = f"Deleted {len(deleted)} run{'s' if len(deleted) != 1 else ''}."
        self.post_message(self.Done(" ".join([note, *refused]), tuple(deleted)))

    def action_export(self) -> None:
        ids = self._targets()
        if ids:
            self.app.push_screen(ExportDialog(self.app.db_path, ids), lambda note: note and self.notify(note, markup=False))

    def action_edit(self) -> None:
        row = self.table.current_run
        if row is not None:
            self._read_run(row.id, "edit")

    @work(thread=True, exit_on_error=False, group="runs-read")
    def _read_run(self, run_id: int, purpose: str) -> None:
        with open_store(self.app.db_path) as store:
            try:
                run = store.get_run(run_id)
            except ReasonlabError as exc:
                self.post_message(self.Done(str(exc)))
                return
        self.post_message(self.RunRead(run, purpose))

    def on_runs_screen_run_read(self, message: RunRead) -> None:
        run = message.run
        if message.purpose == "clone":
            self.app.clone(run)
            return
        self.app.push_screen(
            EditRunDialog(run), lambda result: result and self._save(run.id, *result)
        )

    @work(thread=True, exit_on_error=False, group="runs-write")
    def _save(self, run_id: int, tags: str, notes: str) -> None:
        with open_store(self.app.db_path) as store:
            store.update_run(run_id, tags=parse_tags(tags), notes=notes)
        self.post_message(self.Done(f"Saved tags and notes of run #{run_id}."))

    def on_runs_screen_done(self, message: Done) -> None:
        self.table.marked.difference_update(message.deleted)
        self.notify(message.note, markup=False)
        self.reload()
