"""The headless CLI: `python -m engine KIND [settings]` creates and executes a run; other
commands list, show, start, resume and cancel runs, and regenerate the data files.

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
from engine.core.spec import KINDS, RunSpec, setting_text
from engine.core.store import DB_ENV, RESUMABLE_STATUSES, Run, RunStore, UnreadableRun

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
        for f in RunSpec.settings(kind):
            meta = f.metadata
            default = RunSpec.default_for(kind, f.name)
            sub.add_argument(
                "--" + f.name.replace("_", "-"), dest=f.name, default=None, metavar=f.type.upper(),
                choices=meta["choices"], help=f"{meta['help']} (default: {setting_text(default)})",
            )
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
        _add_main_address(sub)
    sub.add_argument("--processes", type=int, default=None, help="resume on this many processes per machine (a checkpoint from any number resumes on any other)")
    sub = commands.add_parser("join", help="start this machine's ranks of a run on several machines (docs/scaling.md)")
    sub.add_argument("--machines", type=int, required=True, help="machines taking part (the run's `machines`)")
    sub.add_argument("--processes", type=int, required=True, help="ranks per machine (the run's `processes`)")
    sub.add_argument("--machine-rank", type=int, required=True, help="this machine's number, 1 to machines - 1")
    sub.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    _add_main_address(sub)
    sub = commands.add_parser("rank", help=argparse.SUPPRESS)  # what `accelerate launch` runs on each rank
    sub.add_argument("run", type=int, nargs="?")
    sub.add_argument("--db", default=None)
    sub.add_argument("--owner", default=None)
    sub.add_argument("--resume", action="store_true")
    sub.add_argument("--cpu", action="store_true")
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
    sub = commands.add_parser("data", help="regenerate data/train.json and data/valid.json")
    sub.add_argument("--out", type=Path, default=None, help="output folder (default: the repo's data/)")
    return parser


def _add_main_address(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--main-ip", default=None, help="runs on several machines: machine 0's address (default 127.0.0.1)")
    sub.add_argument("--main-port", type=int, default=None, help="runs on several machines: a free port on machine 0")


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
    _export_main_address(args)
    return _execute(RunStore(args.db), args.run, args, console, resume=False)


def _resume(args, console: Console) -> int:
    _export_main_address(args)
    store = RunStore(args.db)
    if args.processes is not None:
        _change_processes(store, args.run, args.processes)
    return _execute(store, args.run, args, console, resume=True)


def _change_processes(store: RunStore, run_id: int, processes: int) -> None:
    """Resume on another number of ranks: the training plan and the checkpoint do not depend on
    it, so only the stored setting changes (a stopped run only)."""
    run = store.get_run(run_id)
    if run.status not in RESUMABLE_STATUSES:
        raise ReasonlabError(f"--processes: run {run_id} is {run.status}; only a cancelled or failed run can be resumed on other processes.")
    store.update_run(run_id, spec=run.spec.replace(processes=processes).to_json())


def _execute(store: RunStore, run_id: int, args, console: Console, *, resume: bool) -> int:
    from engine.runner import execute

    try:
        run = execute(store, run_id, resume=resume, console=console)
    except ReasonlabError:
        if args.json:
            print(json.dumps(result_object(store.get_run(run_id))))
        raise
    if args.json:
        print(json.dumps(result_object(run)))
    else:
        print_summary(_stdout_console(), run)
    return {"completed": 0, "cancelled": 130}.get(run.status, 1)


def _export_main_address(args) -> None:
    """Where a run's ranks meet; the launch (engine/distributed.py) reads it from the environment."""
    from engine.distributed import MAIN_IP_ENV, MAIN_PORT_ENV

    if args.main_ip:
        os.environ[MAIN_IP_ENV] = args.main_ip
    if args.main_port:
        os.environ[MAIN_PORT_ENV] = str(args.main_port)


def _join(args, console: Console) -> int:
    from engine.distributed import DEFAULT_PORT, join

    return join(
        processes=args.processes, machines=args.machines, machine_rank=args.machine_rank,
        main_ip=args.main_ip or "127.0.0.1", main_port=args.main_port or DEFAULT_PORT, device=args.device,
    )


def _rank(args, console: Console) -> int:
    from engine.rank import rank_main

    return rank_main(args.run, args.db, args.owner, args.resume, args.cpu)


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


COMMANDS = {"join": _join, "rank": _rank, "start": _start, "resume": _resume, "runs": _runs, "show": _show, "cancel": _cancel, "delete": _delete, "data": _data}
