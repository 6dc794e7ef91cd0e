"""Runs to plain files that pandas, a spreadsheet or another tool can read.

`engine export` writes, into one folder:
- `runs.csv`: one row per run: its facts, `spec.<setting>` (the effective value of each setting
  that applies to its kind; blank where one does not) and `metric.<name>` (the last value of
  each metric it logged);
- `metrics.csv`: every logged point, long format: run_id, step, name, value, time;
- `samples.csv`: every generated sample: run_id, step, idx, sample, question, target, output,
  answer, correct;
- `runs.json`: the same runs as a list of objects, with the settings given at launch, the
  effective settings, the summary and the artifacts.

Times are Unix seconds. Everything is read through the store, so the files hold what the app
shows.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import ReasonlabError
from engine.core.metrics import TITLES as METRIC_ORDER
from engine.core.spec import RunSpec
from engine.core.store import Run, RunStore

RUN_FACTS = (
    "run_id", "name", "kind", "status", "model", "parent_id", "tags", "created_at", "started_at",
    "finished_at", "duration_s", "progress_done", "progress_total", "error", "notes",
)
METRIC_COLUMNS = ("run_id", "step", "name", "value", "time")
SAMPLE_COLUMNS = ("run_id", "split", "step", "idx", "sample", "question", "target", "output", "answer", "correct")
FILES = ("runs.csv", "metrics.csv", "samples.csv", "runs.json")


@dataclass(frozen=True)
class ExportCounts:
    runs: int
    metric_points: int
    samples: int


def export_runs(store: RunStore, runs: Sequence[Run], folder: Path) -> ExportCounts:
    """Write the four files for `runs` into `folder` (created if missing; files there with
    the same names are replaced)."""
    if folder.exists() and not folder.is_dir():
        raise ReasonlabError(f"Export folder {folder} is a file; pass a folder with --out.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        header = run_header(runs)
        _write_csv(folder / "runs.csv", header, (run_row(r, header) for r in runs))
        points = _write_csv(folder / "metrics.csv", METRIC_COLUMNS, _metric_rows(store, runs))
        samples = _write_csv(folder / "samples.csv", SAMPLE_COLUMNS, _sample_rows(store, runs))
        with open(folder / "runs.json", "w", encoding="utf-8") as out:
            json.dump([run_object(store, r) for r in runs], out, indent=1)
    except OSError as exc:
        raise ReasonlabError(f"Cannot write the export to {folder}: {exc.strerror or exc}; pass another --out folder.") from None
    return ExportCounts(len(runs), points, samples)


def run_header(runs: Sequence[Run]) -> list[str]:
    """The runs.csv columns: facts, then every setting and metric any of the runs has."""
    settings = {name for r in runs for name in r.spec.relevant()} - {"kind", "name", "model"}  # facts already
    metrics = {name for r in runs for name in r.summary}
    known_metrics = [m for m in METRIC_ORDER if m in metrics]
    return [
        *RUN_FACTS,
        *(f"spec.{f.name}" for f in dataclasses.fields(RunSpec) if f.name in settings),
        *(f"metric.{name}" for name in known_metrics + sorted(metrics - set(known_metrics))),
    ]


def run_row(run: Run, header: Sequence[str]) -> list[Any]:
    values = _facts(run) | {f"spec.{k}": v for k, v in run.spec.relevant().items()}
    values |= {f"metric.{k}": v for k, v in run.summary.items()}
    values["tags"] = ";".join(run.tags)
    return [values.get(column) for column in header]


def run_object(store: RunStore, run: Run) -> dict[str, Any]:
    return _facts(run) | {
        "tags": list(run.tags),
        "spec_given": run.spec.explicit_values(),
        "spec": run.spec.relevant(),
        "summary": run.summary,
        "artifacts": [
            {"kind": a["kind"], "path": a["path"], "bytes": a["bytes"]} for a in store.artifacts(run.id)
        ],
    }


def _facts(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.id, "name": run.name, "kind": run.kind, "status": run.status,
        "model": run.spec.model, "parent_id": run.parent_id, "tags": run.tags,
        "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at,
        "duration_s": run.duration, "progress_done": run.progress_done,
        "progress_total": run.progress_total, "error": run.error, "notes": run.notes,
    }


def _metric_rows(store: RunStore, runs: Iterable[Run]) -> Iterable[tuple]:
    for run in runs:
        for step, name, value, time in store.metric_points(run.id):
            yield run.id, step, name, value, time


def _sample_rows(store: RunStore, runs: Iterable[Run]) -> Iterable[tuple]:
    for run in runs:
        for sample in store.samples(run.id):
            yield tuple(sample[c] for c in SAMPLE_COLUMNS)


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write a CSV file (None as an empty cell); returns the number of data rows."""
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count
