"""GRPO against one expert-iteration round, from the same adapter and at the same wall-clock budget (issue 16).

Expert iteration (EI): `rollout` samples --samples chains for each of --questions questions of
--dataset (the first, or those after --offset, e.g. questions the start never trained on) from the
starting adapter, then `rft` fine-tunes that adapter on the correct ones for --epochs. EI's wall
time, process start and model loading included, is the budget. GRPO then trains from the same
adapter, on the same questions, for as long: the bench cancels it once the budget is spent, and
the adapter of the checkpoint it saves on stopping is its result. Every run
is started the way the app starts one (`python -m engine start`), so both arms pay the same
process and loading costs, and it inherits this process's CPU affinity and thread settings.

Then each adapter (the start, EI's, GRPO's) is scored with greedy cot on the first --limit
questions of valid and of shifted (eval runs that already exist for the same adapter, split and
limit are reused). It prints accuracy against wall time for both arms, and GRPO's training reward
against wall time. With --ei-eval-every and --grpo-eval-every, each arm also scores the first
--curve-limit questions of valid and of shifted every that many of its steps while it trains, and
the bench prints those curves against the arm's wall time (EI's counts its rollout). Those
scorings take their time out of the arm's budget, so give both arms about as many. From
bench/formats.py's reference arm, on one core:

    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python bench/grpo_vs_rft.py --db runs.db --start 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from engine.core.errors import ReasonlabError
from engine.core.metrics import STEPS_ACCURACY
from engine.core.processes import cancel_run, start_detached
from engine.core.spec import RunSpec
from engine.core.store import Run, RunStore

POLL_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True, help="the run database holding the starting run")
    parser.add_argument("--start", type=int, required=True, help="the completed run whose adapter both arms start from")
    parser.add_argument("--dataset", default="broad", help="the training questions both arms sample on")
    parser.add_argument("--questions", type=int, default=96, help="N questions of --dataset, for both arms")
    parser.add_argument("--offset", type=int, default=0,
                        help="skip the first N questions of --dataset (e.g. those the start trained on)")
    parser.add_argument("--reward", choices=("answer", "steps"), default="answer",
                        help="what earns a chain EI's RFT data and GRPO's reward: the checker's answer, or every step exact too")
    parser.add_argument("--samples", type=int, default=8, help="EI: chains sampled per question (k)")
    parser.add_argument("--epochs", type=int, default=2, help="EI: rft epochs on the correct chains")
    parser.add_argument("--group-size", type=int, default=8, help="GRPO: completions per question (G)")
    parser.add_argument("--questions-per-step", type=int, default=4, help="GRPO: questions per step (B)")
    parser.add_argument("--grpo-lr", type=float, default=RunSpec.default_for("grpo", "learning_rate"),
                        help="GRPO: constant learning rate")
    parser.add_argument("--ei-lr", type=float, default=RunSpec.default_for("rft", "learning_rate"),
                        help="EI: rft learning rate")
    parser.add_argument("--rollout", type=int, default=None,
                        help="EI: reuse this completed rollout run (its duration counts) instead of sampling again")
    parser.add_argument("--limit", type=int, default=200, help="valid and shifted questions scored, each")
    parser.add_argument("--ei-eval-every", type=int, default=0, help="EI: score valid and shifted every N rft steps for a curve (0: no curve)")
    parser.add_argument("--grpo-eval-every", type=int, default=0, help="GRPO: score valid and shifted every N steps for a curve (0: no curve)")
    parser.add_argument("--curve-limit", type=int, default=50, help="valid and shifted questions each arm scores while it trains")
    parser.add_argument("--eval-batch-size", type=int, default=32)
    args = parser.parse_args()
    console = Console(stderr=True)
    try:
        _compare(args, RunStore(args.db), console)
    except ReasonlabError as error:
        console.print(f"error: {error}", highlight=False, markup=False)
        sys.exit(1)


def _compare(args, store: RunStore, console: Console) -> None:
    start = store.get_run(args.start)
    if start.status != "completed" or store.artifact(start.id, "adapter") is None:
        raise ReasonlabError(f"--start: run {start.id} is {start.status} without an adapter; pick a completed training run.")
    common = {"model": start.spec.model, "reasoning": start.spec.reasoning, "adapter": str(start.id)}
    sampled = {"dataset": args.dataset, "offset": args.offset, "limit": args.questions, "temperature": 1.0, "reward": args.reward}

    began = time.perf_counter()
    if args.rollout is None:
        rollout = _run(store, console, RunSpec(
            kind="rollout", num_samples=args.samples, batch_size=args.eval_batch_size, name="ei rollout",
            **common, **sampled,
        ))
        rollout_s = time.perf_counter() - began
    else:
        rollout = store.get_run(args.rollout)
        if rollout.kind != "rollout" or rollout.status != "completed" or rollout.spec.adapter != str(start.id):
            raise ReasonlabError(f"--rollout: run {rollout.id} is not a completed rollout from run {start.id}'s adapter.")
        if rollout.spec.reward != args.reward:
            raise ReasonlabError(f"--rollout: run {rollout.id} kept chains by reward {rollout.spec.reward!r}; pass --reward {rollout.spec.reward}.")
        rollout_s = rollout.duration
    began = time.perf_counter()
    rft = _run(store, console, RunSpec(
        kind="rft", data=str(rollout.id), epochs=args.epochs, learning_rate=args.ei_lr, batch_size=8,
        eval_interval=args.ei_eval_every, eval_limit=_in_run_limit(args, args.ei_eval_every), checkpoint_interval=0, name="ei rft", **common,
    ))
    budget = rollout_s + time.perf_counter() - began
    console.print(f"expert iteration took {budget:.0f} s; GRPO gets as long", highlight=False)

    began = time.perf_counter()
    grpo = _run(store, console, RunSpec(
        kind="grpo", steps=100_000, questions_per_step=args.questions_per_step, group_size=args.group_size,
        learning_rate=args.grpo_lr, lr_schedule="constant", warmup_ratio=0.0, eval_interval=args.grpo_eval_every,
        eval_limit=_in_run_limit(args, args.grpo_eval_every),
        checkpoint_interval=0, log_interval=1, name="grpo", **common, **sampled,
    ), budget=budget)
    grpo_s = time.perf_counter() - began
    grpo_adapter = store.run_folder(grpo) / "checkpoint" / "adapter"

    arms = {"start": (str(start.id), 0.0), "EI (rollout + rft)": (str(rft.id), budget), "GRPO": (str(grpo_adapter), grpo_s)}
    table = Table(
        title=f"from run {start.id} ({start.kind}); {args.dataset} questions {args.offset + 1}-{args.offset + args.questions}; EI: k={args.samples}, "
        f"{args.epochs} epochs at lr {args.ei_lr:g}; GRPO: B={args.questions_per_step}, G={args.group_size}, "
        f"lr {args.grpo_lr:g}; reward: {args.reward}; greedy cot on the first {args.limit} of valid and shifted "
        "(steps: right with every step exact)",
        title_justify="left",
    )
    for column in ("model", "wall s", "valid", "shifted", "valid steps", "shifted steps", "runs"):
        table.add_column(column, justify="left" if column in ("model", "runs") else "right")
    for name, (adapter, seconds) in arms.items():
        scores = {split: _scored(store, console, common | {"adapter": adapter}, split, args) for split in ("valid", "shifted")}
        table.add_row(
            name, f"{seconds:.0f}", *(f"{s.summary['accuracy']:.3f}" for s in scores.values()),
            *(f"{s.summary[STEPS_ACCURACY]:.3f}" if STEPS_ACCURACY in s.summary else "-" for s in scores.values()),
            ",".join(str(s.id) for s in scores.values()),
        )
    out = Console() if Console().is_terminal else Console(width=160)
    out.print(table)
    out.print(
        f"EI: rollout {rollout_s:.0f} s ({rollout.summary['success_rate']:.2f} of questions solved, "
        f"{rollout.summary['correct_rate']:.2f} of chains correct, {rollout.summary['rft_rows']:.0f} rft rows); "
        f"rft {budget - rollout_s:.0f} s.",
        highlight=False,
    )
    out.print(f"GRPO: {len(store.metric_series(grpo.id, 'reward_mean'))} steps in {grpo_s:.0f} s; reward against wall time:")
    for step, seconds, value in _reward_curve(store, grpo):
        out.print(f"  step {step:3d}  {seconds:6.0f} s  reward {value:.3f}", highlight=False)
    for name, run, offset, every in (("EI", rft, rollout_s, args.ei_eval_every), ("GRPO", grpo, 0.0, args.grpo_eval_every)):
        if every:
            out.print(f"{name}: valid and shifted while training (first {args.curve_limit} of each) against wall time:")
            for step, seconds, valid, shifted in _accuracy_curve(store, run, offset):
                out.print(f"  step {step:3d}  {seconds:6.0f} s  valid {valid:.3f}  shifted {shifted:.3f}", highlight=False)


def _run(store: RunStore, console: Console, spec: RunSpec, *, budget: float | None = None) -> Run:
    """Start `spec` as the app would and wait for it; with `budget`, cancel it after that many
    seconds (it saves a checkpoint and ends cancelled)."""
    run = store.create_run(spec)
    console.print(f"run {run.id}: {spec.kind} {spec.name}", highlight=False, markup=False)
    began = time.perf_counter()
    process = start_detached(run.id, store.path, store.run_folder(run) / "log.txt")
    cancelled = False
    while process.poll() is None:
        if budget is not None and not cancelled and time.perf_counter() - began >= budget:
            console.print(cancel_run(store, run.id), highlight=False, markup=False)
            cancelled = True
        time.sleep(POLL_S)
    run = store.get_run(run.id)
    if run.status != ("cancelled" if budget is not None else "completed"):
        raise ReasonlabError(f"run {run.id} ({spec.kind}) ended {run.status}: {run.error}")
    return run


def _scored(store: RunStore, console: Console, settings: dict, split: str, args) -> Run:
    """The completed eval run of these settings, split and limit; started when there is none."""
    spec = RunSpec(kind="eval", mode="cot", dataset=split, limit=args.limit, batch_size=args.eval_batch_size, **settings)
    for run in store.list_runs(kind="eval", status="completed"):
        if isinstance(run, Run) and run.spec == spec:
            return run
    return _run(store, console, spec)


def _reward_curve(store: RunStore, run: Run) -> list[tuple[int, float, float]]:
    """(step, seconds since the run started, reward mean) for each logged step."""
    return [(step, at - run.started_at, value) for step, value, at in store.metric_series_timed(run.id, "reward_mean")]


def _in_run_limit(args, every: int) -> int:
    """The questions of valid and of shifted an arm scores while it trains: --curve-limit with a
    curve, else 1, as the arms' own results come from the separate eval runs."""
    return args.curve_limit if every else 1


def _accuracy_curve(store: RunStore, run: Run, offset: float) -> list[tuple[int, float, float, float]]:
    """(step, seconds since the arm began, valid accuracy, shifted accuracy) at each in-run
    scoring; `offset` is the arm's time before this run (EI's rollout). A cancelled GRPO run has
    no final scoring, so its curve ends at its last interval."""
    shifted = {step: value for step, value in store.metric_series(run.id, "shifted_accuracy")}
    return [
        (step, offset + at - run.started_at, value, shifted[step])
        for step, value, at in store.metric_series_timed(run.id, "accuracy") if step in shifted
    ]


if __name__ == "__main__":
    main()
