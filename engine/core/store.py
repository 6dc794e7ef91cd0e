"""The run store: runs, metrics, samples and artifacts in one SQLite file.

WAL mode and short transactions (one per batch of writes) keep a reader such as the TUI from
ever being blocked by a run that is writing. This module imports no torch, so the TUI can use it.
Each thread should open its own `RunStore` (SQLite connections are per-thread).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from engine.core.errors import ReasonlabError
from engine.core.spec import RunSpec

DB_ENV = "REASONLAB_DB"
DEFAULT_DB = "runs.db"
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("completed", "failed", "cancelled")

migrations = Migrations("reasonlab")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db["runs"].create(
        {
            "id": int, "kind": str, "name": str, "status": str, "spec": str, "model": str,
            "created_at": float, "started_at": float, "finished_at": float, "pid": int,
            "error": str, "parent_id": int, "tags": str, "notes": str, "seed": int,
            "environment": str, "run_dir": str,
        },
        pk="id",
        not_null={"kind", "status", "spec", "created_at"},
        defaults={"name": "", "tags": "[]", "notes": ""},
    )
    db["runs"].create_index(["status"])
    db["runs"].create_index(["kind"])
    db["metrics"].create(
        {"run_id": int, "step": int, "name": str, "value": float, "time": float},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["metrics"].create_index(["run_id", "name", "step"])
    db["samples"].create(
        {
            "id": int, "run_id": int, "step": int, "idx": int, "sample": int,
            "question": str, "target": float, "output": str, "answer": float, "correct": int,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["samples"].create_index(["run_id", "step", "idx", "sample"], unique=True)
    db["artifacts"].create(
        {"id": int, "run_id": int, "kind": str, "path": str, "bytes": int, "created_at": float},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["artifacts"].create_index(["run_id", "kind"])


@migrations()
def m002_progress_and_summary(db: sqlite_utils.Database) -> None:
    """Live progress and the latest value of each metric, so run lists never scan `metrics`."""
    db["runs"].add_column("progress_done", int)
    db["runs"].add_column("progress_total", int)
    db["runs"].add_column("summary", str, not_null_default="{}")


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
    error: str | None
    parent_id: int | None
    tags: tuple[str, ...]
    notes: str
    environment: dict[str, Any]
    run_dir: str
    progress_done: int | None
    progress_total: int | None
    summary: dict[str, float]

    @property
    def label(self) -> str:
        return self.name or f"{self.kind}-{self.id}"

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Run":
        return cls(
            id=row["id"], kind=row["kind"], name=row["name"] or "", status=row["status"],
            spec=RunSpec.from_dict(json.loads(row["spec"])), created_at=row["created_at"],
            started_at=row["started_at"], finished_at=row["finished_at"], pid=row["pid"],
            error=row["error"], parent_id=row["parent_id"],
            tags=tuple(json.loads(row["tags"] or "[]")), notes=row["notes"] or "",
            environment=json.loads(row["environment"] or "{}"), run_dir=row["run_dir"] or "",
            progress_done=row["progress_done"], progress_total=row["progress_total"],
            summary=json.loads(row["summary"] or "{}"),
        )


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
            self._prepare()
        except sqlite_utils.db.sqlite3.DatabaseError as exc:
            raise ReasonlabError(
                f"Cannot open run database {self.path}: {exc}; pass another --db path."
            ) from None

    def _prepare(self, attempts: int = 50) -> None:
        """Switch to WAL and apply pending migrations, only when needed: an up-to-date database
        opens with reads alone. When several connections create the same new database at once
        (the app's workers, an engine process), SQLite refuses the journal switch without
        waiting, and a migration can find its table or column made by a rival: all are retried
        until the winner's work is visible. Only one connection can add a migration's first
        table or column, so a loser fails before changing anything."""
        for attempt in range(attempts):
            try:
                if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self.db.enable_wal()
                if migrations.pending(self.db):
                    migrations.apply(self.db)
                return
            except sqlite_utils.db.sqlite3.OperationalError as exc:
                rival = any(text in str(exc) for text in ("locked", "already exists", "duplicate column name"))
                if not rival or attempt == attempts - 1:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.conn:
            yield

    @property
    def runs_root(self) -> Path:
        """Run directories live beside the database: `<db dir>/runs/<id>/`."""
        return self.path.resolve().parent / "runs"

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

    def list_runs(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        search: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        where, args = run_filter_sql(kind=kind, status=status, tag=tag, search=search)
        sql = f"select * from runs{where} order by id desc"
        if limit:
            sql += f" limit {int(limit)}"
        return [Run.from_row(r) for r in self.db.query(sql, args)]

    def all_tags(self) -> list[str]:
        rows = self.db.query("select distinct value from runs, json_each(runs.tags) order by value")
        return [r["value"] for r in rows]

    def update_run(self, run_id: int, **fields: Any) -> None:
        for key in ("tags", "environment", "summary"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(sorted(fields[key]) if key == "tags" else fields[key])
        with self.transaction():
            self.db["runs"].update(run_id, fields)

    def mark_running(self, run_id: int, pid: int, environment: dict[str, Any]) -> None:
        """A resumed run keeps its first start time: its duration spans every attempt."""
        started_at = self.get_run(run_id).started_at or time.time()
        self.update_run(
            run_id, status="running", pid=pid, started_at=started_at, finished_at=None,
            error=None, environment=environment,
        )

    def mark_finished(self, run_id: int, status: str, error: str | None = None) -> None:
        assert status in FINAL_STATUSES, status
        self.update_run(run_id, status=status, error=error, finished_at=time.time())

    def set_progress(self, run_id: int, done: int, total: int | None) -> None:
        self.update_run(run_id, progress_done=done, progress_total=total)

    def delete_run(self, run_id: int) -> Run:
        """Delete a run and its rows; the caller removes its directory (see `Run.run_dir`)."""
        run = self.get_run(run_id)
        with self.transaction():
            for table in ("metrics", "samples", "artifacts"):
                self.db.execute(f"delete from {table} where run_id = ?", [run_id])
            self.db.execute("update runs set parent_id = null where parent_id = ?", [run_id])
            self.db.execute("delete from runs where id = ?", [run_id])
        return run

    def reap_dead_runs(self) -> list[int]:
        """Mark runs whose process is gone (killed, crashed, machine restarted) as failed."""
        reaped = []
        for row in self.db.query("select id, pid from runs where status = 'running'"):
            if row["pid"] and not _pid_alive(row["pid"]):
                self.mark_finished(row["id"], "failed", "The run's process exited without finishing; resume it or start it again.")
                reaped.append(row["id"])
        return reaped

    # -- metrics --------------------------------------------------------------------------

    def log_metrics(
        self,
        run_id: int,
        points: list[tuple[int, str, float, float]],
        progress: tuple[int, int | None] | None = None,
    ) -> None:
        """Write (step, name, value, time) points, the run's summary and progress in one transaction."""
        clean = [(run_id, s, n, float(v), t) for s, n, v, t in points if math.isfinite(float(v))]
        latest = {n: float(v) for _, n, v, _ in points if math.isfinite(float(v))}
        with self.transaction():
            if progress is not None:
                self.db.execute(
                    "update runs set progress_done = ?, progress_total = ? where id = ?", [*progress, run_id]
                )
            self.db.conn.executemany(
                "insert into metrics (run_id, step, name, value, time) values (?, ?, ?, ?, ?)", clean
            )
            self.db.execute(
                "update runs set summary = json_patch(coalesce(summary, '{}'), ?) where id = ?",
                [json.dumps(latest), run_id],
            )

    def metric_names(self, run_id: int) -> list[str]:
        rows = self.db.query("select distinct name from metrics where run_id = ? order by name", [run_id])
        return [r["name"] for r in rows]

    def metric_series(self, run_id: int, name: str, after_step: int = -1) -> list[tuple[int, float]]:
        rows = self.db.execute(
            "select step, value from metrics where run_id = ? and name = ? and step > ? order by step, rowid",
            [run_id, name, after_step],
        ).fetchall()
        return [(s, v) for s, v in rows]

    # -- samples --------------------------------------------------------------------------

    def add_samples(self, run_id: int, rows: list[dict[str, Any]]) -> None:
        """Insert sample rows (keys: step, idx, sample, question, target, output, answer, correct).
        A row that is already stored (same run, step, idx, sample) is skipped, so a resumed run
        never duplicates one."""
        values = [
            (
                run_id, r.get("step", 0), r["idx"], r.get("sample", 0), r["question"], r["target"],
                r["output"], _finite_or_none(r["answer"]), int(bool(r["correct"])),
            )
            for r in rows
        ]
        with self.transaction():
            self.db.conn.executemany(
                "insert or ignore into samples (run_id, step, idx, sample, question, target, output, answer, correct)"
                " values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )

    def samples(
        self, run_id: int, *, step: int | None = None, correct: bool | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        where, args = ["run_id = ?"], [run_id]
        if step is not None:
            where.append("step = ?")
            args.append(step)
        if correct is not None:
            where.append("correct = ?")
            args.append(int(correct))
        sql = f"select * from samples where {' and '.join(where)} order by step, idx, sample"
        if limit:
            sql += f" limit {int(limit)}"
        return list(self.db.query(sql, args))

    def done_indices(self, run_id: int, step: int = 0) -> set[int]:
        rows = self.db.execute(
            "select distinct idx from samples where run_id = ? and step = ?", [run_id, step]
        ).fetchall()
        return {r[0] for r in rows}

    def final_step(self, run_id: int) -> int | None:
        """The last step that has samples (the final evaluation of a run)."""
        row = self.db.execute("select max(step) from samples where run_id = ?", [run_id]).fetchone()
        return row[0]

    # -- artifacts ------------------------------------------------------------------------

    def add_artifact(self, run_id: int, kind: str, path: str | os.PathLike) -> None:
        path = Path(path)
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


def run_filter_sql(
    *, kind: str | None = None, status: str | None = None, tag: str | None = None, search: str | None = None
) -> tuple[str, list[Any]]:
    """A ` where …` clause (empty when nothing filters) and its arguments for querying `runs`."""
    clauses: list[str] = []
    args: list[Any] = []
    if kind:
        clauses.append("kind = ?")
        args.append(kind)
    if status:
        clauses.append("status = ?")
        args.append(status)
    if tag:
        clauses.append("exists (select 1 from json_each(runs.tags) where value = ?)")
        args.append(tag)
    search = (search or "").strip()
    if search:
        like = f"%{search}%"
        clauses.append(
            "(name like ? or kind like ? or model like ? or notes like ? or tags like ? or cast(id as text) = ?)"
        )
        args += [like, like, like, like, like, search.lstrip("#")]
    return (" where " + " and ".join(clauses) if clauses else ""), args


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
