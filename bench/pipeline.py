"""The default pipeline (or a stated scaled-down copy) in several dtypes, side by side.

Runs `python -m engine pipeline`'s stages (sft -> rft0 on reference reasoning -> [rollout ->
rft] x rounds) once per dtype in `--dtypes`, one after the other in this process, and prints each
stage's wall time and valid accuracy per dtype, with each dtype's time as a ratio of the first
(the baseline, fp32 by default) measured in the same run. `--sft-only` runs just the first stage,
the SFT run, for a quick matched comparison. Every setting left out takes the pipeline's
default (RunSpec); the title line states the scale actually run.

The full default pipeline takes about 3 h in fp32 on 2 CPU cores; a scaled-down one:
    nice -n 10 python bench/pipeline.py --limit 512 --epochs 1 --valid-limit 50 --sft-only
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from engine.core.errors import ReasonlabError
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.model import cpu_native_bf16
from engine.runner import execute


def _default(name: str):
    return RunSpec.default_for("pipeline", name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="the first is the baseline")
    parser.add_argument("--limit", type=int, default=_default("limit"), help="train questions (0: all 5000)")
    parser.add_argument("--valid-limit", type=int, default=0, help="valid questions scored (0: all 200)")
    parser.add_argument("--epochs", type=int, default=_default("epochs"), help="0: 6 for SFT, 3 for RFT")
    parser.add_argument("--samples", type=int, default=_default("num_samples"), help="rollout samples per question (k)")
    parser.add_argument("--rollout-limit", type=int, default=_default("rollout_limit"))
    parser.add_argument("--rounds", type=int, default=_default("rounds"))
    parser.add_argument("--sft-only", action="store_true", help="run only the pipeline's first stage (SFT)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--db", type=Path, default=None, help="run database (default: a temporary folder)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    db = args.db or Path(tempfile.mkdtemp(prefix="reasonlab-pipeline-")) / "runs.db"
    store = RunStore(db)
    dtypes = args.dtypes.split(",")
    scale = (f"train {args.limit or 'all'}, valid {args.valid_limit or 'all'}, epochs {args.epochs or 'sft 6 / rft 3'}"
             + ("" if args.sft_only else f", k={args.samples} on {args.rollout_limit or 'all'}, rounds {args.rounds}"))
    print(f"{'sft only' if args.sft_only else 'pipeline'}: {scale}; runs in {db}; torch threads "
          f"{torch.get_num_threads()}; native bf16: {cpu_native_bf16()}", flush=True)

    settings = dict(
        model=args.model, limit=args.limit, eval_limit=args.valid_limit, eval_interval=0, epochs=args.epochs,
        num_samples=args.samples, rollout_limit=args.rollout_limit, rounds=args.rounds, device="cpu",
    )
    stages: dict[str, dict[str, object]] = {}
    for dtype in dtypes:
        if args.sft_only:
            spec = RunSpec(kind="sft", **{k: v for k, v in settings.items() if k in _sft_settings()}, dtype=dtype)
            run = execute(store, store.create_run(spec).id)
            stages.setdefault("sft", {})[dtype] = run
        else:
            run = store.create_run(RunSpec(kind="pipeline", **settings, dtype=dtype))
            try:
                run = execute(store, run.id)
            except ReasonlabError as exc:  # e.g. a rollout with no correct samples: show the stages that ran
                print(f"{dtype}: pipeline run {run.id} stopped: {exc}", flush=True)
                run = store.get_run(run.id)
            for stage in sorted(store.list_runs(tag=f"pipeline:{run.id}"), key=lambda r: r.id):
                stages.setdefault(stage.name.split()[-1], {})[dtype] = stage
        print(f"{dtype}: run {run.id} {run.status} in {run.duration or 0:.0f} s", flush=True)

    header = f"{'stage':<10}" + "".join(f" | {d + ' s':>12} {'ratio':>6} {'accuracy':>8}" for d in dtypes)
    print("\n" + header + "\n" + "-" * len(header))
    totals = dict.fromkeys(dtypes, 0.0)
    for label, by_dtype in stages.items():
        base = by_dtype[dtypes[0]].duration or 0.0 if dtypes[0] in by_dtype else 0.0
        cells = ""
        for dtype in dtypes:
            run = by_dtype.get(dtype)
            if run is None:
                cells += f" | {'-':>12} {'':>6} {'-':>8}"
                continue
            seconds = run.duration or 0.0
            totals[dtype] += seconds
            quality = run.summary.get("accuracy", run.summary.get("success_rate"))
            cells += f" | {seconds:>12.0f} {base / seconds if seconds else 0:>5.2f}x {_cell(quality, run.kind):>8}"
        print(f"{label:<10}{cells}")
    print(f"{'total':<10}" + "".join(
        f" | {totals[d]:>12.0f} {totals[dtypes[0]] / totals[d] if totals[d] else 0:>5.2f}x {'':>8}" for d in dtypes))
    print("ratio: baseline time / this time (above 1 is faster); rollout rows show the share of questions solved")


def _sft_settings() -> set[str]:
    return {f.name for f in RunSpec.settings("sft")}


def _cell(value, kind: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + ("*" if kind == "rollout" else "")


if __name__ == "__main__":
    main()
