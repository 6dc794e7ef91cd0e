"""The run store: runs, metrics, samples and artifacts in one SQLite file.

Every SQL statement of reasonlab is here; the engine and the app call these methods and get
typed rows back. WAL mode and short transactions (one per batch of writes) keep a reader such as
the app from ever being blocked by a run that is writing. Each thread opens its own `RunStore`
(SQLite connections are per-thread).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import statistics
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from engine.core.errors import ReasonlabError
from engine.core.folders import checked_run_folder, runs_root
from engine.core.processes import Owner
from engine.core.schema import migrations
from engine.core.columns import SETTING, column_for, is_valid_key
from engine.core.grouping import PIPELINE, SWEEP, TAG, TAG_PREFIXES
from engine.core.ids import run_id_or_none
from engine.core.spec import KINDS, PARENT_SETTINGS, RunSpec, default_rule, setting_text

DB_ENV = "REASONLAB_DB"
DEFAULT_DB = "runs.db"
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("completed", "failed", "cancelled")
RESUMABLE_STATUSES = ("cancelled", "failed")
DEAD_OWNER = "The run's process exited without finishing; resume it or start it again."


def run_label(name: str, kind: str, run_id: int) -> str:
    """How a run is named everywhere: its name, or kind and id when it has none."""
    return name or f"{kind}-{run_id}"


@dataclass(frozen=True)
class Run:
    id: int
    kind: str
    name: str
    status: str
    spec: RunSpec
    created_at: float
    started_at: float | None
    finished_at: float | None
    pid: int | None
    pid_started: float | None
    error: str | None
    parent_id: int | None
    tags: tuple[str, ...]
    notes: str
    environment: dict[str, Any]
    run_dir: str
    progress_done: int | None
    progress_total: int | None
    summary: dict[str, float]
    pace_since: float | None = None  # when, and at what progress, this attempt first reported progress
    pace_since_done: int | None = None

    @property
    def label(self) -> str:
        return run_label(self.name, self.kind, self.id)

    @property
    def owner(self) -> Owner | None:
        """The process that claimed the run, when one is recorded with its start time."""
        if self.pid is None or self.pid_started is None:
            return None
        return Owner(self.pid, self.pid_started)

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Run":
        """The run a row describes; a row whose stored JSON no longer reads is a one-line
        error naming the run and what to do."""
        try:
            return cls._parse(row)
        except (ValueError, TypeError, KeyError) as exc:
            raise ReasonlabError(
                f"Run {row['id']}'s stored record is unreadable ({exc}); `python -m engine delete {row['id']}` "
                "removes it."
            ) from None

    @classmethod
    def _parse(cls, row: dict[str, Any]) -> "Run":
        return cls(
            id=row["id"], kind=row["kind"], name=row["name"] or "", status=row["status"],
            spec=RunSpec.from_dict(json.loads(row["spec"]) | {"kind": row["kind"]}), created_at=row["created_at"],
            started_at=row["started_at"], finished_at=row["finished_at"], pid=row["pid"],
            pid_started=row["pid_started"], error=row["error"], parent_id=row["parent_id"],
            tags=tuple(json.loads(row["tags"] or "[]")), notes=row["notes"] or "",
            environment=json.loads(row["environment"] or "{}"), run_dir=row["run_dir"] or "",
            progress_done=row["progress_done"], progress_total=row["progress_total"],
            summary=json.loads(row["summary"] or "{}"), pace_since=row["pace_since"],
            pace_since_done=row["pace_since_done"],
        )


# -- typed rows for the app's lists ----------------------------------------------------------

KEY_RESULT = "coalesce(json_extract(summary, '$.accuracy'), json_extract(summary, '$.correct_rate'))"
"""The 'Acc' column: final accuracy, or the share of correct samples for rollouts."""

LABEL = "coalesce(nullif(name, ''), kind || '-' || id)"
"""`run_label` in SQL, so lists sort by the label they show."""

SORT_EXPRESSIONS = {
    "id": "id",
    "name": f"{LABEL} collate nocase",
    "kind": "kind",
    "status": "status",
    "model": "model collate nocase",
    "accuracy": KEY_RESULT,
    "loss": "json_extract(summary, '$.loss')",
    "started": "started_at",
    "duration": "(coalesce(finished_at, ?) - started_at)",
}


@dataclass(frozen=True)
class UnreadableRun:
    """A row that no longer reads as a run (hand-edited, or written by a newer version): lists
    show it with the reason instead of failing for every run."""

    id: int
    kind: str
    status: str
    reason: str


@dataclass(frozen=True)
class RunFilter:
    kind: str | None = None
    status: str | None = None
    tag: str | None = None
    search: str = ""
    ids: tuple[int, ...] | None = None
    """Only these runs (an expanded group); None: any run."""


@dataclass(frozen=True)
class RunOrder:
    column: str = "id"
    descending: bool = True


@dataclass(frozen=True)
class RunRow:
    """What a run list shows of one run (no spec parsing: lists page through thousands)."""

    id: int
    name: str
    kind: str
    status: str
    model: str
    accuracy: float | None
    loss: float | None
    started_at: float | None
    finished_at: float | None
    tags: tuple[str, ...]
    queue_position: int | None = None
    """1 for the next queued run to start, 2 for the one after it…; None unless queued."""
    values: Mapping[str, Any] = field(default_factory=dict)
    """The chosen setting and metric columns' values, by column key."""

    @property
    def label(self) -> str:
        return run_label(self.name, self.kind, self.id)


QUEUE_ORDER = "coalesce(queue_position, id), id"
"""Queued runs start in this order: creation order unless a run was moved."""


@dataclass(frozen=True)
class QueuedRun:
    """A run waiting in the queue, with the process waiting to run it (None: no process has
    been recorded; `engine start ID` starts one)."""

    position: int
    id: int
    label: str
    kind: str
    created_at: float
    waiter: Owner | None


@dataclass(frozen=True)
class RunningRun:
    """A running run and the queue slot its process holds (None: it runs inside a pipeline's slot,
    or was started before slots existed)."""

    id: int
    label: str
    kind: str
    started_at: float | None
    slot: int | None
    parent_id: int | None


@dataclass(frozen=True)
class RunPage:
    rows: list[RunRow]
    total: int
    """How many runs match the filter (the page may hold fewer)."""


# -- lineage: the runs a run was built from, the runs built from it, and its family ---------

PIPELINE_TAG = "pipeline:"
SWEEP_TAG = "sweep:"
"""A pipeline's stages are tagged `pipeline:<its run id>`, a sweep's runs `sweep:<sweep id>`."""

MAX_LINEAGE_RUNS = 200
"""A lineage walk stops after this many runs (a chain of rounds can grow long)."""


@dataclass(frozen=True)
class RelatedRun:
    """A run linked to another one, and how, seen from the later run: `via` holds 'adapter' or
    'data' (the setting naming the earlier run), 'pipeline' (a stage and its pipeline),
    'previous stage' (consecutive stages of one pipeline) or 'parent' (only the recorded parent)."""

    id: int
    name: str
    kind: str
    status: str
    via: tuple[str, ...]

    @property
    def label(self) -> str:
        return run_label(self.name, self.kind, self.id)


@dataclass(frozen=True)
class Lineage:
    parents: tuple[RelatedRun, ...]
    children: tuple[RelatedRun, ...]


@dataclass(frozen=True)
class FamilyMember:
    """What a family view shows of one run: its headline results come from `summary`."""

    id: int
    name: str
    kind: str
    status: str
    started_at: float | None
    finished_at: float | None
    summary: dict[str, float]

    @property
    def label(self) -> str:
        return run_label(self.name, self.kind, self.id)

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


@dataclass(frozen=True)
class Family:
    """Runs that belong together, in id order: a pipeline (its run, then its stages), a sweep,
    or, for a run in neither, its lineage (its ancestors and descendants, itself included)."""

    kind: str
    """'pipeline', 'sweep' or 'lineage'."""
    key: str
    """The tag the members share (`pipeline:7`, `sweep:ab12cd`), or `lineage:<run id>`."""
    members: tuple[FamilyMember, ...]


@dataclass(frozen=True)
class _LinkRow:
    """The columns that say how a run is linked to others."""

    id: int
    kind: str
    spec: dict[str, Any]
    parent_id: int | None
    tags: tuple[str, ...]

    @classmethod
    def read(cls, row: tuple) -> "_LinkRow":
        run_id, kind, spec, parent_id, tags = row
        try:
            values = json.loads(spec or "{}")
        except ValueError:
            values = {}
        return cls(run_id, kind, values if isinstance(values, dict) else {}, parent_id, _readable_tags(tags))

    def setting_parents(self) -> dict[str, int]:
        """The settings of this run's kind that name another run, with that run's id."""
        applying = {f.name for f in RunSpec.settings(self.kind)} if self.kind in KINDS else set()
        named = {name: run_id_or_none(str(self.spec.get(name) or "")) for name in PARENT_SETTINGS if name in applying}
        return {name: run_id for name, run_id in named.items() if run_id is not None}

    def pipeline_ids(self) -> list[int]:
        ids = (run_id_or_none(tag.removeprefix(PIPELINE_TAG)) for tag in self.tags if tag.startswith(PIPELINE_TAG))
        return [run_id for run_id in ids if run_id is not None]

    def links_to(self, parent_id: int) -> tuple[str, ...]:
        """How this run is built from run `parent_id` (empty: it is not)."""
        via = [name for name, run_id in self.setting_parents().items() if run_id == parent_id]
        if parent_id in self.pipeline_ids():
            via.append("pipeline")
        if self.parent_id == parent_id and not via:
            via.append("previous stage" if self.pipeline_ids() else "parent")
        return tuple(via)

    def parent_ids(self) -> set[int]:
        ids = {*self.setting_parents().values(), *self.pipeline_ids()}
        if self.parent_id is not None:
            ids.add(self.parent_id)
        return ids - {self.id}

    def family_tag(self) -> str | None:
        """The pipeline this run is or belongs to, else the sweep it belongs to."""
        if self.kind == "pipeline":
            return f"{PIPELINE_TAG}{self.id}"
        tags = [t for t in self.tags if t.startswith(PIPELINE_TAG)] or [t for t in self.tags if t.startswith(SWEEP_TAG)]
        return tags[0] if tags else None


VALID_TAGS = "(case when json_valid(runs.tags) then runs.tags else '[]' end)"
VALID_SPEC = "(case when json_valid(runs.spec) then runs.spec end)"
"""A hand-edited row with malformed JSON is passed over instead of failing the whole query."""

FAMILY_COLUMNS = "id, name, kind, status, started_at, finished_at, summary"


def default_db_path() -> Path:
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB)


class RunStore:
    """Reads and writes one runs database. Opening it applies pending migrations."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_db_path()
        if self.path.parent and not self.path.parent.exists():
            raise ReasonlabError(
                f"Database folder {self.path.parent} does not exist; create it or pass another --db path."
            )
        try:
            self.db = sqlite_utils.Database(self.path)
            self.db.execute("PRAGMA busy_timeout = 10000")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.conn.create_function("setting_default", 3, _setting_default, deterministic=True)
            self._refuse_foreign_database()
            self._prepare()
        except sqlite_utils.db.sqlite3.DatabaseError as exc:
            raise ReasonlabError(
                f"Cannot open run database {self.path}: {exc}; pass another --db path."
            ) from None
        self.runs_root = runs_root(self.path)
        """Where this database's runs keep their files: `<db file>.runs/<id>/`."""
        self._follow_move()

    def _follow_move(self) -> None:
        """Point the runs at this database's runs folder after the database and its folder were
        moved or copied together (say from a GPU machine to a laptop): a row naming
        `<elsewhere>/<this file's name>.runs/<id>` now names `<this runs folder>/<id>`, and its
        artifacts likewise, so runs resume and adapters load in the new place. Rows naming any
        other folder are left as they are (and refused on use). An unmoved database is only
        read; a read-only one is left alone."""
        root = self.runs_root
        rows = self.db.execute(
            "select id, run_dir from runs where run_dir is not null and run_dir != ''"
            " and run_dir != ? || id", [f"{root}{os.sep}"],
        ).fetchall()
        moved = [
            (run_id, old) for run_id, old in rows
            if Path(old).name == str(run_id) and Path(old).parent.name == root.name
        ]
        if not moved or self.db.execute("pragma query_only").fetchone()[0] or not os.access(self.path, os.W_OK):
            return
        with self.transaction():
            for run_id, old in moved:
                new = str(root / str(run_id))
                self.db.execute("update runs set run_dir = ? where id = ? and run_dir = ?", [new, run_id, old])
                self.db.execute(
                    "update artifacts set path = ? || substr(path, ?) where run_id = ?"
                    " and (path = ? or substr(path, 1, ?) = ?)",
                    [new, len(old) + 1, run_id, old, len(old) + 1, old + os.sep],
                )

    def _refuse_foreign_database(self) -> None:
        """Refuse, before writing anything, an SQLite file that holds tables but no record of
        reasonlab's migrations: it belongs to something else."""
        tables = {name for (name,) in self.db.execute("select name from sqlite_master where type = 'table'")}
        if not tables or migrations.migrations_table in tables:
            return
        listed = ", ".join(sorted(tables)[:5])
        raise ReasonlabError(
            f"{self.path} is an SQLite database but not a reasonlab store (it holds {listed}); "
            "pass another --db path."
        )

    def _prepare(self, attempts: int = 50) -> None:
        """Switch to WAL and apply pending migrations, only when needed: an up-to-date database
        opens with reads alone. When several connections create the same new database at once
        (the app's workers, an engine process), SQLite refuses the journal switch without
        waiting, and a migration can find its table or column made by a rival, or its record
        written by one: all are retried until the winner's work is visible. Only one connection
        can add a migration's first table or column, so a loser fails before changing anything;
        a migration that adds neither runs in one transaction with its record, so a loser's
        duplicate record rolls its changes back."""
        for attempt in range(attempts):
            try:
                if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self.db.enable_wal()
                if migrations.pending(self.db):
                    migrations.apply(self.db)
                return
            except (sqlite_utils.db.sqlite3.OperationalError, sqlite_utils.db.sqlite3.IntegrityError) as exc:
                rival = any(
                    text in str(exc)
                    for text in ("locked", "already exists", "duplicate column name",
                                 f"UNIQUE constraint failed: {migrations.migrations_table}.")
                )
                if not rival or attempt == attempts - 1:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.conn:
            yield

    # -- runs -----------------------------------------------------------------------------

    def create_run(
        self,
        spec: RunSpec,
        *,
        parent_id: int | None = None,
        tags: Iterable[str] = (),
        status: str = "queued",
    ) -> Run:
        with self.transaction():
            table = self.db["runs"]
            table.insert(
                {
                    "kind": spec.kind, "name": spec.name, "status": status, "spec": spec.to_json(),
                    "model": spec.model, "created_at": time.time(), "parent_id": parent_id,
                    "tags": json.dumps(sorted(set(tags))), "seed": spec.seed, "summary": "{}",
                }
            )
            run_id = table.last_pk
            run_dir = self.runs_root / str(run_id)
            table.update(run_id, {"run_dir": str(run_dir)})
        run_dir.mkdir(parents=True, exist_ok=True)
        return self.get_run(run_id)

    def get_run(self, run_id: int) -> Run:
        rows = list(self.db.query("select * from runs where id = ?", [run_id]))
        if not rows:
            raise ReasonlabError(f"No run with id {run_id} in {self.path}; `python -m engine runs` lists them.")
        return Run.from_row(rows[0])

    def run_folder(self, run: Run) -> Path:
        """The run's folder, created if missing, after checking that it lies inside this
        database's runs folder (a row naming any other place is refused)."""
        folder = checked_run_folder(self.runs_root, run.id, run.run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def list_runs(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        search: str | None = None,
        limit: int | None = None,
    ) -> list[Run | UnreadableRun]:
        where, args = _filter_sql(RunFilter(kind, status, tag, search or ""))
        sql = f"select * from runs{where} order by id desc"
        if limit:
            sql += f" limit {int(limit)}"
        runs: list[Run | UnreadableRun] = []
        for row in self.db.query(sql, args):
            try:
                runs.append(Run.from_row(row))
            except ReasonlabError as exc:
                runs.append(UnreadableRun(row["id"], row["kind"], row["status"], str(exc)))
        return runs

    def run_page(self, run_filter: RunFilter, order: RunOrder, limit: int, columns: Sequence[str] = ()) -> RunPage:
        """The first `limit` runs matching the filter in `order` (runs without a value sort last),
        with the values of the chosen setting and metric `columns` (keys of engine.core.columns)."""
        where, args = _filter_sql(run_filter)
        expr = sort_expression(order.column)
        order_args = [time.time()] if "?" in expr else []
        direction = "desc" if order.descending else "asc"
        chosen = "".join(f", {column_expression(key)}" for key in columns)
        sql = (
            "select id, name, kind, status, model, started_at, finished_at, tags,"
            f" {KEY_RESULT} as accuracy, json_extract(summary, '$.loss') as loss, queue_rank{chosen}"
            f" from runs left join (select id as queued_id, row_number() over (order by {QUEUE_ORDER}) as queue_rank"
            " from runs where status = 'queued') on queued_id = runs.id"
            f"{where} order by {expr} is null, {expr} {direction}, id {direction}"
            " limit ?"
        )
        rows = self.db.execute(sql, [*args, *order_args, *order_args, int(limit)]).fetchall()
        total = self.db.execute(f"select count(*) from runs{where}", args).fetchone()[0]
        return RunPage(
            [
                RunRow(
                    id=r[0], name=r[1] or "", kind=r[2], status=r[3], model=r[4] or "",
                    started_at=r[5], finished_at=r[6], tags=_readable_tags(r[7]),
                    accuracy=r[8], loss=r[9], queue_position=r[10], values=dict(zip(columns, r[11:])),
                )
                for r in rows
            ],
            total,
        )

    def recent_runs(self, limit: int = 500) -> list[tuple[int, str]]:
        """(id, label) of the newest runs, for the command palette."""
        rows = self.db.execute("select id, name, kind from runs order by id desc limit ?", [limit]).fetchall()
        return [(i, run_label(name, kind, i)) for i, name, kind in rows]

    def parent_candidates(self, provides: str) -> list[tuple[str, int]]:
        """Completed runs that a setting marked `parent=provides` may name, newest first, as
        (label, run id): runs with an adapter artifact, or rollout runs (their correct samples
        are RFT data)."""
        if provides == "adapter":
            sql = (
                "select id, name, kind from runs where status = 'completed' and exists"
                " (select 1 from artifacts where artifacts.run_id = runs.id and artifacts.kind = 'adapter')"
            )
        else:
            sql = "select id, name, kind from runs where status = 'completed' and kind = ?"
        rows = self.db.execute(sql + " order by id desc limit 500", [] if provides == "adapter" else [provides]).fetchall()
        return [(f"#{i} {run_label(name, kind, i)} ({kind})", i) for i, name, kind in rows]

    def all_tags(self) -> list[str]:
        rows = self.db.query("select distinct value from runs, json_each(runs.tags) order by value")
        return [r["value"] for r in rows]

    def update_run(self, run_id: int, **fields: Any) -> None:
        for key in ("tags", "environment", "summary"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(sorted(fields[key]) if key == "tags" else fields[key])
        with self.transaction():
            self.db["runs"].update(run_id, fields)

    def add_environment(self, run_id: int, values: dict[str, Any]) -> None:
        """Merge `values` into the run's environment: what it ran with that is known only once
        its model is loaded (the device, dtype and threads its outputs depend on)."""
        with self.transaction():
            self.db.execute(
                "update runs set environment = json_patch(coalesce(environment, '{}'), ?) where id = ?",
                [json.dumps(values), run_id],
            )

    def claim_run(self, run_id: int, owner: Owner, environment: dict[str, Any], *, resume: bool) -> Run:
        """Make `owner` the run's one process, atomically: `start` takes a queued run, `resume`
        a cancelled or failed one (or a running one whose process is gone). Of two processes
        claiming one run at once, exactly one wins; the other gets a one-line error. A resumed
        run keeps its first start time, so its duration spans every attempt; its pace (what an
        estimate of the time left goes by) is measured afresh from this attempt's first progress."""
        run = self.get_run(run_id)
        self.run_folder(run)  # a row naming a folder elsewhere is refused before anything runs
        if resume and run.status == "running":
            self.reap_dead_runs()
            run = self.get_run(run_id)
        allowed = RESUMABLE_STATUSES if resume else ("queued",)
        if run.status not in allowed:
            raise ReasonlabError(_refusal(run, resume))
        if run.owner is not None and run.owner != owner and run.owner.is_alive():
            raise ReasonlabError(f"Run {run_id}'s last process (pid {run.pid}) is still exiting; try again in a moment.")
        marks = ", ".join("?" * len(allowed))
        with self.transaction():
            claimed = self.db.execute(
                "update runs set status = 'running', pid = ?, pid_started = ?,"
                " started_at = coalesce(started_at, ?), finished_at = null, error = null, environment = ?,"
                " pace_since = null, pace_since_done = null"
                f" where id = ? and status in ({marks})",
                [owner.pid, owner.started, time.time(), json.dumps(environment), run_id, *allowed],
            ).rowcount
        if not claimed:
            raise ReasonlabError(_refusal(self.get_run(run_id), resume))
        return self.get_run(run_id)

    def change_processes(self, run_id: int, processes: int) -> None:
        """Let a stopped run resume on another number of ranks: its training plan and its
        checkpoint do not depend on it, so only the stored setting changes."""
        run = self.get_run(run_id)
        if run.status not in RESUMABLE_STATUSES:
            raise ReasonlabError(
                f"--processes: run {run_id} is {run.status}; only a cancelled or failed run can be resumed on other processes."
            )
        self.update_run(run_id, spec=run.spec.replace(processes=processes).to_json())

    def mark_finished(self, run_id: int, status: str, error: str | None = None) -> None:
        assert status in FINAL_STATUSES, status
        self.update_run(run_id, status=status, error=error, finished_at=time.time())

    def cancel_queued(self, run_id: int) -> bool:
        """Cancel a run that no process has claimed yet; False when it is no longer queued."""
        with self.transaction():
            return self.db.execute(
                "update runs set status = 'cancelled', finished_at = ?, error = ? where id = ? and status = 'queued'",
                [time.time(), f"Cancelled before it started; `python -m engine resume {run_id}` starts it.", run_id],
            ).rowcount == 1

    # -- the queue ------------------------------------------------------------------------

    def queued_runs(self) -> list[QueuedRun]:
        """Queued runs in the order they start."""
        rows = self.db.execute(
            f"select id, name, kind, created_at, pid, pid_started from runs where status = 'queued' order by {QUEUE_ORDER}"
        ).fetchall()
        return [
            QueuedRun(
                position, run_id, run_label(name or "", kind, run_id), kind, created,
                Owner(pid, started) if pid is not None and started is not None else None,
            )
            for position, (run_id, name, kind, created, pid, started) in enumerate(rows, start=1)
        ]

    def running_runs(self) -> list[RunningRun]:
        rows = self.db.execute(
            "select id, name, kind, started_at, slot, parent_id from runs where status = 'running' order by started_at, id"
        ).fetchall()
        return [RunningRun(i, run_label(name or "", kind, i), kind, started, slot, parent) for i, name, kind, started, slot, parent in rows]

    def register_waiter(self, run_id: int, owner: Owner) -> None:
        """Record `owner` as the process that waits for a slot to run this queued run, unless
        another live process already does (a one-line refusal). The waiter is stored as the
        run's owner: `claim_run` then lets only that process take the run, while liveness checks
        (`reap_dead_runs`) look at running runs only, so a waiting run is never marked failed.
        The process that launched this one may have recorded itself (or this process) first, to
        hold the run's place from the moment of launch; this process then takes over."""
        run = self.get_run(run_id)
        if run.status != "queued":
            raise ReasonlabError(_refusal(run, resume=False))
        rival = run.owner
        if rival is not None and rival != owner and rival.is_alive() and not rival.is_ancestor_of(owner):
            if owner.is_ancestor_of(rival):
                return  # the process this launcher started holds the place already
            raise ReasonlabError(
                f"Run {run_id} already waits for a slot in process {rival.pid}; `python -m engine queue` shows the queue."
            )
        with self.transaction():
            taken = self.db.execute(
                "update runs set pid = ?, pid_started = ? where id = ? and status = 'queued' and pid is ? and pid_started is ?",
                [owner.pid, owner.started, run_id, run.pid, run.pid_started],
            ).rowcount
        if not taken:
            current = self.get_run(run_id)
            raise ReasonlabError(
                _refusal(current, resume=False) if current.status != "queued"
                else f"Run {run_id} was just taken by another waiting process; `python -m engine queue` shows it."
            )

    def move_in_queue(self, run_id: int, position: int) -> int:
        """Move a queued run to `position` (1: next to start; past the end: last) and return
        the position it got. The queued runs swap their existing places, so every place stays
        before that of any run created later."""
        if position < 1:
            raise ReasonlabError(f"Queue positions start at 1 (got {position}); `--to 1` makes run {run_id} the next to start.")
        with self.transaction():
            rows = self.db.execute(
                f"select id, coalesce(queue_position, id) from runs where status = 'queued' order by {QUEUE_ORDER}"
            ).fetchall()
            order = [i for i, _ in rows]
            if run_id not in order:
                run = self.get_run(run_id)
                raise ReasonlabError(f"Run {run_id} is {run.status}; only queued runs have a place in the queue.")
            order.remove(run_id)
            position = min(position, len(order) + 1)
            order.insert(position - 1, run_id)
            places = sorted(place for _, place in rows)
            self.db.conn.executemany(
                "update runs set queue_position = ? where id = ?", list(zip(places, order))
            )
        return position

    def record_slot(self, run_id: int, slot: int | None) -> None:
        self.update_run(run_id, slot=slot)

    def setting(self, name: str) -> str | None:
        row = self.db.execute("select value from settings where name = ?", [name]).fetchone()
        return None if row is None else row[0]

    def set_setting(self, name: str, value: str) -> None:
        with self.transaction():
            self.db["settings"].upsert({"name": name, "value": value}, pk="name")

    def set_progress(self, run_id: int, done: int, total: int | None) -> None:
        with self.transaction():
            self._write_progress(run_id, done, total)

    def _write_progress(self, run_id: int, done: int, total: int | None) -> None:
        """The run's progress; the attempt's first report is also where its pace is measured from."""
        self.db.execute(
            "update runs set progress_done = ?, progress_total = ?,"
            " pace_since = coalesce(pace_since, ?), pace_since_done = coalesce(pace_since_done, ?) where id = ?",
            [done, total, time.time(), done, run_id],
        )

    def delete_run(self, run_id: int, *, remove_files: bool = True) -> str:
        """Delete a run's rows and, with `remove_files`, its folder (returned). Works on a row
        that no longer reads as a run. A running run with a live
        process is refused (cancel it first), and so is a folder outside this database's runs
        folder: nothing outside it is ever deleted."""
        row = self.db.execute("select status, pid, pid_started, run_dir from runs where id = ?", [run_id]).fetchone()
        if row is None:
            raise ReasonlabError(f"No run with id {run_id} in {self.path}; `python -m engine runs` lists them.")
        status, pid, started, run_dir = row
        if status == "running" and pid is not None and started is not None and Owner(pid, started).is_alive():
            raise ReasonlabError(f"Run {run_id} is running; cancel it first (`python -m engine cancel {run_id}`).")
        folder = checked_run_folder(self.runs_root, run_id, run_dir) if remove_files else None
        with self.transaction():
            for table in ("metrics", "samples", "artifacts"):
                self.db.execute(f"delete from {table} where run_id = ?", [run_id])
            self.db.execute("update runs set parent_id = null where parent_id = ?", [run_id])
            self.db.execute("delete from runs where id = ?", [run_id])
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return run_dir or ""

    def reap_dead_runs(self) -> list[int]:
        """Mark running runs whose process is gone (killed, crashed, machine restarted) as
        failed. A run whose recorded owner is not a live process with the same start time is
        dead, whatever now holds its pid."""
        reaped: list[int] = []
        if self.db.execute("pragma query_only").fetchone()[0] or not os.access(self.path, os.W_OK):
            return reaped  # a read-only database is listed as stored
        rows = self.db.execute("select id, pid, pid_started from runs where status = 'running'").fetchall()
        for run_id, pid, started in rows:
            if pid is not None and started is not None and Owner(pid, started).is_alive():
                continue
            with self.transaction():
                changed = self.db.execute(
                    "update runs set status = 'failed', error = ?, finished_at = ?"
                    " where id = ? and status = 'running' and pid is ? and pid_started is ?",
                    [DEAD_OWNER, time.time(), run_id, pid, started],
                ).rowcount
            if changed:
                reaped.append(run_id)
        return reaped

    # -- metrics --------------------------------------------------------------------------

    def log_metrics(
        self,
        run_id: int,
        points: list[tuple[int, str, float, float]],
        progress: tuple[int, int | None] | None = None,
    ) -> None:
        """Write (step, name, value, time) points, the run's summary and progress in one
        transaction. A point for a (metric, step) already stored replaces it, so a resumed run
        that replays steps since its last checkpoint never duplicates one."""
        clean = [(run_id, s, n, float(v), t) for s, n, v, t in points if math.isfinite(float(v))]
        latest = {n: float(v) for _, n, v, _ in points if math.isfinite(float(v))}
        with self.transaction():
            if progress is not None:
                self._write_progress(run_id, *progress)
            self.db.conn.executemany(
                "insert into metrics (run_id, step, name, value, time) values (?, ?, ?, ?, ?)"
                " on conflict (run_id, name, step) do update set value = excluded.value, time = excluded.time",
                clean,
            )
            self.db.execute(
                "update runs set summary = json_patch(coalesce(summary, '{}'), ?) where id = ?",
                [json.dumps(latest), run_id],
            )

    def metric_names(self, run_id: int) -> list[str]:
        rows = self.db.query("select distinct name from metrics where run_id = ? order by name", [run_id])
        return [r["name"] for r in rows]

    def metric_series(self, run_id: int, name: str, after_step: int = -1) -> list[tuple[int, float]]:
        """(step, value) of one metric after `after_step`, by step."""
        return [(s, v) for s, v, _ in self.metric_series_timed(run_id, name, after_step)]

    # -- timed series, for charts against wall time --------------------------------------

    def metric_series_timed(self, run_id: int, name: str, after_step: int = -1) -> list[tuple[int, float, float]]:
        """(step, value, time) of one metric after `after_step`, by step: charts can put the
        points against wall time as well as against steps."""
        return self.db.execute(
            "select step, value, time from metrics where run_id = ? and name = ? and step > ? order by step",
            [run_id, name, after_step],
        ).fetchall()

    def metric_points(self, run_id: int) -> Iterator[tuple[int, str, float, float]]:
        """Every (step, name, value, time) point of a run, by name then step, read lazily."""
        return iter(self.db.execute(
            "select step, name, value, time from metrics where run_id = ? order by name, step", [run_id]
        ))

    # -- samples --------------------------------------------------------------------------

    def add_samples(self, run_id: int, rows: list[dict[str, Any]], split: str = "valid") -> None:
        """Insert sample rows (keys: step, idx, sample, question, target, output, answer, correct)
        of the questions of `split` (the question set they score: 'valid', 'shifted', or an eval's
        or a rollout's dataset). A row already stored (same run, split, step, idx, sample) is
        skipped, so a resumed run never duplicates one."""
        values = [
            (
                run_id, split, r.get("step", 0), r["idx"], r.get("sample", 0), r["question"], r["target"],
                r["output"], _finite_or_none(r["answer"]), int(bool(r["correct"])),
            )
            for r in rows
        ]
        with self.transaction():
            self.db.conn.executemany(
                "insert or ignore into samples (run_id, split, step, idx, sample, question, target, output, answer, correct)"
                " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )

    def samples(
        self, run_id: int, *, split: str | None = None, step: int | None = None,
        correct: bool | None = None, limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """A run's samples, of every split unless one is named."""
        where, args = ["run_id = ?"], [run_id]
        for column, value in (("split", split), ("step", step)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if correct is not None:
            where.append("correct = ?")
            args.append(int(correct))
        sql = f"select * from samples where {' and '.join(where)} order by split, step, idx, sample"
        if limit:
            sql += f" limit {int(limit)}"
        return list(self.db.query(sql, args))

    def samples_after(
        self, run_id: int, split: str, step: int, after_id: int, correct: bool | None, limit: int
    ) -> list[dict[str, Any]]:
        """Sample rows of one split at one step added after row id `after_id` (for incremental polling)."""
        sql = "select * from samples where run_id = ? and split = ? and step = ? and id > ?"
        args: list[Any] = [run_id, split, step, after_id]
        if correct is not None:
            sql += " and correct = ?"
            args.append(int(correct))
        sql += " order by id limit ?"
        args.append(limit)
        return list(self.db.query(sql, args))

    def sample_counts(self, run_id: int, split: str, step: int) -> tuple[int, int]:
        """(samples, correct samples) of one split at one step."""
        row = self.db.execute(
            "select count(*), coalesce(sum(correct), 0) from samples where run_id = ? and split = ? and step = ?",
            [run_id, split, step],
        ).fetchone()
        return row[0], row[1]

    def done_indices(self, run_id: int, step: int = 0) -> set[int]:
        """The question indices with stored samples at `step` (an eval or a rollout: one split)."""
        rows = self.db.execute(
            "select distinct idx from samples where run_id = ? and step = ?", [run_id, step]
        ).fetchall()
        return {r[0] for r in rows}

    def sample_splits(self, run_id: int) -> list[str]:
        """The splits a run has samples of, in the order it first scored them (valid first for a
        training run)."""
        rows = self.db.execute(
            "select split from samples where run_id = ? group by split order by min(id)", [run_id]
        ).fetchall()
        return [r[0] for r in rows]

    def final_samples(self, run_id: int) -> list[dict[str, Any]]:
        """Each split's samples at its last scored step: a run's final evaluation, splits in the
        order the run first scored them."""
        return list(self.db.query(
            "select s.* from samples s join (select split, max(step) as last, min(id) as first"
            " from samples where run_id = ? group by split) f on s.split = f.split and s.step = f.last"
            " where s.run_id = ? order by f.first, s.idx, s.sample",
            [run_id, run_id],
        ))

    # -- artifacts ------------------------------------------------------------------------

    def add_artifact(self, run_id: int, kind: str, path: str | os.PathLike) -> None:
        """Record a file or folder the run made; it must lie inside the run's folder."""
        folder = self.run_folder(self.get_run(run_id))
        path = Path(path).resolve()
        if not path.is_relative_to(folder):
            raise ReasonlabError(f"Run {run_id}'s {kind} artifact {path} is outside its folder {folder}.")
        size = _size_of(path)
        with self.transaction():
            self.db.execute("delete from artifacts where run_id = ? and kind = ?", [run_id, kind])
            self.db["artifacts"].insert(
                {"run_id": run_id, "kind": kind, "path": str(path), "bytes": size, "created_at": time.time()}
            )

    def artifacts(self, run_id: int) -> list[dict[str, Any]]:
        return list(self.db.query("select * from artifacts where run_id = ? order by id", [run_id]))

    def artifact(self, run_id: int, kind: str) -> dict[str, Any] | None:
        rows = list(self.db.query("select * from artifacts where run_id = ? and kind = ?", [run_id, kind]))
        return rows[0] if rows else None

    # -- duration estimates -----------------------------------------------------------------

    def duration_estimate(self, spec: RunSpec) -> DurationEstimate | None:
        """How long a run of `spec` may take: the median start-to-finish time of the newest
        completed runs of the same size (`run_size`), or None when there are none. Only the
        newest ESTIMATE_SCAN completed runs of the kind and model are looked at."""
        rows = self.db.execute(
            "select spec, finished_at - started_at from runs where status = 'completed' and kind = ? and model = ?"
            " and started_at is not null and finished_at is not null order by finished_at desc limit ?",
            [spec.kind, spec.model, ESTIMATE_SCAN],
        ).fetchall()
        size = run_size(spec)
        durations = []
        for text, seconds in rows:
            try:
                earlier = RunSpec.from_dict(json.loads(text) | {"kind": spec.kind})
            except (ValueError, TypeError):
                continue  # an unreadable record; `engine runs` reports it
            if run_size(earlier) == size:
                durations.append(seconds)
        durations = durations[:ESTIMATE_RUNS]
        return DurationEstimate(statistics.median(durations), len(durations)) if durations else None
    # -- chosen columns and groups of runs ----------------------------------------------------

    def group_rows(self, run_filter: RunFilter, grouping: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """One row (group key, run id, one value per column: a fixed column but the duration, or
        a chosen one) for each run matching the filter and
        each group it is in (engine.core.grouping folds them): by `tag`, a run is in one group
        per tag; by `sweep`, in the group of its `sweep:<id>` tag; by `pipeline`, a pipeline run
        and its stages share `pipeline:<id>`; by `setting:<name>`, runs group by its value."""
        where, args = _filter_sql(run_filter)
        values = "".join(f", {sort_expression(key)} as c{i}" for i, key in enumerate(columns))
        chosen = "".join(f", c{i}" for i in range(len(columns)))
        tags = "case when json_valid(tags) then tags else '[]' end"
        if grouping == TAG:
            sql = (
                f"select grouped.value, run_id{chosen} from (select id as run_id, {tags} as run_tags{values}"
                f" from runs{where}) left join json_each(run_tags) as grouped"
            )
        else:
            if grouping in (SWEEP, PIPELINE):
                prefix = TAG_PREFIXES[grouping]
                key = (
                    f"(select min(value) from json_each({tags})"
                    f" where substr(value, 1, {len(prefix)}) = {_sql_text(prefix)})"
                )
                if grouping == PIPELINE:
                    key = f"case when kind = 'pipeline' then {_sql_text(prefix)} || id else {key} end"
            else:
                key = column_expression(grouping)
            sql = f"select {key}, id{values} from runs{where}"
        return self.db.execute(sql, args).fetchall()

    def column_values(self, run_ids: Sequence[int], columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """(id, label, one value per column) of each of these runs that exists, by id."""
        values = "".join(f", {column_expression(key)}" for key in columns)
        rows = self.db.execute(
            f"select id, name, kind{values} from runs where id in (select value from json_each(?)) order by id",
            [json.dumps(list(run_ids))],
        ).fetchall()
        return [(i, run_label(name or "", kind, i), *rest) for i, name, kind, *rest in rows]

    def logged_metric_names(self) -> list[str]:
        """Every metric name in some run's summary, sorted."""
        rows = self.db.execute(
            "select distinct key from runs,"
            " json_each(case when json_valid(summary) then summary else '{}' end) order by key"
        ).fetchall()
        return [r[0] for r in rows]


    # -- lineage --------------------------------------------------------------------------

    def lineage(self, run_id: int) -> Lineage:
        """The runs this one was built from and the runs built from it, each with how."""
        run = self._link_row(run_id)
        parents = self._related({pid: run.links_to(pid) for pid in run.parent_ids()})
        named = " or ".join(f"trim(json_extract({VALID_SPEC}, '$.{name}')) = ?" for name in PARENT_SETTINGS)
        rows = self.db.execute(
            "select id, kind, spec, parent_id, tags from runs where id != ? and (parent_id = ?"
            f" or exists (select 1 from json_each({VALID_TAGS}) where value = ?) or {named})",
            [run_id, run_id, f"{PIPELINE_TAG}{run_id}", *[str(run_id)] * len(PARENT_SETTINGS)],
        ).fetchall()
        candidates = (_LinkRow.read(row) for row in rows)
        children = self._related({child.id: child.links_to(run_id) for child in candidates})
        return Lineage(parents, children)

    def family(self, run_id: int) -> Family:
        """The pipeline or sweep the run belongs to, else its lineage."""
        run = self._link_row(run_id)
        tag = run.family_tag()
        if tag is None:
            return Family("lineage", f"lineage:{run_id}", self._family_members(self._lineage_ids(run_id)))
        kind = "pipeline" if tag.startswith(PIPELINE_TAG) else "sweep"
        head = [i for i in [run_id_or_none(tag.removeprefix(PIPELINE_TAG))] if i is not None and kind == "pipeline"]
        rows = self.db.execute(
            f"select {FAMILY_COLUMNS} from runs where id in ({', '.join('?' * len(head)) or 'null'})"
            f" or exists (select 1 from json_each({VALID_TAGS}) where value = ?) order by id",
            [*head, tag],
        ).fetchall()
        return Family(kind, tag, tuple(_family_member(row) for row in rows))

    def _link_row(self, run_id: int) -> _LinkRow:
        row = self.db.execute("select id, kind, spec, parent_id, tags from runs where id = ?", [run_id]).fetchone()
        if row is None:
            raise ReasonlabError(f"No run with id {run_id} in {self.path}; `python -m engine runs` lists them.")
        return _LinkRow.read(row)

    def _related(self, links: dict[int, tuple[str, ...]]) -> tuple[RelatedRun, ...]:
        """The linked runs that still exist, in id order (a deleted parent is left out)."""
        ids = [run_id for run_id, via in links.items() if via]
        if not ids:
            return ()
        rows = self.db.execute(
            f"select id, name, kind, status from runs where id in ({', '.join('?' * len(ids))}) order by id", ids
        ).fetchall()
        return tuple(RelatedRun(i, name or "", kind, status, links[i]) for i, name, kind, status in rows)

    def _lineage_ids(self, run_id: int) -> list[int]:
        """The run, its ancestors (walking up) and its descendants (walking down)."""
        found = {run_id}
        for direction in ("parents", "children"):
            todo = [run_id]
            while todo and len(found) < MAX_LINEAGE_RUNS:
                for relative in getattr(self.lineage(todo.pop()), direction):
                    if relative.id not in found:
                        found.add(relative.id)
                        todo.append(relative.id)
        return sorted(found)

    def _family_members(self, ids: list[int]) -> tuple[FamilyMember, ...]:
        rows = self.db.execute(
            f"select {FAMILY_COLUMNS} from runs where id in ({', '.join('?' * len(ids))}) order by id", ids
        ).fetchall()
        return tuple(_family_member(row) for row in rows)
    # -- samples by step and by question (the samples tab's step picker, compare's side by side)

    def sample_steps(self, run_id: int, split: str) -> list[int]:
        """The steps that have samples of `split`, in order (a training run scores every few steps)."""
        rows = self.db.execute(
            "select distinct step from samples where run_id = ? and split = ? order by step", [run_id, split]
        ).fetchall()
        return [r[0] for r in rows]

    def question_samples(self, run_id: int, split: str, question: str) -> list[dict[str, Any]]:
        """Every sample of one question of `split` in the run's final evaluation (several when
        the run samples it more than once)."""
        return list(self.db.query(
            "select * from samples s where run_id = ? and split = ? and question = ? and step ="
            " (select max(step) from samples where run_id = s.run_id and split = s.split)"
            " order by idx, sample",
            [run_id, split, question],
        ))


@contextmanager
def open_store(path: Path) -> Iterator[RunStore]:
    """A store for the calling thread, closed on exit (SQLite connections are per-thread)."""
    store = RunStore(path)
    try:
        yield store
    finally:
        store.close()


def _refusal(run: Run, resume: bool) -> str:
    if run.status == "running":
        return f"Run {run.id} is already running (pid {run.pid}); `python -m engine cancel {run.id}` stops it."
    if resume:
        return f"Run {run.id} is {run.status}; only cancelled or failed runs can be resumed."
    return f"Run {run.id} is already {run.status}; use `python -m engine resume {run.id}` to continue it."


def _filter_sql(f: RunFilter) -> tuple[str, list[Any]]:
    """A ` where …` clause (empty when nothing filters) and its arguments for querying `runs`."""
    clauses: list[str] = []
    args: list[Any] = []
    if f.kind:
        clauses.append("kind = ?")
        args.append(f.kind)
    if f.status:
        clauses.append("status = ?")
        args.append(f.status)
    if f.tag:
        clauses.append("exists (select 1 from json_each(runs.tags) where value = ?)")
        args.append(f.tag)
    if f.ids is not None:
        clauses.append("id in (select value from json_each(?))")
        args.append(json.dumps(list(f.ids)))
    search = (f.search or "").strip()
    if search:
        like = f"%{search}%"
        clauses.append(
            "(name like ? or kind like ? or model like ? or notes like ? or tags like ? or cast(id as text) = ?)"
        )
        args += [like, like, like, like, like, search.lstrip("#")]
    return (" where " + " and ".join(clauses) if clauses else ""), args


def _readable_tags(text: str | None) -> tuple[str, ...]:
    """A row's tags for a list; tags that no longer read show as one marker tag."""
    try:
        tags = json.loads(text or "[]")
    except ValueError:
        return ("(unreadable tags)",)
    return tuple(str(t) for t in tags) if isinstance(tags, list) else ("(unreadable tags)",)


def _family_member(row: tuple) -> FamilyMember:
    run_id, name, kind, status, started, finished, summary = row
    try:
        values = json.loads(summary or "{}")
    except ValueError:
        values = {}
    return FamilyMember(run_id, name or "", kind, status, started, finished, values if isinstance(values, dict) else {})


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


# -- duration estimates -----------------------------------------------------------------------

SIZE_SETTINGS = (
    "model", "device", "processes", "machines", "dataset", "data", "limit", "mode", "max_new_tokens",
    "num_samples", "epochs", "steps", "questions_per_step", "group_size", "mu", "rounds", "rollout_limit",
    "reference_dataset", "reference_limit", "rollout_dataset", "grpo_steps",
)
"""The settings that set how much work a run does, and on what: two runs of one kind that agree
on these take about as long. Rates, seeds and schedules change the result, not the work."""
ESTIMATE_RUNS = 10
"""An estimate is the median of at most this many of the newest runs of the same size."""
ESTIMATE_SCAN = 500
"""Completed runs of the same kind and model read to find them."""


@dataclass(frozen=True)
class DurationEstimate:
    seconds: float
    runs: int
    """How many earlier runs the median is taken over."""


def run_size(spec: RunSpec) -> tuple[Any, ...]:
    """The kind and the effective SIZE_SETTINGS of a spec: runs with equal sizes are compared."""
    return (spec.kind, *(getattr(spec, name) for name in SIZE_SETTINGS))
# -- SQL of the chosen columns ----------------------------------------------------------------


def sort_expression(column: str) -> str:
    """How runs lists sort by a fixed column or a chosen one."""
    return SORT_EXPRESSIONS.get(column) or column_expression(column)


def column_expression(key: str) -> str:
    """The SQL value of a chosen column (a key of engine.core.columns); a key that names no
    known setting or metric is refused."""
    if not is_valid_key(key):
        raise ReasonlabError(f"Unknown column {key!r}; choose columns from the list the app offers.")
    name = column_for(key).name
    if key.startswith(SETTING):
        return _setting_expression(name)
    path = _sql_text('$."' + name + '"')
    return f"(case when json_valid(summary) then json_extract(summary, {path}) end)"


def _setting_expression(name: str) -> str:
    """A setting's effective value: the one the spec was given, else its kind's default (a
    default computed from other settings comes from `setting_default`); null for a kind the
    setting does not apply to."""
    f = next(f for f in dataclasses.fields(RunSpec) if f.name == name)
    defaults = []
    for kind in f.metadata["kinds"]:
        rule = default_rule(f, kind)
        if callable(rule):
            default = f"setting_default(kind, spec, {_sql_text(name)})"
        else:
            default = _sql_literal(setting_text(rule) if rule is None else rule)
        defaults.append(f"when {_sql_text(kind)} then {default}")
    return (
        f"(case when json_valid(spec) then coalesce(json_extract(spec, {_sql_text('$.' + name)}),"
        f" case kind {' '.join(defaults)} end) end)"
    )


class _GivenOrDefault:
    """A stored spec's settings as a default rule reads them: the value given, else the kind's
    default. Cheaper than parsing the spec, which a sort of 10,000 runs would do 10,000 times."""

    def __init__(self, kind: str, given: dict[str, Any]) -> None:
        self._kind, self._given = kind, given

    def __getattr__(self, name: str) -> Any:
        return self._given[name] if name in self._given else RunSpec.default_for(self._kind, name)


def _setting_default(kind: str, spec: str, name: str) -> Any:
    """SQL function: the default of a setting that follows other settings (lora_alpha follows
    lora_rank), for a stored spec; null when the spec does not read or gives a value of the
    wrong type, so the list still shows."""
    try:
        given = json.loads(spec)
        f = next(f for f in dataclasses.fields(RunSpec) if f.name == name)
        value = default_rule(f, kind)(_GivenOrDefault(kind, given))
    except (ValueError, TypeError, AttributeError, StopIteration):
        return None
    return value if type(value).__name__ == f.type else None


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_literal(value: Any) -> str:
    return _sql_text(value) if isinstance(value, str) else repr(value)
