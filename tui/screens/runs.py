"""The home screen: every run, filtered, sorted and updated live."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from engine.core.columns import SETTING, choosable_columns
from engine.core.errors import ReasonlabError
from engine.core.grouping import Grouped, RunGroup, group_runs
from engine.core.processes import cancel_run
from engine.core.store import ACTIVE_STATUSES, RESUMABLE_STATUSES, Run, RunFilter, RunOrder, RunPage, open_store
from tui.data import parse_tags
from tui.screens.worker_errors import ReportsWorkerErrors
from tui.screens.confirm import ConfirmDialog
from tui.screens.edit_run import EditRunDialog
from tui.screens.param_metric import ParamMetricScreen
from tui.screens.table_choices import NO_GROUPING, ColumnsDialog, GroupingDialog
from tui.screens.family import FamilyScreen
from tui.screens.export_dialog import ExportDialog
from tui.widgets.filter_bar import FilterBar
from tui.widgets.groups_table import GroupsTable, group_keys, is_aggregated
from tui.widgets.runs_table import RunsTable, chosen_value_keys, column_spec, shown_keys

if TYPE_CHECKING:
    from tui.app import ReasonlabApp

PAGE_SIZE = 100
"""Rows fetched at a time; more load when the cursor reaches the last one."""

ASCENDING_FIRST = {"name", "kind", "status", "model"}
"""Fixed columns sorted A to Z first; so are chosen settings. The rest start with the highest."""

COLUMNS_SETTING = "runs_table.columns"
"""The database setting that remembers the chosen columns (a JSON list of column keys)."""

GROUPED_ACTIONS = {"group", "columns", "plot", "launch", "search", "back", "more"}
"""What the screen offers while it shows groups: no action on the run under a hidden cursor."""

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
            "left_square_bracket", "move_in_queue(-1)", "Earlier", show=False,
            tooltip="Move the queued run under the cursor one place earlier in the queue",
            id="runs.queue-earlier",
        ),
        Binding(
            "right_square_bracket", "move_in_queue(1)", "Later", show=False,
            tooltip="Move the queued run under the cursor one place later in the queue",
            id="runs.queue-later",
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
        Binding("f", "family", "Family", show=False, tooltip="The pipeline or sweep of the run under the cursor, or its lineage", id="runs.family"),
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
            "escape", "back", "Back", show=False,
            tooltip="Back to the table from the filters; from a group's runs, back to the groups",
            id="runs.table",
        ),
        Binding(
            "o", "columns", "Columns", show=False,
            tooltip="Choose the columns: any setting or final metric (remembered per database)",
            id="runs.columns",
        ),
        Binding(
            "g", "group", "Group", show=False,
            tooltip="Group the runs by a sweep, a pipeline, a tag or a setting (metrics as mean ± std)",
            id="runs.group",
        ),
        Binding(
            "v", "plot", "Param vs metric", show=False,
            tooltip="Plot a setting against a final metric for the selected runs (or all shown, or the group)",
            id="runs.plot",
        ),
        Binding("u", "unselect", "Unselect", show=False, tooltip="Clear the selection", id="runs.unselect"),
        Binding("q", "app.quit", "Quit", show=False, id="runs.quit"),
    ]

    class Loaded(Message):
        """A page of runs, or with a grouping every group, was read for `request`."""

        def __init__(self, request: tuple, page: RunPage, groups: Grouped | None, tags: list[str] | None) -> None:
            super().__init__()
            self.request = request
            self.page = page
            self.groups = groups
            self.tags = tags

    class ColumnsRead(Message):
        """The database's chosen columns (None: none chosen yet, or not readable)."""

        def __init__(self, keys: list[str] | None) -> None:
            super().__init__()
            self.keys = keys

    class ColumnChoices(Message):
        """Every column the picker offers, with the metrics the database's runs logged."""

        def __init__(self, logged_metrics: list[str]) -> None:
            super().__init__()
            self.logged_metrics = logged_metrics

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
        self.grouping = NO_GROUPING
        self.expanded: str | None = None
        """The label of the group whose runs are shown (from the grouped view), else None."""
        self.groups: list[RunGroup] = []
        """The groups shown: the first `limit` (a table of thousands is slow to fill)."""
        self.group_count = 0
        self._grouping_before_expand = NO_GROUPING

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterBar()
        yield RunsTable(id="runs-table")
        yield GroupsTable(id="runs-groups")
        yield Static(id="runs-empty")
        yield Static(id="runs-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = self.app.db_path.name
        self.query_one(RunsTable).focus()
        self.query_one(GroupsTable).display = False
        self._read_columns()

    @work(thread=True, exit_on_error=False, group="runs-columns")
    def _read_columns(self) -> None:
        with open_store(self.app.db_path) as store:
            stored = store.setting(COLUMNS_SETTING)
        try:
            keys = json.loads(stored) if stored is not None else None
        except ValueError:
            keys = None
        valid = isinstance(keys, list) and all(isinstance(k, str) for k in keys)
        self.post_message(self.ColumnsRead(keys if valid else None))

    def on_runs_screen_columns_read(self, message: ColumnsRead) -> None:
        self._start_polling(message.keys)

    def _start_polling(self, keys: list[str] | None) -> None:
        """Show the chosen columns, then read the runs now and every poll interval."""
        if keys is not None:
            self.table.set_keys(shown_keys(keys))
        self.reload()
        self.set_interval(self.app.poll_interval, self.reload)

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    @property
    def groups_table(self) -> GroupsTable:
        return self.query_one(GroupsTable)

    def _request(self) -> tuple:
        return (self.run_filter, self.order, self.limit, tuple(self.table.keys), self.grouping)

    # -- loading --------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the runs again (at most one read in flight; a change meanwhile reads again)."""
        if self._loading:
            self._stale = True
            return
        self._loading = True
        self._stale = False
        self._load(self._request())

    @work(thread=True, exit_on_error=False, group="runs-load")
    def _load(self, request: tuple) -> None:
        run_filter, order, limit, keys, grouping = request
        with open_store(self.app.db_path) as store:
            store.reap_dead_runs()
            groups = None
            if grouping != NO_GROUPING:
                summarised = group_keys(list(keys))
                rows = store.group_rows(run_filter, grouping, summarised)
                metrics = {k for k in summarised if is_aggregated(k)}
                groups = group_runs(rows, summarised, metrics, first=limit)
                page = RunPage([], len({run_id for _, run_id, *_ in rows}))
                tags = None  # the tag picker keeps its list: grouping thousands of runs is slow enough
            else:
                page = store.run_page(run_filter, order, limit, chosen_value_keys(list(keys)))
                tags = store.all_tags()
        self.post_message(self.Loaded(request, page, groups, tags))

    def worker_failed(self, worker) -> None:
        super().worker_failed(worker)
        if worker.group == "runs-load":
            self._loading = False  # the next poll reads again
        elif worker.group == "runs-columns":
            self._start_polling(None)  # the fixed columns, then

    def on_runs_screen_loaded(self, message: Loaded) -> None:
        self._loading = False
        if self._stale or message.request != self._request():
            self.reload()
            return
        self.page = message.page
        if message.tags is not None:
            self.query_one(FilterBar).set_tags(message.tags)
        if message.groups is not None:
            self.groups, self.group_count = message.groups.groups, message.groups.count
            self.groups_table.show(self.grouping, self.table.keys, self.groups)
            self._show_status()
            return
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
        if self.grouping != NO_GROUPING:
            by = self.grouping.removeprefix(SETTING)
            shown_groups, groups = len(self.groups), self.group_count
            counted = f"{shown_groups} of {groups} groups" if shown_groups < groups else f"{groups} groups"
            parts = [f"{counted} of {total} runs by {by}", "enter: a group's runs", "v: plot it"]
            if shown_groups < groups:
                parts.append("m: more")
            self.query_one("#runs-status", Static).update(" · ".join(parts))
            return
        parts = [f"{shown} of {total} runs" if shown < total else f"{total} runs"]
        if self.expanded is not None:
            parts.insert(0, f"group {self.expanded}")
        if self.table.marked:
            parts.append(f"{len(self.table.marked)} selected (u: clear)")
        column = column_spec(self.order.column).label
        parts.append(f"sorted by {column} {'▼' if self.order.descending else '▲'}")
        if shown < total:
            parts.append("m: more")
        if self.expanded is not None:
            parts.append("esc: groups")
        self.query_one("#runs-status", Static).update(" · ".join(parts))

    def select_when_loaded(self, run_id: int) -> None:
        """Put the cursor on `run_id` once it shows up (after a launch)."""
        self._select_after_load = run_id
        self.reload()

    # -- filtering and sorting ------------------------------------------------------------

    @on(FilterBar.Changed)
    def _filter_changed(self, event: FilterBar.Changed) -> None:
        self.apply_filter(replace(event.run_filter, ids=self.run_filter.ids))

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
            ascending = column in ASCENDING_FIRST or column.startswith(SETTING)
            self.order = RunOrder(column, descending=not ascending)
        self.table.set_order(self.order)
        self.reload()

    def action_sort(self) -> None:
        keys = self.table.keys
        after = keys.index(self.order.column) + 1 if self.order.column in keys else 0
        self.sort_by(keys[after % len(keys)])

    def action_reverse(self) -> None:
        self.sort_by(self.order.column, toggle=True)

    def action_search(self) -> None:
        self.query_one(FilterBar).focus_search()

    def action_back(self) -> None:
        """To the table from the filters; from a group's runs, back to the groups."""
        shown = self.groups_table if self.grouping != NO_GROUPING else self.table
        if not shown.has_focus:
            shown.focus()
        elif self.expanded is not None:
            self.expanded = None
            self.run_filter = replace(self.run_filter, ids=None)
            self._set_grouping(self._grouping_before_expand)

    def action_more(self) -> None:
        if self.grouping != NO_GROUPING:
            if len(self.groups) < self.group_count:
                self.limit += PAGE_SIZE
                self.reload()
            return
        if len(self.page.rows) < self.page.total:
            self.limit += PAGE_SIZE
            self.reload()

    @on(DataTable.RowHighlighted, "#runs-table")
    def _maybe_load_more(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_bindings()
        if event.cursor_row == self.table.row_count - 1:
            self.action_more()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Resume is offered only on a run that can be resumed, moving only on a queued run (it
        keeps the footer short); a grouped table offers no action on single runs."""
        if self.grouping != NO_GROUPING:
            return action in GROUPED_ACTIONS
        if action in ("resume_run", "move_in_queue"):
            rows = [table.current_run for table in self.query(RunsTable)]
            statuses = RESUMABLE_STATUSES if action == "resume_run" else ("queued",)
            return bool(rows) and rows[0] is not None and rows[0].status in statuses
        return True

    # -- acting on runs -------------------------------------------------------------------

    @on(DataTable.RowSelected, "#runs-table")
    def action_open_run(self) -> None:
        row = self.table.current_run
        if row is not None:
            self.app.open_run(row.id)

    def action_family(self) -> None:
        row = self.table.current_run
        if row is not None:
            self.app.push_screen(FamilyScreen(row.id))

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

    def action_move_in_queue(self, places: int) -> None:
        row = self.table.current_run
        if row is not None and row.queue_position is not None:
            self._move(row.id, max(1, row.queue_position + places))

    @work(thread=True, exit_on_error=False, group="runs-write")
    def _move(self, run_id: int, position: int) -> None:
        with open_store(self.app.db_path) as store:
            try:
                note = f"Run #{run_id} is now #{store.move_in_queue(run_id, position)} in the queue."
            except ReasonlabError as exc:
                note = str(exc)
        self.post_message(self.Done(note))

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

    # -- columns, groups and plots --------------------------------------------------------

    def action_unselect(self) -> None:
        self.table.clear_marks()
        self._show_status()

    def action_columns(self) -> None:
        self._read_column_choices()

    @work(thread=True, exit_on_error=False, group="runs-read")
    def _read_column_choices(self) -> None:
        with open_store(self.app.db_path) as store:
            logged = store.logged_metric_names()
        self.post_message(self.ColumnChoices(logged))

    def on_runs_screen_column_choices(self, message: ColumnChoices) -> None:
        dialog = ColumnsDialog(self.table.keys, choosable_columns(message.logged_metrics))
        self.app.push_screen(dialog, lambda keys: keys is not None and self.show_columns(keys))

    def show_columns(self, chosen: list[str]) -> None:
        """Show the chosen columns now and remember them for this database."""
        keys = shown_keys(chosen)
        if self.order.column not in keys:
            self.order = RunOrder()
        self.table.set_keys(keys)
        self.table.set_order(self.order)
        self._save_columns(keys[1:])
        self.reload()

    @work(thread=True, exit_on_error=False, group="runs-write")
    def _save_columns(self, keys: list[str]) -> None:
        with open_store(self.app.db_path) as store:
            store.set_setting(COLUMNS_SETTING, json.dumps(keys))

    def action_group(self) -> None:
        def chosen(grouping: str | None) -> None:
            if grouping is not None:
                self.expanded = None
                self.run_filter = replace(self.run_filter, ids=None)
                self._set_grouping(grouping)

        self.app.push_screen(GroupingDialog(self.grouping), chosen)

    @on(DataTable.RowHighlighted, "#runs-groups")
    def _maybe_show_more_groups(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row == self.groups_table.row_count - 1:
            self.action_more()

    def _set_grouping(self, grouping: str) -> None:
        self.grouping = grouping
        self.limit = PAGE_SIZE
        grouped = grouping != NO_GROUPING
        self.groups_table.display = grouped
        self.table.display = not grouped
        (self.groups_table if grouped else self.table).focus()
        self.refresh_bindings()
        self.reload()

    @on(DataTable.RowSelected, "#runs-groups")
    def _expand_group(self) -> None:
        """Show the runs of the group under the cursor (esc goes back to the groups)."""
        group = self.groups_table.current_group
        if group is None:
            return
        self._grouping_before_expand = self.grouping
        self.expanded = group.label(self.grouping)
        self.run_filter = replace(self.run_filter, ids=group.run_ids)
        self.limit = PAGE_SIZE
        self._set_grouping(NO_GROUPING)

    def action_plot(self) -> None:
        if self.grouping != NO_GROUPING:
            group = self.groups_table.current_group
            ids, what = (list(group.run_ids), f"group {group.label(self.grouping)}") if group else ([], "")
        elif self.table.marked:
            ids, what = sorted(self.table.marked), f"{len(self.table.marked)} selected runs"
        else:
            ids, what = self.table.run_ids, f"{len(self.table.run_ids)} shown runs"
        if not ids:
            self.notify("No runs to plot: select runs with space, or show some.", severity="warning", markup=False)
            return
        self.app.push_screen(ParamMetricScreen(ids, what))
