"""The `queue` and `sweep` commands: see the queue and its slots, move a queued run, set the
number of slots, and put a grid (or a sample of it) of runs into the queue."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.core.processes import Launcher
from engine.core.queue import SLOTS_SETTING, set_slot_count, slot_count
from engine.core.spec import KINDS, RunSpec
from engine.core.store import RunStore
from engine.core.sweep import new_sweep_id, plan_sweep, queue_sweep

QUEUE_WIDTH = 80
"""The queue is printed this wide when stdout is not a terminal."""


def add_queue_parsers(commands, add_setting_options: Callable, add_db: Callable) -> None:
    queue = commands.add_parser(
        "queue", help="show the queue and its slots; set the slot count; move a queued run",
        description="Runs wait as `queued` until one of N slots is free, and start in queue order.",
    )
    queue.add_argument("--slots", type=int, default=None, help="set this database's number of slots")
    add_db(queue)
    actions = queue.add_subparsers(dest="action", metavar="ACTION")
    move = actions.add_parser("move", help="move a queued run to another place in the queue")
    move.add_argument("run", type=int)
    move.add_argument("--to", type=int, required=True, help="its new place (1: next to start)")
    move.add_argument("--db", default=argparse.SUPPRESS, help="run database (also accepted before `move`)")

    sweep = commands.add_parser(
        "sweep", help="queue one run per combination of several setting values",
        description="Each setting takes comma-separated values (1e-3,2e-3) or, for whole numbers, a range "
        "(0..2). The grid, or --sample N of it, is queued as runs tagged sweep:<id>.",
    )
    kinds = sweep.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in KINDS:
        sub = kinds.add_parser(kind, help=f"a sweep of {kind} runs")
        add_setting_options(sub, kind, several=True)
        sub.add_argument("--sample", type=int, default=None, help="queue a random sample of N combinations")
        sub.add_argument("--sample-seed", type=int, default=0, help="seed of the sample or the search (default: 0)")
        sub.add_argument("--search", choices=("grid", "optuna"), default="grid",
                         help="grid: queue every combination (or --sample N); optuna: let optuna's TPE sampler "
                         "pick --trials combinations one after another, waiting for their results")
        sub.add_argument("--trials", type=int, default=10, help="runs an optuna search makes (default: 10)")
        sub.add_argument("--metric", default="accuracy", help="what an optuna search optimises (default: accuracy)")
        sub.add_argument("--direction", choices=("maximize", "minimize"), default="maximize")
        sub.add_argument("--tag", action="append", default=[], help="tag every run (repeatable)")
        sub.add_argument("--json", action="store_true", help="print the sweep id and run ids as JSON")
        add_db(sub)


def queue_command(args, console: Console) -> int:
    store = RunStore(args.db)
    if args.slots is not None:
        set_slot_count(store, args.slots)
        console.print(f"{store.path}: {args.slots} slot(s); waiting runs use them at once.", highlight=False, soft_wrap=True)
    if args.action == "move":
        position = store.move_in_queue(args.run, args.to)
        console.print(f"Run {args.run} is now #{position} in the queue.", highlight=False, soft_wrap=True)
    out = Console() if Console().is_terminal else Console(width=QUEUE_WIDTH)
    for renderable in queue_view(store):
        out.print(renderable)
    return 0


def queue_view(store: RunStore) -> list:
    """The slots line, the running runs with their slots, and the queued runs in order."""
    store.reap_dead_runs()
    count = slot_count(store)
    origin = "set for this database" if store.setting(SLOTS_SETTING) else f"default for {os.cpu_count()} cores"
    running = store.running_runs()
    busy = sum(1 for run in running if run.slot is not None and run.slot <= count)
    parts: list = [Text(f"slots: {busy} of {count} busy ({origin}; `engine queue --slots N` sets it)")]
    if running:
        table = _table("running", {"slot": 4, "id": 4, "label": None, "kind": 8, "started": 8})
        for run in running:
            slot = str(run.slot) if run.slot is not None else f"in #{run.parent_id}" if run.parent_id else "-"
            table.add_row(slot, str(run.id), Text(run.label), run.kind, _time(run.started_at))
        parts.append(table)
    else:
        parts.append(Text("running: none"))
    queued_runs = store.queued_runs()
    if queued_runs:
        table = _table("queued", {"#": 3, "id": 4, "label": None, "kind": 8, "queued at": 8, "process": 10})
        orphans = []
        for queued in queued_runs:
            alive = queued.waiter is not None and queued.waiter.is_alive()
            if not alive:
                orphans.append(str(queued.id))
            table.add_row(
                str(queued.position), str(queued.id), Text(queued.label), queued.kind, _time(queued.created_at),
                f"pid {queued.waiter.pid}" if alive else "none",
            )
        parts.append(table)
        if orphans:
            parts.append(Text(
                f"No process waits for run(s) {', '.join(orphans)}; `python -m engine start ID` starts one."
            ))
    else:
        parts.append(Text("queued: none"))
    return parts


def sweep_command(args, console: Console) -> int:
    texts = {f.name: getattr(args, f.name) for f in RunSpec.settings(args.kind) if getattr(args, f.name) is not None}
    if args.search == "optuna":
        return _search(args, texts, console)
    plan = plan_sweep(args.kind, texts, args.sample, args.sample_seed)
    store = RunStore(args.db)
    sweep_id, ids = queue_sweep(store, Launcher(store.path.resolve()), plan, args.tag)
    if args.json:
        print(json.dumps({"sweep": sweep_id, "run_ids": ids}))
    console.print(
        f"sweep {sweep_id}: {len(ids)} {args.kind} run(s) queued (#{ids[0]}–#{ids[-1]}), tagged sweep:{sweep_id}; "
        f"`python -m engine queue` shows the queue, `python -m engine runs --tag sweep:{sweep_id}` the results.",
        highlight=False, soft_wrap=True,
    )
    return 0


def _search(args, texts: dict[str, str], console: Console) -> int:
    from engine.search import optuna_search

    store = RunStore(args.db)
    sweep_id = new_sweep_id()
    console.print(f"sweep {sweep_id}: optuna search of {args.trials} {args.kind} run(s) by {args.metric}", highlight=False)
    result = optuna_search(
        store, args.kind, texts, trials=args.trials, metric=args.metric, direction=args.direction,
        seed=args.sample_seed, tags=[f"sweep:{sweep_id}", *args.tag], console=console,
    )
    if args.json:
        print(json.dumps({"sweep": sweep_id, **result}))
    if result["best_run"] is None:
        console.print(f"sweep {sweep_id}: no run finished with {args.metric}.", highlight=False)
        return 1
    console.print(
        f"sweep {sweep_id}: best run {result['best_run']}, {args.metric} {result['best_value']:.4g} with {result['best_params']}",
        highlight=False, soft_wrap=True,
    )
    return 0


def _table(title: str, columns: dict[str, int | None]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, width in columns.items():
        table.add_column(
            name, justify="right" if name in ("#", "id", "slot") else "left", no_wrap=True, overflow="ellipsis",
            min_width=width, max_width=40 if width is None else None,
        )
    return table


def _time(stamp: float | None) -> str:
    """The time of day for today, else the date and minute."""
    if not stamp:
        return ""
    today = time.localtime().tm_yday == time.localtime(stamp).tm_yday and time.time() - stamp < 86400
    return time.strftime("%H:%M:%S" if today else "%m-%d %H:%M", time.localtime(stamp))
