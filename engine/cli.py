"""The headless CLI: `python -m engine KIND [settings]` creates and executes a run; other
commands list, show, start, resume and cancel runs, queue and sweep them, and regenerate the
data files. Every command that executes a run first waits for a queue slot (engine.core.queue).

Run options are generated from `RunSpec`, so every setting has exactly one definition.
Everything it prints that a user or a model wrote (names, tags, paths, errors) goes through
`_text`: shown as typed, never read as rich markup nor passed to the terminal as escapes."""

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

from engine.core.errors import ReasonlabError, RunCancelled
from engine.core.ids import MAX_ID, run_id_or_none
from engine.core.processes import cancel_run
from engine.core.queue import wait_for_slot
from engine.core.spec import KINDS, RunSpec, setting_text
from engine.core.store import DB_ENV, RESUMABLE_STATUSES, Run, RunStore, UnreadableRun
from engine.core.text import visible
from engine.queue_commands import add_queue_parsers, queue_command, sweep_command

KIND_HELP = {
    "eval": "evaluate a model (optionally with an adapter) on a dataset",
    "sft": "LoRA supervised fine-tuning on direct answers",
    "rollout": "sample k reasoning chains per question and keep the correct ones (RFT data)",
    "rft": "LoRA fine-tuning on reasoning chains from a rollout run",
    "pipeline": "SFT, then rounds of rollout + RFT (expert iteration), each stage a linked run",
    "grpo": "online RL (GRPO): sample groups per question, train on the task's reward",
}


class UsageError(ReasonlabError):
    """The command line itself is wrong (unknown option, missing or malformed argument)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one error line like every other, not usage text and exit 2."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message.rstrip('.')}; see `{self.prog} --help`.")


def _run_id(text: str) -> int:
    run_id = run_id_or_none(text)
    if run_id is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a run id (a whole number up to {MAX_ID})")
    return run_id


def _count(text: str) -> int:
    """A whole number that SQLite can hold."""
    count = run_id_or_none(text)  # the same range as a run id
    if count is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to {MAX_ID}")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m engine", description="reasonlab engine: runs without the UI.")
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
        sub.add_argument("run", type=_run_id)
        sub.add_argument("--json", action="store_true", help="print one JSON result object on stdout")
        _add_db(sub)
        _add_main_address(sub)
    sub.add_argument("--processes", type=int, default=None, help="resume on this many processes per machine (a checkpoint from any number resumes on any other)")
    sub = commands.add_parser("join", help="start this machine's ranks of a run on several machines (docs/scaling.md)")
    sub.add_argument("--machines", type=int, required=True, help="machines taking part (the run's `machines`)")
    sub.add_argument("--processes", type=int, required=True, help="ranks per machine (the run's `processes`)")
    sub.add_argument("--machine-rank", type=int, required=True, help="this machine's number, 1 to machines - 1")
    sub.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    sub.add_argument("--join-timeout", default=None, metavar="INT", help=_JOIN_TIMEOUT_HELP)
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
    sub.add_argument("--limit", type=_count, default=50)
    _add_db(sub)
    sub = commands.add_parser("show", help="a run's spec, metrics summary and artifacts")
    sub.add_argument("run", type=_run_id)
    _add_db(sub)
    text = "compare two runs question by question on each split both scored (paired, exact McNemar)"
    sub = commands.add_parser(
        "compare", help=text,
        description=f"{text}: the questions B got right and A wrong (gained), the reverse (lost), "
        "and the chance of a split at least that uneven if the runs did equally well (p).",
    )
    sub.add_argument("a", type=_run_id, metavar="A", help="the run compared against (the baseline)")
    sub.add_argument("b", type=_run_id, metavar="B", help="the run compared with it")
    sub.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    _add_db(sub)
    sub = commands.add_parser("cancel", help="ask a running run to stop (it saves a checkpoint)")
    sub.add_argument("run", type=_run_id)
    _add_db(sub)
    sub = commands.add_parser("delete", help="delete a run: its rows and its folder")
    sub.add_argument("run", type=int)
    sub.add_argument("--keep-files", action="store_true", help="delete only the rows, keep the run's folder")
    _add_db(sub)
    text = "write runs' specs, summaries, metrics and samples to CSV and JSON files"
    sub = commands.add_parser(
        "export", help=text,
        description=f"{text}: runs.csv (one row per run), metrics.csv (every point), samples.csv and runs.json.",
    )
    sub.add_argument("runs", type=int, nargs="*", metavar="RUN", help="run ids (default: every run the filters match)")
    sub.add_argument("--kind", choices=KINDS, help="only runs of this kind")
    sub.add_argument("--status", help="only runs with this status")
    sub.add_argument("--tag", help="only runs with this tag")
    sub.add_argument("--out", type=Path, default=Path("export"), help="output folder; its files of the same names are replaced (default: ./export)")
    _add_db(sub)
    add_queue_parsers(commands, add_setting_options, _add_db)
    sub = commands.add_parser("data", help="regenerate data/train.json and data/valid.json")
    sub.add_argument("--out", type=Path, default=None, help="output folder (default: the repo's data/)")
    return parser


_JOIN_TIMEOUT_HELP = (
    f"{RunSpec.__dataclass_fields__['join_timeout'].metadata['help']} "
    f"(default: {RunSpec.default_for('eval', 'join_timeout')})"
)


def _add_main_address(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--main-ip", default=None, help="runs on several machines: machine 0's address (default 127.0.0.1)")
    sub.add_argument("--main-port", type=int, default=None, help="runs on several machines: a free port on machine 0")


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
    """Run one command; every failure is one `error:` line on stderr (and, with --json, one
    error object on stdout) and a non-zero exit, never a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    console = Console(stderr=True)
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS.get(args.command, _run_kind)(args, console)
    except (KeyboardInterrupt, RunCancelled):  # a signal outside a run's own handling
        console.print("interrupted", highlight=False)
        return 130
    except Exception as exc:  # noqa: BLE001 - internal errors too end in one line, not a traceback
        result = getattr(exc, "result", None) or {"run_id": None, "status": "error"}
        line = result.get("error") or _error_line(exc)
        console.print(Text.assemble(("error:", "red"), " ", _text(line)), soft_wrap=True)
        if "--json" in argv:
            print(json.dumps(result | {"error": line}))
        return 1
    except sqlite3.DatabaseError as exc:  # a page corrupted or the file made read-only while open
        database = getattr(args, "db", None) or os.environ.get(DB_ENV) or "runs.db"
        console.print(
            f"[red]error:[/red] run database {database}: {exc}; check the file (permissions, disk) or pass another --db path.",
            highlight=False, soft_wrap=True,
        )
        return 1


def _error_line(exc: Exception) -> str:
    if isinstance(exc, ReasonlabError):
        return str(exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"Internal error: {type(exc).__name__}: {first}; please report it with the command that caused it."


def _text(value: object, style: str = "") -> Text:
    """A user string for rich: never markup, control characters shown as escapes."""
    return Text(visible(str(value)), style=style)


def _run_kind(args, console: Console) -> int:
    values = {f.name: getattr(args, f.name) for f in RunSpec.settings(args.command)}
    spec = RunSpec.from_text(args.command, {k: v for k, v in values.items() if v is not None})
    store = RunStore(args.db)
    run = store.create_run(spec, parent_id=spec.parent_run_id(), tags=args.tag)
    console.print(Text.assemble("run ", (str(run.id), "bold"), f" ({spec.kind}) in ", _text(store.path)), soft_wrap=True)
    return _execute(store, run.id, args, console, resume=False)


def _start(args, console: Console) -> int:
    _export_main_address(args)
    return _execute(RunStore(args.db), args.run, args, console, resume=False)


def _resume(args, console: Console) -> int:
    _export_main_address(args)
    store = RunStore(args.db)
    if args.processes is not None:
        store.change_processes(args.run, args.processes)
    return _execute(store, args.run, args, console, resume=True)


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
    except Exception as exc:
        exc.result = _failed_result(store, run_id)  # main prints it with --json
        raise
    finally:
        slot.release()
    if args.json:
        print(json.dumps(result_object(run)))
    else:
        print_summary(_stdout_console(), run)
    return {"completed": 0, "cancelled": 130}.get(run.status, 1)


def _failed_result(store: RunStore, run_id: int) -> dict:
    """The failed run's result object, or what is known when even reading it fails."""
    try:
        return result_object(store.get_run(run_id))
    except Exception:  # noqa: BLE001 - the error being reported matters more than this one
        return {"run_id": run_id, "status": "failed"}
def _export_main_address(args) -> None:
    """Where a run's ranks meet; the launch (engine/distributed.py) reads it from the environment."""
    from engine.distributed import MAIN_IP_ENV, MAIN_PORT_ENV

    if args.main_ip:
        os.environ[MAIN_IP_ENV] = args.main_ip
    if args.main_port:
        os.environ[MAIN_PORT_ENV] = str(args.main_port)


def _join(args, console: Console) -> int:
    from engine.distributed import DEFAULT_PORT, join

    # The run setting's own parsing and range, on a spec that holds only it.
    given = {"join_timeout": args.join_timeout} if args.join_timeout is not None else {}
    join_timeout = RunSpec.from_text("eval", given).join_timeout
    return join(
        processes=args.processes, machines=args.machines, machine_rank=args.machine_rank,
        main_ip=args.main_ip or "127.0.0.1", main_port=args.main_port or DEFAULT_PORT, device=args.device,
        join_timeout=join_timeout,
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
    table = Table(title=_text(f"run {run.id} · {run.kind} · {run.status}"), title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in sorted(run.summary.items()):
        table.add_row(_text(name), f"{value:.4g}")
    if run.duration is not None:
        table.add_row("duration", f"{run.duration:.1f} s")
    console.print(table)
    if run.error:
        console.print(_text(run.error, "red"))


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
            str(run.id), _text(run.name), _text(run.kind), _text(run.status), _text(Path(run.spec.model).name),
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
    out.print(Text.assemble((f"run {run.id}", "bold"), " ", _text(f"{run.label} · {run.kind} · {run.status}")))
    if run.error:
        out.print(_text(run.error, "red"))
    if run.parent_id:
        out.print(f"parent run: {run.parent_id}")
    if run.tags:
        out.print(_text("tags: " + ", ".join(run.tags)))
    spec = Table(title="spec", title_justify="left")
    spec.add_column("setting")
    spec.add_column("value")
    for key, value in run.spec.relevant().items():
        spec.add_row(key, _text(setting_text(value)))
    out.print(spec)
    print_summary(out, run)
    artifacts = Table(title="artifacts", title_justify="left")
    for column in ("kind", "path", "MB"):
        artifacts.add_column(column)
    for artifact in store.artifacts(run.id):
        artifacts.add_row(_text(artifact["kind"]), _text(artifact["path"]), f"{artifact['bytes'] / 1e6:.2f}")
    out.print(artifacts)
    return 0


def _compare(args, console: Console) -> int:
    from engine.core.paired import compare_runs, numerics_note

    store = RunStore(args.db)
    a, b = store.get_run(args.a), store.get_run(args.b)
    splits = compare_runs(store, a.id, b.id)
    if not splits:
        raise ReasonlabError(
            f"Runs {a.id} and {b.id} have no scored question in common; compare runs that scored the "
            "same split (an eval's --dataset, or a training run's valid and shifted)."
        )
    note = numerics_note(a, b)
    if args.json:
        print(json.dumps({"a": a.id, "b": b.id, "splits": [s.as_json() for s in splits], "note": note}))
        return 0
    out = _stdout_console()
    out.print(Text.assemble("A: ", (f"run {a.id}", "bold"), " ", _text(a.label), "   B: ", (f"run {b.id}", "bold"), " ", _text(b.label)))
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("split", "questions", "A", "B", "gained", "lost", "p"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for s in splits:
        table.add_row(
            _text(s.split), str(s.questions), f"{s.right_a / s.questions:.3f}", f"{s.right_b / s.questions:.3f}",
            str(s.gained), str(s.lost), f"{s.p_value:.3g}",
        )
    out.print(table)
    if note:
        out.print(Text(note), soft_wrap=True)
    return 0


def _cancel(args, console: Console) -> int:
    console.print(cancel_run(RunStore(args.db), args.run), highlight=False)
    return 0


def _delete(args, console: Console) -> int:
    folder = RunStore(args.db).delete_run(args.run, remove_files=not args.keep_files)
    console.print(f"deleted run {args.run}" + ("" if args.keep_files else f" and its folder {folder}"), highlight=False)
    return 0


def _export(args, console: Console) -> int:
    from engine.core.export import FILES, export_runs

    store = RunStore(args.db)
    filters = {"kind": args.kind, "status": args.status, "tag": args.tag}
    if args.runs and any(filters.values()):
        raise ReasonlabError("Pass run ids or --kind/--status/--tag filters, not both.")
    if args.runs:
        runs = [store.get_run(run_id) for run_id in dict.fromkeys(args.runs)]
    else:
        runs = sorted(store.list_runs(**filters), key=lambda run: run.id)
    if not runs:
        raise ReasonlabError(f"No runs in {store.path} match; `python -m engine runs` lists them.")
    counts = export_runs(store, runs, args.out)
    console.print(
        f"exported {counts.runs} runs, {counts.metric_points} metric points and {counts.samples} samples"
        f" to {args.out}: {', '.join(FILES)}", highlight=False, soft_wrap=True,
    )
    return 0


def _data(args, console: Console) -> int:
    from engine.tasks.unit_conversion import write_data

    out = args.out or Path(__file__).resolve().parent.parent / "data"
    for path in write_data(out):
        console.print(_text(f"wrote {path}"))
    return 0


def _stdout_console() -> Console:
    """Wide enough for every column when piped; a terminal's own width otherwise."""
    console = Console()
    return console if console.is_terminal else Console(width=140)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


COMMANDS = {
    "join": _join, "rank": _rank, "start": _start, "resume": _resume, "runs": _runs, "show": _show, "compare": _compare,
    "cancel": _cancel, "delete": _delete, "export": _export, "data": _data, "queue": queue_command,
    "sweep": sweep_command,
}
