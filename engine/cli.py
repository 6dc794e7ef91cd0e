"""The headless CLI: `python -m engine KIND [settings]` creates and executes a run; other
commands list, show, start, resume and cancel runs, queue and sweep them, and regenerate the
data files. Every command that executes a run first waits for a queue slot (engine.core.queue).

Run options are generated from `RunSpec`, so every setting has exactly one definition."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.core.errors import ReasonlabError
from engine.core.processes import cancel_run
from engine.core.queue import wait_for_slot
from engine.core.spec import KINDS, RunSpec, setting_text
from engine.core.store import DB_ENV, RESUMABLE_STATUSES, Run, RunStore, UnreadableRun
from engine.queue_commands import add_queue_parsers, queue_command, sweep_command

KIND_HELP = {
    "eval": "evaluate a model (optionally with an adapter) on a dataset",
    "sft": "LoRA supervised fine-tuning on direct answers",
    "rollout": "sample k reasoning chains per question and keep the correct ones (RFT data)",
    "rft": "LoRA fine-tuning on reasoning chains from a rollout run",
    "pipeline": "SFT, then rounds of rollout + RFT (expert iteration), each stage a linked run",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="reasonlab engine: runs without the UI.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for kind in KINDS:
        sub = commands.add_parser(kind, help=KIND_HELP[kind], description=KIND_HELP[kind])
        add_setting_options(sub, kind)
        sub.add_argument("--tag", action="append", default=[], help="tag the run (repeatable)")
        sub.add_argument("--json", action="store_true", help="print one JSON result object on stdout")
        _add_db(sub)
    for name, text in (
        ("start", "execute a queued run (what the app launches)"),
        ("resume", "continue a cancelled or failed run from its last checkpoint"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("run", type=int)
        sub.add_argument("--json", action="store_true", help="print one JSON result object on stdout")
        _add_db(sub)
    sub = commands.add_parser("runs", help="list runs")
    sub.add_argument("--kind", choices=KINDS)
    sub.add_argument("--status")
    sub.add_argument("--tag")
    sub.add_argument("--limit", type=int, default=50)
    _add_db(sub)
    sub = commands.add_parser("show", help="a run's spec, metrics summary and artifacts")
    sub.add_argument("run", type=int)
    _add_db(sub)
    sub = commands.add_parser("cancel", help="ask a running run to stop (it saves a checkpoint)")
    sub.add_argument("run", type=int)
    _add_db(sub)
    sub = commands.add_parser("delete", help="delete a run: its rows and its folder")
    sub.add_argument("run", type=int)
    sub.add_argument("--keep-files", action="store_true", help="delete only the rows, keep the run's folder")
    _add_db(sub)
    add_queue_parsers(commands, add_setting_options, _add_db)
    sub = commands.add_parser("data", help="regenerate data/train.json and data/valid.json")
    sub.add_argument("--out", type=Path, default=None, help="output folder (default: the repo's data/)")
    return parser


def add_setting_options(sub: argparse.ArgumentParser, kind: str, *, several: bool = False) -> None:
    """One option per setting of `kind`; `several`: each takes a comma-separated list (a sweep)."""
    for f in RunSpec.settings(kind):
        meta = f.metadata
        default = RunSpec.default_for(kind, f.name)
        sub.add_argument(
            "--" + f.name.replace("_", "-"), dest=f.name, default=None,
            metavar=f.type.upper() + ("S" if several else ""), choices=None if several else meta["choices"],
            help=f"{meta['help']} (default: {setting_text(default)})",
        )


def _add_db(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--db", default=None, help=f"run database (default: ${DB_ENV} or ./runs.db)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        return COMMANDS.get(args.command, _run_kind)(args, console)
    except ReasonlabError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 1
    except sqlite3.DatabaseError as exc:  # a page corrupted or the file made read-only while open
        database = getattr(args, "db", None) or os.environ.get(DB_ENV) or "runs.db"
        console.print(
            f"[red]error:[/red] run database {database}: {exc}; check the file (permissions, disk) or pass another --db path.",
            highlight=False, soft_wrap=True,
        )
        return 1


def _run_kind(args, console: Console) -> int:
    values = {f.name: getattr(args, f.name) for f in RunSpec.settings(args.command)}
    spec = RunSpec.from_text(args.command, {k: v for k, v in values.items() if v is not None})
    store = RunStore(args.db)
    run = store.create_run(spec, parent_id=spec.parent_run_id(), tags=args.tag)
    console.print(f"run [bold]{run.id}[/bold] ({spec.kind}) in {store.path}", highlight=False)
    return _execute(store, run.id, args, console, resume=False)


def _start(args, console: Console) -> int:
    return _execute(RunStore(args.db), args.run, args, console, resume=False)


def _resume(args, console: Console) -> int:
    return _execute(RunStore(args.db), args.run, args, console, resume=True)


def _execute(store: RunStore, run_id: int, args, console: Console, *, resume: bool) -> int:
    """Wait for a queue slot (a queued run in its turn, a resumed one for any free slot), then
    run in it. Ctrl-C while waiting cancels the queued run; a run cancelled while it waited
    exits with 130 without running."""
    from engine.runner import execute, prepare

    waiting = store.get_run(run_id)
    if resume and waiting.status not in (*RESUMABLE_STATUSES, "running"):
        raise ReasonlabError(f"Run {run_id} is {waiting.status}; only cancelled or failed runs can be resumed.")
    try:
        slot = wait_for_slot(
            store, run_id, in_order=not resume, on_wait=lambda text: console.print(text, highlight=False, soft_wrap=True),
            prepare=lambda: prepare(waiting.kind),
        )
    except KeyboardInterrupt:
        if not resume:
            store.cancel_queued(run_id)
        slot = None
    if slot is None:
        left = store.get_run(run_id)
        console.print(f"Run {run_id} did not start: it is {left.status}.", highlight=False)
        if args.json:
            print(json.dumps(result_object(left)))
        return 130 if left.status == "cancelled" else 1
    try:
        run = execute(store, run_id, resume=resume, console=console)
    except ReasonlabError:
        if args.json:
            print(json.dumps(result_object(store.get_run(run_id))))
        raise
    finally:
        slot.release()
    if args.json:
        print(json.dumps(result_object(run)))
    else:
        print_summary(_stdout_console(), run)
    return {"completed": 0, "cancelled": 130}.get(run.status, 1)


def result_object(run: Run) -> dict:
    return {
        "run_id": run.id, "kind": run.kind, "status": run.status, "error": run.error,
        "metrics": run.summary, "duration_s": run.duration, "spec": run.spec.relevant(),
    }


def print_summary(console: Console, run: Run) -> None:
    table = Table(title=f"run {run.id} · {run.kind} · {run.status}", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in sorted(run.summary.items()):
        table.add_row(name, f"{value:.4g}")
    if run.duration is not None:
        table.add_row("duration", f"{run.duration:.1f} s")
    console.print(table)
    if run.error:
        console.print(f"[red]{run.error}[/red]", highlight=False)


def _runs(args, console: Console) -> int:
    store = RunStore(args.db)
    store.reap_dead_runs()
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column, width in RUN_COLUMNS.items():
        flexible = width is None
        table.add_column(
            column, justify="right" if column in ("id", "acc", "loss", "duration") else "left",
            no_wrap=True, overflow="ellipsis", min_width=None if flexible else width, max_width=20 if flexible else None,
        )
    unreadable = []
    for run in store.list_runs(kind=args.kind, status=args.status, tag=args.tag, limit=args.limit):
        if isinstance(run, UnreadableRun):
            table.add_row(str(run.id), Text("unreadable"), Text(run.kind), Text(run.status))
            unreadable.append(run.reason)
            continue
        table.add_row(
            str(run.id), run.name, run.kind, run.status, Path(run.spec.model).name,
            _fmt(run.summary.get("accuracy")), _fmt(run.summary.get("loss")),
            time.strftime("%m-%d %H:%M", time.localtime(run.started_at)) if run.started_at else "",
            f"{run.duration:.0f} s" if run.duration is not None else "",
        )
    out = _stdout_console()
    out.print(table)
    for reason in unreadable:
        out.print(Text(reason))
    return 0


RUN_COLUMNS = {  # fixed widths; None: up to 20 characters, cut with an ellipsis
    "id": 4, "name": None, "kind": 8, "status": 9, "model": None, "acc": 5, "loss": 6, "started": 11, "duration": 8,
}


def _show(args, console: Console) -> int:
    store = RunStore(args.db)
    store.reap_dead_runs()
    run = store.get_run(args.run)
    out = _stdout_console()
    out.print(f"[bold]run {run.id}[/bold] {run.label} · {run.kind} · {run.status}", highlight=False)
    if run.error:
        out.print(f"[red]{run.error}[/red]", highlight=False)
    if run.parent_id:
        out.print(f"parent run: {run.parent_id}")
    if run.tags:
        out.print("tags: " + ", ".join(run.tags))
    spec = Table(title="spec", title_justify="left")
    spec.add_column("setting")
    spec.add_column("value")
    for key, value in run.spec.relevant().items():
        spec.add_row(key, setting_text(value))
    out.print(spec)
    print_summary(out, run)
    artifacts = Table(title="artifacts", title_justify="left")
    for column in ("kind", "path", "MB"):
        artifacts.add_column(column)
    for artifact in store.artifacts(run.id):
        artifacts.add_row(artifact["kind"], artifact["path"], f"{artifact['bytes'] / 1e6:.2f}")
    out.print(artifacts)
    return 0


def _cancel(args, console: Console) -> int:
    console.print(cancel_run(RunStore(args.db), args.run), highlight=False)
    return 0


def _delete(args, console: Console) -> int:
    folder = RunStore(args.db).delete_run(args.run, remove_files=not args.keep_files)
    console.print(f"deleted run {args.run}" + ("" if args.keep_files else f" and its folder {folder}"), highlight=False)
    return 0


def _data(args, console: Console) -> int:
    from engine.tasks.unit_conversion import write_data

    out = args.out or Path(__file__).resolve().parent.parent / "data"
    for path in write_data(out):
        console.print(f"wrote {path}")
    return 0


def _stdout_console() -> Console:
    """Wide enough for every column when piped; a terminal's own width otherwise."""
    console = Console()
    return console if console.is_terminal else Console(width=140)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


COMMANDS = {
    "start": _start, "resume": _resume, "runs": _runs, "show": _show, "cancel": _cancel, "delete": _delete,
    "data": _data, "queue": queue_command, "sweep": sweep_command,
}
