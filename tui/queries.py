"""Database reads the screens need that `RunStore` offers too slowly or not at all.

The runs table pages through thousands of runs, so it reads only the columns it shows, lets
SQLite filter, sort and count, and never builds full `Run` objects (parsing every spec costs
about 40 µs a run). Every function takes a `RunStore` opened in the calling (worker) thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.store import RunStore, run_filter_sql

KEY_RESULT = "coalesce(json_extract(summary, '$.accuracy'), json_extract(summary, '$.correct_rate'))"
"""The 'Acc' column: final accuracy, or the share of correct samples for rollouts."""

SORT_EXPRESSIONS = {
    "id": "id",
    "name": "name collate nocase",
    "kind": "kind",
    "status": "status",
    "model": "model collate nocase",
    "accuracy": KEY_RESULT,
    "loss": "json_extract(summary, '$.loss')",
    "started": "started_at",
    "duration": "(coalesce(finished_at, ?) - started_at)",
}


@dataclass(frozen=True)
class RunFilter:
    kind: str | None = None
    status: str | None = None
    tag: str | None = None
    search: str = ""


@dataclass(frozen=True)
class RunOrder:
    column: str = "id"
    descending: bool = True


@dataclass(frozen=True)
class RunRow:
    """What the runs table shows of one run."""

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

    @property
    def label(self) -> str:
        return self.name or f"{self.kind}-{self.id}"


@dataclass(frozen=True)
class RunPage:
    rows: list[RunRow]
    total: int
    """How many runs match the filter (the page may hold fewer)."""


def run_page(store: RunStore, f: RunFilter, order: RunOrder, limit: int) -> RunPage:
    """The first `limit` runs matching `f` in `order` (runs without a value sort last)."""
    where, args = run_filter_sql(kind=f.kind, status=f.status, tag=f.tag, search=f.search)
    expr = SORT_EXPRESSIONS[order.column]
    order_args = [time.time()] if "?" in expr else []
    direction = "desc" if order.descending else "asc"
    sql = (
        "select id, name, kind, status, model, started_at, finished_at, tags,"
        f" {KEY_RESULT} as accuracy, json_extract(summary, '$.loss') as loss"
        f" from runs{where} order by {expr} is null, {expr} {direction}, id {direction}"
        " limit ?"
    )
    rows = store.db.execute(sql, [*args, *order_args, *order_args, int(limit)]).fetchall()
    total = store.db.execute(f"select count(*) from runs{where}", args).fetchone()[0]
    return RunPage(
        [
            RunRow(
                id=r[0], name=r[1] or "", kind=r[2], status=r[3], model=r[4] or "",
                started_at=r[5], finished_at=r[6], tags=tuple(json.loads(r[7] or "[]")),
                accuracy=r[8], loss=r[9],
            )
            for r in rows
        ],
        total,
    )


def parent_candidates(store: RunStore, setting: str) -> list[tuple[str, int]]:
    """Completed runs a launch form may name in `setting` ('adapter' or 'data'), newest first,
    as (label, run id)."""
    if setting == "adapter":
        sql = (
            "select id, name, kind from runs where status = 'completed' and exists"
            " (select 1 from artifacts where artifacts.run_id = runs.id and artifacts.kind = 'adapter')"
        )
    else:
        sql = "select id, name, kind from runs where status = 'completed' and kind = 'rollout'"
    rows = store.db.execute(sql + " order by id desc limit 500").fetchall()
    return [(f"#{i} {name or f'{kind}-{i}'} ({kind})", i) for i, name, kind in rows]


def samples_after(store: RunStore, run_id: int, step: int, after_id: int, correct: bool | None, limit: int) -> list[dict]:
    """Sample rows of one step added after row id `after_id` (for incremental polling)."""
    sql = "select * from samples where run_id = ? and step = ? and id > ?"
    args: list[Any] = [run_id, step, after_id]
    if correct is not None:
        sql += " and correct = ?"
        args.append(int(correct))
    sql += " order by id limit ?"
    args.append(limit)
    return list(store.db.query(sql, args))


def sample_counts(store: RunStore, run_id: int, step: int) -> tuple[int, int]:
    """(samples, correct samples) at one step."""
    row = store.db.execute(
        "select count(*), coalesce(sum(correct), 0) from samples where run_id = ? and step = ?",
        [run_id, step],
    ).fetchone()
    return row[0], row[1]


def recent_runs(store: RunStore, limit: int = 500) -> list[tuple[int, str]]:
    """(id, label) of the newest runs, for the command palette."""
    rows = store.db.execute(
        "select id, name, kind from runs order by id desc limit ?", [limit]
    ).fetchall()
    return [(i, name or f"{kind}-{i}") for i, name, kind in rows]


@contextmanager
def open_store(path: Path) -> Iterator[RunStore]:
    """A store for the calling thread, closed on exit (SQLite connections are per-thread)."""
    store = RunStore(path)
    try:
        yield store
    finally:
        store.close()
