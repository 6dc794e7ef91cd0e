"""A run's family as a whole: the pipeline or sweep it belongs to, member by member with
kind, status, time and headline result; for a run in neither, its lineage."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Label, Static

from engine.core.metrics import ACCURACY, CORRECT_RATE, LOSS, MODEL_RUN, REWARD_MEAN, title
from engine.core.store import Family, FamilyMember, open_store
from tui.data import STATUS_THEME_COLOURS, format_duration, format_value, plain
from tui.screens.worker_errors import ReportsWorkerErrors

if TYPE_CHECKING:
    from tui.app import ReasonlabApp

HEADLINES: dict[str, tuple[str, ...]] = {
    "eval": (ACCURACY,),
    "rollout": (CORRECT_RATE,),
    "sft": (ACCURACY, LOSS),
    "rft": (ACCURACY, LOSS),
    "pipeline": (ACCURACY, LOSS),
    "grpo": (ACCURACY, REWARD_MEAN),
}
"""A member's result column: the first of its kind's metrics it has logged (accuracy where
there is one, as in the runs list; a rollout's share of correct samples is its RFT data)."""

LABEL_WIDTH = 24
"""Longer run labels are cut, so the table fits 80 columns."""


def headline(member: FamilyMember) -> str:
    """'Accuracy 0.49', or '' before the run has logged any of its kind's headline metrics."""
    metric = next((m for m in HEADLINES.get(member.kind, ()) if m in member.summary), None)
    return "" if metric is None else f"{title(metric)} {format_value(member.summary[metric])}"


def pipeline_model(family: Family) -> int | None:
    """The stage whose adapter a finished pipeline hands on (its best on the selection split),
    as the pipeline run records it; None for a sweep, a lineage or an unfinished pipeline."""
    head = next((m for m in family.members if m.kind == "pipeline"), None) if family.kind == "pipeline" else None
    value = head.summary.get(MODEL_RUN) if head else None
    return int(value) if isinstance(value, (int, float)) else None


MODEL_MARK = " · model"
"""Follows the result of the stage that is its pipeline's model."""


def family_title(family: Family, run_id: int) -> str:
    """'Pipeline #7 pipe-small · 5 runs: 4 completed, 1 running' and the like."""
    members = family.members
    counts = Counter(m.status for m in members)
    tally = ", ".join(f"{n} {status}" for status, n in counts.items())
    runs = f"{len(members)} run{'s' if len(members) != 1 else ''}: {tally}"
    if family.kind == "pipeline":
        head = next((m for m in members if m.kind == "pipeline"), None)
        name = f"#{head.id} {head.label}" if head else family.key
        return f"Pipeline {name} · {runs}"
    if family.kind == "sweep":
        return f"Sweep {family.key.partition(':')[2]} · {runs}"
    me = next((m for m in members if m.id == run_id), None)
    return f"Lineage of #{run_id}{f' {me.label}' if me else ''} · {runs}"


def no_family_text(run_id: int) -> str:
    return (
        f"Run #{run_id} has no family: it is in no pipeline or sweep, it names no other run "
        "(adapter, data) and no run names it."
    )


class FamilyScreen(ReportsWorkerErrors):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to where you came from", id="family.back"),
        Binding("enter", "open_member", "Open", tooltip="Open the run under the cursor", priority=True, id="family.open"),
    ]
    DEFAULT_CSS = """
    FamilyScreen #family-title { padding: 0 1; text-style: bold; width: 1fr; }
    FamilyScreen #family-table { height: 1fr; }
    FamilyScreen #family-empty { display: none; margin: 1 2; color: $text-muted; }
    """

    class Loaded(Message):
        def __init__(self, family: Family) -> None:
            super().__init__()
            self.family = family

    app: ReasonlabApp

    def __init__(self, run_id: int) -> None:
        """The family of run `run_id`; the cursor starts on that run."""
        super().__init__()
        self.run_id = run_id
        self.family: Family | None = None
        self._loading = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(f"Family of run #{self.run_id}", id="family-title")
        table = DataTable(cursor_type="row", id="family-table")
        table.add_column("#", key="id")
        table.add_column("Run", key="run")
        table.add_column("Kind", key="kind")
        table.add_column("Status", key="status")
        table.add_column("Time", key="time")
        table.add_column("Result", key="result")
        yield table
        yield Static(no_family_text(self.run_id), id="family-empty", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"Family of run #{self.run_id}"
        self.query_one(DataTable).focus()
        self.load()
        self.set_interval(self.app.poll_interval, self.load)

    def load(self) -> None:
        if not self._loading:
            self._loading = True
            self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="family-load")
    def _load(self) -> None:
        with open_store(self.app.db_path) as store:
            family = store.family(self.run_id)
        self.post_message(self.Loaded(family))

    def worker_failed(self, worker) -> None:
        super().worker_failed(worker)
        self._loading = False

    def on_family_screen_loaded(self, message: Loaded) -> None:
        if self.closed:
            return
        self._loading = False
        if message.family == self.family and not any(m.status == "running" for m in message.family.members):
            return  # unchanged (a running member's time still moves)
        current = self.run_id if self.family is None else self.current_member_id()
        self.family = family = message.family
        self.query_one("#family-title", Label).update(plain(family_title(family, self.run_id)))
        table = self.query_one(DataTable)
        alone = family.kind == "lineage" and len(family.members) <= 1
        table.display = not alone
        self.refresh_bindings()
        self.query_one("#family-empty", Static).display = alone
        table.clear()
        model = pipeline_model(family)
        for member in family.members:
            table.add_row(*self._cells(member, member.id == model), key=str(member.id))
        ids = [m.id for m in family.members]
        if current in ids:
            table.move_cursor(row=ids.index(current))

    def _cells(self, member: FamilyMember, is_model: bool) -> list[Text | str]:
        status_style = self.app.theme_variables.get(STATUS_THEME_COLOURS.get(member.status, ""), "")
        label = member.label if len(member.label) <= LABEL_WIDTH else member.label[: LABEL_WIDTH - 1] + "…"
        marker = "▸" if member.id == self.run_id else " "
        return [
            f"{marker}{member.id}", plain(label), member.kind, Text(member.status, style=status_style),
            format_duration(member.duration), headline(member) + (MODEL_MARK if is_model else ""),
        ]

    def current_member_id(self) -> int | None:
        table = self.query_one(DataTable)
        if self.family is None or not table.row_count:
            return None
        return self.family.members[table.cursor_row].id

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Open is offered while there are members to open."""
        if action == "open_member":
            return self.query_one(DataTable).display
        return True

    @on(DataTable.RowSelected, "#family-table")
    def action_open_member(self) -> None:
        member_id = self.current_member_id()
        if member_id is not None:
            self.app.open_run(member_id)
