"""The store's schema, as sqlite-utils migrations applied in order when a database opens.

Each migration runs in one transaction with its record, so a failure leaves it pending. The
run-folder migration also moves files; it is written to converge if it is ever run again.
"""

from __future__ import annotations

import json
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from engine.core.folders import LEGACY_RUNS_FOLDER, runs_root

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




@migrations()
def m003_run_folders_per_database(db: sqlite_utils.Database) -> None:
    """Each database gets its own runs folder (`<db file>.runs/<id>`); before, every database
    in a folder shared `runs/<id>`, so two databases' run 1 mixed their files.

    A run's old folder moves along only when its log proves it belongs to this database (its
    first line names this run's id and exact spec); any other old folder stays where it is,
    untouched, and the run gets a new, empty one."""
    db_file = Path(db.execute("pragma database_list").fetchone()[2])
    root = runs_root(db_file)
    legacy = db_file.resolve().parent / LEGACY_RUNS_FOLDER
    for run_id, spec, old_dir in db.execute("select id, spec, run_dir from runs").fetchall():
        new_dir = root / str(run_id)
        old = Path(old_dir) if old_dir else None
        if old is not None and old.resolve() != new_dir and not new_dir.exists():
            if old.resolve() == legacy / str(run_id) and _log_proves_owner(old, run_id, spec):
                new_dir.parent.mkdir(parents=True, exist_ok=True)
                old.rename(new_dir)
        if old is not None:
            db.execute(
                "update artifacts set path = ? || substr(path, ?) where run_id = ? and substr(path, 1, ?) = ?",
                [str(new_dir), len(str(old)) + 1, run_id, len(str(old)), str(old)],
            )
        db.execute("update runs set run_dir = ? where id = ?", [str(new_dir), run_id])


def _log_proves_owner(folder: Path, run_id: int, spec: str) -> bool:
    """Whether the run log in `folder` starts with this run's id and spec, as the engine logs them."""
    try:
        with open(folder / "log.txt", encoding="utf-8", errors="replace") as log:
            for line in log:
                if f" run {run_id} (" in line and ("starting" in line or "resuming" in line):
                    logged = line.split(") ", 1)[1].strip()
                    return json.loads(logged) == json.loads(spec)
    except (OSError, IndexError, ValueError):
        return False
    return False


@migrations()
def m004_process_start_time(db: sqlite_utils.Database) -> None:
    """A run's owner is its pid and the process's start time: a pid alone may be reused."""
    db["runs"].add_column("pid_started", float)


@migrations()
def m005_unique_metric_points(db: sqlite_utils.Database) -> None:
    """One value per (run, metric, step): a resumed run that replays a step overwrites it.
    Older databases may hold repeats; the last one written is kept."""
    db.execute(
        "delete from metrics where rowid not in"
        " (select max(rowid) from metrics group by run_id, name, step)"
    )
    db.execute("drop index if exists idx_metrics_run_id_name_step")
    db["metrics"].create_index(["run_id", "name", "step"], unique=True, index_name="metrics_point")


@migrations()
def m006_queue(db: sqlite_utils.Database) -> None:
    """The run queue: a run's place in it (`queue_position`; unset means its id, so runs queue
    in creation order and a move only swaps existing places), the slot its process held, and
    database-wide settings such as the number of slots."""
    db["runs"].add_column("queue_position", int)
    db["runs"].add_column("slot", int)
    db["settings"].create({"name": str, "value": str}, pk="name")


@migrations()
def m007_sample_splits(db: sqlite_utils.Database) -> None:
    """Each sample names the question set it scored (`split`), so a training run keeps its
    shifted samples beside valid's at the same step, and two runs can be compared question by
    question on either split. Before, a training run stored valid's samples only; an eval or a
    rollout stored its own dataset's (its spec's `dataset`, omitted there when it was the
    kind's default of the time: valid for eval, train for rollout)."""
    db["samples"].add_column("split", str, not_null_default="valid")
    db.execute(
        "update samples set split = (select coalesce(json_extract(runs.spec, '$.dataset'),"
        " case runs.kind when 'eval' then 'valid' else 'train' end)"
        " from runs where runs.id = samples.run_id and runs.kind in ('eval', 'rollout'))"
        " where run_id in (select id from runs where kind in ('eval', 'rollout'))"
    )
    db.execute("drop index if exists idx_samples_run_id_step_idx_sample")
    db["samples"].create_index(["run_id", "split", "step", "idx", "sample"], unique=True, index_name="sample_key")


@migrations()
def m008_attempt_pace(db: sqlite_utils.Database) -> None:
    """Where the running attempt's pace is measured from: the time and progress of its first
    progress report since it was claimed. A resumed run keeps its first start time (its
    duration spans every attempt and the hours it sat stopped), so an estimate of the time left
    from that start would count the stop as work."""
    db["runs"].add_column("pace_since", float)
    db["runs"].add_column("pace_since_done", int)
