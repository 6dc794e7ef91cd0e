"""Quality and speed of the default pipeline on the embedded model, on this machine.

Runs a CoT eval of the base model on valid and on shifted, then `python -m engine pipeline`
(sft -> rft on reference reasoning -> [rollout -> rft] x rounds), and prints each stage's
accuracy on valid and on shifted side by side with its wall time, then each stage against the
one before it question by question (gained, lost, exact McNemar p, on both splits), then the
same accuracies by unit family, value range and phrasing. Course targets on valid: CoT >= 0.4, SFT >= 0.6,
RFT >= 0.7; issue 11's goal: the pipeline's model (its training stage best on the selection
split, which neither the choice nor training reports) >= 0.7 on shifted with >= 0.8 on valid. Every setting left out takes
the pipeline's default (RunSpec).

The full run (5000 train questions; rft0 on 10000 of train+broad in partials; k=10 on 1000 broad
questions rft0 never saw) would take about 12 h on 2 CPU cores, projected from the stages' rates.
The README's per-stage table is a reduced run at today's defaults. At --train-limit N, rft0
trains on train+broad's first N and the rounds roll out broad's next N/2:
    .venv/bin/python bench/quality.py --train-limit 1000 --samples 4 --rollout-limit 400 --threads 2
A quick check:
    nice .venv/bin/python bench/quality.py --train-limit 400 --valid-limit 50 --samples 4
A run longer than a sitting: give --db, stop it with `python -m engine cancel N` (it saves a
checkpoint), and later go on with `--db PATH --pipeline N`, which resumes it and reuses the base
model's evals; once it is done the same call prints its tables.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import torch
from collections import defaultdict

from rich.console import Console
from rich.table import Table

from engine.core.errors import ReasonlabError
from engine.core.paired import compare_runs
from engine.runner import execute
from engine.core.spec import RunSpec
from engine.core.store import RunStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--train-limit", type=int, default=0, help="train questions (0: all)")
    parser.add_argument("--valid-limit", type=int, default=0, help="valid, shifted and selection questions scored, each (0: all 200)")
    parser.add_argument("--samples", type=int, default=_default("num_samples"), help="rollout samples per question (k)")
    parser.add_argument("--rollout-limit", type=int, default=_default("rollout_limit"), help="train questions rolled out per round")
    parser.add_argument("--epochs", type=int, default=_default("epochs"), help="0: 6 for SFT, 3 for RFT")
    parser.add_argument("--learning-rate", type=float, default=_default("learning_rate"))
    parser.add_argument("--rounds", type=int, default=_default("rounds"), help="rollout + RFT rounds")
    parser.add_argument("--rollout-model", default="", help="teacher that samples the rollouts (empty: the trained model)")
    parser.add_argument("--reference-dataset", default=_default("reference_dataset"),
                        help="questions whose reference reasoning rft0 trains on")
    parser.add_argument("--reference-limit", type=int, default=None,
                        help="questions of the reference dataset rft0 trains on (default: the pipeline's, --train-limit or 10000)")
    parser.add_argument("--rollout-dataset", default=_default("rollout_dataset"),
                        help="questions the rollouts sample, from the one after the last rft0 trains on")
    parser.add_argument("--batch-size", type=int, default=_default("batch_size"))
    parser.add_argument("--rollout-batch-size", type=int, default=_default("rollout_batch_size"),
                        help="the rollouts' batch alone (e.g. 1024 on a GPU)")
    parser.add_argument("--bootstrap", default=_default("bootstrap"), choices=_choices("bootstrap"))
    parser.add_argument("--reward", default=_default("reward"), choices=_choices("reward"),
                        help="what earns a rollout's chain its place in a round's RFT data")
    parser.add_argument("--device", default=_default("device"), choices=_choices("device"))
    parser.add_argument("--dtype", default=_default("dtype"), choices=_choices("dtype"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--db", type=Path, default=None, help="run database (default: a temporary folder)")
    parser.add_argument("--pipeline", type=int, default=0,
                        help="go on with pipeline run N of --db (resumed when stopped; printed when done) instead of "
                             "starting one; its own settings apply, and the base model's evals already in --db are reused")
    args = parser.parse_args()
    if args.pipeline and args.db is None:
        parser.error("--pipeline needs --db, the database that holds that run")
    if args.threads:
        torch.set_num_threads(args.threads)
    db = args.db or Path(tempfile.mkdtemp(prefix="reasonlab-quality-")) / "runs.db"
    store = RunStore(db)
    console = Console(stderr=True)
    console.print(f"runs in {db}; torch threads: {torch.get_num_threads()}")
    try:
        existing = _existing_pipeline(store, args.pipeline) if args.pipeline else None
        spec = existing.spec if existing else _pipeline_spec(args)
    except ReasonlabError as error:
        console.print(f"error: {error}", highlight=False, markup=False, soft_wrap=True)
        raise SystemExit(2)

    table = Table(title=_title(spec), title_justify="left")
    for column in ("stage", "run", "valid", "shifted", "selection", "valid steps", "shifted steps", "answer_rate", "other", "wall s"):
        table.add_column(column, justify="left" if column in ("stage", "other") else "right")

    began = time.perf_counter()
    base = {}
    for split in ("valid", "shifted"):
        evaluation = RunSpec(kind="eval", model=spec.model, mode="cot", dataset=split, limit=spec.eval_limit,
                             device=spec.device, dtype=spec.dtype)
        base[split] = _finished_or_new(store, evaluation, console)
    _row(table, "cot (base model)", base["valid"], base["shifted"])
    breakdown = {("cot (base model)", split): run.summary for split, run in base.items()}
    scored = [("cot (base model)", list(base.values()))]
    run = existing or store.create_run(spec)  # created now: a queued run may be taken by the app's queue
    if run.status != "completed":
        try:
            run = execute(store, run.id, resume=run.status != "queued", console=console)
        except ReasonlabError as error:  # hours in: still show the stages that finished
            console.print(f"pipeline run {run.id} failed: {error}", highlight=False, markup=False, soft_wrap=True)
            run = store.get_run(run.id)
    for stage in sorted(store.list_runs(tag=f"pipeline:{run.id}"), key=lambda r: r.id):
        label = stage.name.split()[-1]
        _row(table, label, stage)
        if stage.kind != "rollout" and stage.status == "completed":
            breakdown[(label, "valid")] = stage.summary
            breakdown[(label, "shifted")] = _unprefixed(stage.summary, "shifted_")
            scored.append((label, [stage]))
    if "model_run" in run.summary:
        chosen = store.get_run(int(run.summary["model_run"]))
        table.add_row("the pipeline's model", str(chosen.id), *(_score(run.summary.get(name)) for name in (
            "accuracy", "shifted_accuracy", "selection_accuracy")), "", "", "", f"{chosen.name.split()[-1]}, chosen on selection", "")
    table.add_row("pipeline", str(run.id), "", "", "", "", "", "", run.status, f"{run.duration or 0:.0f}")
    table.add_row("this call", "", "", "", "", "", "", "", "", f"{time.perf_counter() - began:.0f}")
    out = Console()
    out.print(table)
    out.print(_paired_table(store, scored))
    for category_table in _breakdown_tables(breakdown):
        out.print(category_table)


def _pipeline_spec(args) -> RunSpec:
    """The pipeline the arguments describe; scored at each stage's end only, on --valid-limit."""
    reference = {} if args.reference_limit is None else {"reference_limit": args.reference_limit}
    return RunSpec(
        kind="pipeline", model=args.model, limit=args.train_limit, eval_limit=args.valid_limit,
        eval_interval=0, num_samples=args.samples, rollout_limit=args.rollout_limit, epochs=args.epochs,
        learning_rate=args.learning_rate, rounds=args.rounds, batch_size=args.batch_size,
        rollout_batch_size=args.rollout_batch_size,
        bootstrap=args.bootstrap, reward=args.reward, rollout_model=args.rollout_model,
        reference_dataset=args.reference_dataset, rollout_dataset=args.rollout_dataset, **reference,
        device=args.device, dtype=args.dtype,
    )


def _existing_pipeline(store: RunStore, run_id: int):
    """Pipeline run `run_id` of the database, to go on with: a full pipeline runs for hours, on a
    CPU longer than one sitting, and `engine resume` continues it where it stopped."""
    store.reap_dead_runs()  # the store's one rule for a live run: after it, "running" means live
    run = store.get_run(run_id)
    if run.kind != "pipeline":
        raise ReasonlabError(f"run {run_id} ({run.kind}) is not a pipeline; give a pipeline's id with --pipeline.")
    if run.status == "running":
        raise ReasonlabError(
            f"pipeline run {run_id} is running in process {run.pid}; wait for it to end, or stop it with "
            f"`python -m engine cancel {run_id}`, then go on with it here."
        )
    return run


def _finished_or_new(store: RunStore, spec: RunSpec, console: Console):
    """A completed run of `spec` already in the database (a bench gone on with keeps its base
    scores), else a new one, run now."""
    done = [run for run in store.list_runs(kind="eval", status="completed") if getattr(run, "spec", None) == spec]
    return done[0] if done else execute(store, store.create_run(spec).id, console=console)


def _title(spec: RunSpec) -> str:
    """The pipeline's settings, from its spec: the arguments when the bench starts it, the run's
    own when it goes on with one."""
    teacher = f", rollouts from {spec.rollout_model}" if spec.rollout_model else ""
    return (
        f"quality: train {spec.limit or 'all'}, valid, shifted and selection {spec.eval_limit or 'all'}, "
        f"k={spec.num_samples} on {spec.rollout_limit or 'all'}, epochs {spec.epochs or 'sft 6 / rft 3'}, "
        f"lr {spec.learning_rate:g}, rounds {spec.rounds}{teacher}, rft0 on {spec.reference_dataset}"
        f"[:{spec.reference_limit}], rollouts on {spec.rollout_dataset}, reward {spec.reward}; "
        "steps: right with every step exact"
    )


def _default(name: str):
    return RunSpec.default_for("pipeline", name)


def _choices(name: str) -> tuple[str, ...]:
    return next(f for f in RunSpec.settings("pipeline") if f.name == name).metadata["choices"]


def _row(table: Table, label: str, run, shifted_run=None) -> None:
    """One stage: a training run scores both splits itself; the base model's needs two eval runs
    (`run` on valid, `shifted_run`), whose wall times add up."""
    s = run.summary
    if run.kind == "rollout":
        other = f"success {s.get('success_rate', 0):.2f}, correct {s.get('correct_rate', 0):.2f}, " \
                f"{s.get('rft_rows', 0):.0f} rows, {s.get('tokens_per_s', 0):.0f} tok/s"
        cells = ("",) * 6
    else:
        shifted = shifted_run.summary if shifted_run else _unprefixed(s, "shifted_")
        cells = tuple(_score(scores.get(name)) for name, scores in (
            ("accuracy", s), ("accuracy", shifted), ("selection_accuracy", s), ("steps_accuracy", s),
            ("steps_accuracy", shifted), ("answer_rate", s),
        ))
        other = f"{s['samples_per_s']:.1f} samples/s" if "samples_per_s" in s else f"{s.get('tokens_per_s', 0):.0f} tok/s"
    runs = f"{run.id}+{shifted_run.id}" if shifted_run else str(run.id)
    seconds = sum(r.duration or 0 for r in (run, shifted_run) if r is not None)
    table.add_row(label, runs, *cells, f"{run.status}; {other}", f"{seconds:.0f}")


def _paired_table(store: RunStore, scored: list[tuple[str, list]]) -> Table:
    """Each scored stage against the one before it, question by question on each split: a
    change of a few points on 200 questions may be noise; the paired counts tell."""
    table = Table(title="each stage against the one before, paired (gained / lost, exact McNemar p)", title_justify="left")
    for column in ("stage", "against", "split", "questions", "gained", "lost", "p"):
        table.add_column(column, justify="left" if column in ("stage", "against", "split") else "right")
    for (before, earlier), (label, later) in zip(scored, scored[1:]):
        for paired in (p for a in earlier for b in later for p in compare_runs(store, a.id, b.id)):
            table.add_row(label, before, paired.split, str(paired.questions), str(paired.gained),
                          str(paired.lost), f"{paired.p_value:.3g}")
    return table


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _unprefixed(summary: dict[str, float], prefix: str) -> dict[str, float]:
    return {name[len(prefix):]: value for name, value in summary.items() if name.startswith(prefix)}


def _numbers_first(value: str) -> tuple[int, float, str]:
    """Ranges by their first number ('1-10' before '11-99' before '100-9999'), then words."""
    number = re.match(r"\d+(?:\.\d+)?", value)
    return (0, float(number.group()), value) if number else (1, 0.0, value)


def _breakdown_tables(breakdown: dict[tuple[str, str], dict[str, float]]) -> list[Table]:
    """One table per category (family, values, phrasing): a row per stage and split, a column
    per category value, from the summaries' 'accuracy/<category>=<value>' metrics."""
    columns: dict[str, set[str]] = defaultdict(set)
    for summary in breakdown.values():
        for name in summary:
            if name.startswith("accuracy/"):
                category, _, value = name.removeprefix("accuracy/").partition("=")
                columns[category].add(value)
    tables = []
    for category, values in columns.items():
        table = Table(title=f"accuracy by {category}", title_justify="left")
        table.add_column("stage")
        table.add_column("split")
        ordered = sorted(values, key=_numbers_first)
        for value in ordered:
            table.add_column(value, justify="right")
        for (stage, split), summary in breakdown.items():
            table.add_row(stage, split, *(_score(summary.get(f"accuracy/{category}={v}")) for v in ordered))
        tables.append(table)
    return tables


if __name__ == "__main__":
    main()
