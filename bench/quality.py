"""Quality and speed of the default pipeline on the embedded model, on this machine.

Runs a CoT eval of the base model, then `python -m engine pipeline` (sft -> rft on reference
reasoning -> [rollout -> rft] x rounds), and prints accuracy and answer_rate on valid with the
wall time of each stage. Course targets on valid: CoT >= 0.4, SFT >= 0.6, RFT >= 0.7.

The full run (1000 train questions, 200 valid, k=10) takes hours on 2 CPU cores; a reduced one:
    nice .venv/bin/python bench/quality.py --train-limit 300 --valid-limit 50 --samples 4 --epochs 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from engine.runner import execute
from engine.spec import RunSpec
from engine.store import RunStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--train-limit", type=int, default=0, help="train questions (0: all 1000)")
    parser.add_argument("--valid-limit", type=int, default=0, help="valid questions scored (0: all 200)")
    parser.add_argument("--samples", type=int, default=10, help="rollout samples per question (k)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="rollout + RFT rounds")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bootstrap", default="reference", choices=("reference", "rollout"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--db", type=Path, default=None, help="run database (default: a temporary folder)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    db = args.db or Path(tempfile.mkdtemp(prefix="reasonlab-quality-")) / "runs.db"
    store = RunStore(db)
    console = Console(stderr=True)
    console.print(f"runs in {db}; torch threads: {torch.get_num_threads()}")

    table = Table(title=f"quality: train {args.train_limit or 'all'}, valid {args.valid_limit or 'all'}, "
                  f"k={args.samples}, epochs {args.epochs}, rounds {args.rounds}", title_justify="left")
    for column in ("stage", "run", "accuracy", "answer_rate", "other", "wall s"):
        table.add_column(column, justify="left" if column in ("stage", "other") else "right")

    began = time.perf_counter()
    cot = store.create_run(RunSpec(kind="eval", model=args.model, mode="cot", dataset="valid", limit=args.valid_limit))
    cot = execute(store, cot.id, console=console)
    _row(table, "cot (base model)", cot)
    pipeline = RunSpec(
        kind="pipeline", model=args.model, limit=args.train_limit, eval_limit=args.valid_limit,
        eval_interval=0, num_samples=args.samples, epochs=args.epochs, rounds=args.rounds,
        batch_size=args.batch_size, bootstrap=args.bootstrap,
    )
    run = execute(store, store.create_run(pipeline).id, console=console)
    for stage in sorted(store.list_runs(tag=f"pipeline:{run.id}"), key=lambda r: r.id):
        _row(table, stage.name.split()[-1], stage)
    table.add_row("total", str(run.id), "", "", run.status, f"{time.perf_counter() - began:.0f}")
    Console().print(table)


def _row(table: Table, label: str, run) -> None:
    s = run.summary
    if run.kind == "rollout":
        other = f"success {s.get('success_rate', 0):.2f}, correct {s.get('correct_rate', 0):.2f}, " \
                f"{s.get('rft_rows', 0):.0f} rows, {s.get('tokens_per_s', 0):.0f} tok/s"
        cells = ("", "")
    else:
        cells = (f"{s.get('accuracy', 0):.3f}", f"{s.get('answer_rate', 0):.3f}")
        other = f"{s['samples_per_s']:.1f} samples/s" if "samples_per_s" in s else f"{s.get('tokens_per_s', 0):.0f} tok/s"
    table.add_row(label, str(run.id), *cells, f"{run.status}; {other}", f"{run.duration or 0:.0f}")


if __name__ == "__main__":
    main()
