"""The `pipeline` run kind: SFT, then expert iteration, each stage its own linked run.

The default path, and why: the base 135M model almost never reasons its way to a correct
answer, so rollouts from it (or from the direct-answer SFT model) yield next to no RFT data.
The first RFT round therefore trains, on top of the SFT adapter, on the task's reference
reasoning ('bootstrap: reference'), for `reference_dataset`'s questions: by default the train
questions interleaved with broad's, whose values and phrasings the generator never makes. On the
train questions alone rft0 recalled the generator's answers and scored a third as well on the
shifted split (README, "More broad questions"). rft0 goes on from the SFT adapter rather than a
new one: side by side on train+broad's chains, that scored higher on valid and level on shifted
and on unseen broad questions (README, "Where rft0 starts"). Each round then rolls out k
samples per question from the latest adapter and fine-tunes that adapter
on the correct ones, at `round_learning_rate` (a quarter of the learning rate unless given): a
round goes on from a trained adapter, often on a few hundred rows, and at the full rate it
undid what rft0 had learnt (README, "Valid and shifted"):

    sft -> rft (reference reasoning) -> [rollout -> rft] x rounds -> grpo (if grpo_steps)

The rounds and GRPO sample `rollout_dataset`'s questions (broad's by default) from the one after
the last that rft0 trains on (`rollout_pool`): on rft0's own questions, the correct chains a
round earns mostly repeat the reference chains rft0 learnt. rft0 takes the reference dataset's
first `reference_limit` questions, by default train+broad's first 10000 (train's 5000 and
broad's first 5000), so the rounds get broad's last 3000. Each round rolls out `rollout_limit`
of them (1000 by default; with k=10 rollouts are the slowest stage on a CPU): round 1 the first
block, each later round the next, back to the first after the last (`round_questions`). On
questions a close adapter already rolled out most chains repeat; new questions earn new chains,
as new reference questions lifted both splits each time they were added (README, "More broad
questions in partial products"). A round whose rollout keeps no rows has nothing to train on:
its RFT is skipped and the next stage goes on from the same adapter (`_skip`). With `rounds` 0
the pipeline ends with rft0.

Teacher and student: with `rollout_model` set to another model, the rollouts sample from that
model (the teacher) and the SFT and RFT stages train `model` (the student) on its correct
chains; the rollout run's spec records the teacher, the pipeline's spec both. The teacher
samples with its own weights and no adapter: the student's LoRA adapter is shaped for the
student's layers and cannot load on another model, and a teacher is chosen for being better
than the student as it is. To roll out from a fine-tuned teacher, merge its adapter into a
model folder (peft's merge_and_unload, then save_pretrained) and name that folder. A fixed
teacher would sample the same chains every round, so round r samples with seed + r - 1.
Chains are stored as text and tokenized by the student, so the two may differ in tokenizer.

Each training stage scores valid and shifted, and at its end the selection split; the pipeline
records every stage's `<stage>_accuracy`, `<stage>_shifted_accuracy` and
`<stage>_selection_accuracy` and logs the stage's scores (per category too) at the stage's index.
Its model is then the training stage best on the selection split (`chosen_model`), not simply
the last: the adapter is copied into the pipeline's folder as its own, and that stage's scores
are logged once more after the stages, so the pipeline's summary is its model's.

Stages are created as runs tagged `pipeline:<id>`, each the child of the previous one (the
first the child of the pipeline run) and executed in this process. Resuming the pipeline
skips completed stages and resumes a stopped one.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.datasets import save_examples
from engine.core.errors import ReasonlabError, RunCancelled
from engine.core.metrics import CORRECT_RATE, MODEL_RUN, RFT_ROWS, SELECTION_ACCURACY, SUCCESS_RATE
from engine.runner import execute
from engine.core.spec import STAGE_DEFAULT, RunSpec
from engine.core.store import RESUMABLE_STATUSES, Run, UnreadableRun
from engine.tasks import get_task
from engine.tasks.base import Example
from engine.training import training_questions


# A training stage's scores: valid's, another held-out split's ('shifted_accuracy'), and either
# by category ('accuracy/family=length').
_SCORE = re.compile(r"(?:[a-z_]+_)?(?:accuracy|answer_rate)(?:/.+)?")


def _scores(run: Run) -> dict[str, float]:
    """A training stage's scores from its summary, overall and by category."""
    return {name: value for name, value in run.summary.items() if _SCORE.fullmatch(name)}


@dataclass(frozen=True)
class Stage:
    label: str
    kind: str
    round: int = 0  # the expert-iteration round; 0 for sft and rft0


def stages(spec: RunSpec) -> list[Stage]:
    plan = [Stage("sft", "sft")]
    if spec.bootstrap == "reference":
        plan.append(Stage("rft0", "rft"))
    for r in range(1, spec.rounds + 1):
        plan += [Stage(f"rollout{r}", "rollout", r), Stage(f"rft{r}", "rft", r)]
    if spec.grpo_steps:
        plan.append(Stage("grpo", "grpo"))
    return plan


def run_pipeline(ctx) -> None:
    spec, store = ctx.spec, ctx.store
    plan = stages(spec)
    # A dataset held out, missing, or with nothing left for the rounds: refused now, not hours later.
    if spec.bootstrap == "reference":
        reference_questions(spec)
    pool = rollout_pool(spec) if any(stage.kind in ("rollout", "grpo") for stage in plan) else range(0)
    tag = f"pipeline:{ctx.run.id}"
    children = sorted(store.list_runs(tag=tag), key=lambda run: run.id)
    for child in children:
        if isinstance(child, UnreadableRun):
            raise ReasonlabError(child.reason)
    parent_id, adapter_run = ctx.run.id, ""
    trained: list[tuple[Stage, Run]] = []  # the training stages and their runs: the candidate models
    # Stages skipped leave no run, so the stored runs are the plan's stages in order, less those.
    # A skip is decided from stored rows alone, so a resumed pipeline skips the same ones.
    stored = iter(children)
    previous: Run | None = None
    for index, stage in enumerate(plan):
        ctx.tracker.progress(index, len(plan))
        ctx.tracker.flush()  # the stage runs for minutes: show the progress now
        if stage.kind == "rft" and stage.round and previous is not None and previous.summary.get(RFT_ROWS) == 0:
            _skip(ctx, stage, previous, adapter_run)
            continue
        child = next(stored, None)
        if child is None:
            child = store.create_run(_stage_spec(ctx, stage, parent_id, adapter_run, pool), parent_id=parent_id, tags=[tag])
        if child.status != "completed":
            if child.status in RESUMABLE_STATUSES and child.spec.processes != spec.processes:
                # The pipeline was resumed on another number of ranks: so is its stopped stage.
                store.change_processes(child.id, spec.processes)
            ctx.log.info("stage %s: run %d", stage.label, child.id)
            child = execute(store, child.id, resume=child.status != "queued", console=ctx.console)
            if child.status == "cancelled":
                raise RunCancelled()
        _record(ctx, index, stage, child)
        parent_id, previous = child.id, child
        if stage.kind != "rollout":
            adapter_run = str(child.id)
            trained.append((stage, child))
    _adopt(ctx, *chosen_model(trained), step=len(plan))
    ctx.tracker.progress(len(plan), len(plan))


def _skip(ctx, stage: Stage, rollout: Run, adapter_run: str) -> None:
    """A round whose rollout kept no rows has nothing to fine-tune on: its RFT is skipped rather
    than failing the pipeline, and the next round (or GRPO) goes on from the same adapter, on
    the next block of questions, where a model that solved none of this block may solve some.
    Why not fail: the stages before it are good models, and the pipeline's model is chosen
    among the stages that trained."""
    ctx.log.info(
        "stage %s skipped: its rollout (run %d) kept no rows, so the next stage goes on from run %s",
        stage.label, rollout.id, adapter_run,
    )


def chosen_model(trained: list[tuple[Stage, Run]]) -> tuple[Stage, Run]:
    """The training stage whose adapter is the pipeline's model: the one that scored best on the
    selection split, the later one on a tie (it trained on more); the last one when none scored
    it (stages run before the split existed). Why not simply the last: a round can lose what
    rft0 learnt (README, "Valid and shifted": rft1 lost 0.065 on valid), and why not valid or
    shifted: both are reported, and a split a choice looks at no longer measures it fairly."""
    scored = [(stage, run) for stage, run in trained if SELECTION_ACCURACY in run.summary]
    if not scored:
        return trained[-1]
    return max(reversed(scored), key=lambda pair: pair[1].summary[SELECTION_ACCURACY])


def _adopt(ctx, stage: Stage, run: Run, step: int) -> None:
    """Make `run`'s adapter the pipeline's own artifact (so `--adapter <pipeline id>` evaluates
    or goes on from the pipeline's model, and deleting a stage keeps it), and log that stage's
    scores at `step`, after the stages, so the pipeline's summary is its model's."""
    artifact = ctx.store.artifact(run.id, "adapter")
    if artifact is None or not Path(artifact["path"]).is_dir():
        raise ReasonlabError(
            f"stage {stage.label} (run {run.id}) has no adapter folder to hand on (was it removed?); "
            "start the pipeline again."
        )
    folder = ctx.run_dir / "adapter"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(artifact["path"], folder)
    ctx.add_artifact("adapter", folder)
    scores = _scores(run)
    ctx.tracker.log(step, **scores, **{MODEL_RUN: run.id})
    ctx.results |= {"model_stage": stage.label, MODEL_RUN: run.id}
    ctx.log.info("the pipeline's model: stage %s (run %d), %s", stage.label, run.id, {
        name: value for name, value in scores.items() if "/" not in name
    })


def _stage_spec(ctx, stage: Stage, previous_id: int, adapter_run: str, pool: range) -> RunSpec:
    """A stage's spec: the settings given to the pipeline, its kind, what it starts from, and for
    a rollout or GRPO the questions of `pool` (`rollout_pool`) it samples. Settings the pipeline
    left unset take the stage kind's own defaults (a rollout's wider batch and sampling
    temperature, SFT's 6 epochs)."""
    spec = ctx.spec
    common = {"kind": stage.kind, "name": f"{ctx.run.label} {stage.label}", "adapter": adapter_run}
    if stage.kind == "rollout":
        offset, limit = round_questions(spec, stage.round, pool)
        batch = {} if spec.rollout_batch_size is STAGE_DEFAULT else {"batch_size": spec.rollout_batch_size}
        rollout = spec.replace(**common, **batch, mode="cot", offset=offset, limit=limit, dataset=sampled_dataset(spec))
        if has_teacher(spec):
            rollout = rollout.replace(model=spec.rollout_model, adapter="", seed=spec.seed + stage.round - 1)
        return rollout
    if stage.kind == "rft" and stage.round:
        return spec.replace(**common, data=str(previous_id), limit=0, learning_rate=spec.round_learning_rate)
    if stage.kind == "rft":
        return spec.replace(**common, data=str(_write_reference_data(ctx)), limit=0)
    if stage.kind == "grpo":
        # The pipeline's learning rate and sampling suit SFT and rollouts, not online RL.
        own = {name: RunSpec.default_for("grpo", name) for name in ("learning_rate", "temperature", "top_p")}
        return spec.replace(
            **common, **own, steps=spec.grpo_steps, dataset=sampled_dataset(spec), offset=pool.start, limit=len(pool)
        )
    return spec.replace(**common)


def round_questions(spec: RunSpec, round_: int, pool: range) -> tuple[int, int]:
    """The (offset, limit) of the questions round `round_` rolls out: the pool cut into blocks of
    --rollout-limit (one block with 0), round r taking block r, back to the first block after the
    last. Why a new block each round: on questions already rolled out from a close adapter, most
    chains repeat those already trained on, while new questions earn new ones."""
    size = min(spec.rollout_limit, len(pool)) if spec.rollout_limit else len(pool)
    block = (round_ - 1) % -(-len(pool) // size)
    start = pool.start + block * size
    return start, min(size, pool.stop - start)


def rollout_pool(spec: RunSpec) -> range:
    """The indices of the sampled dataset's questions the rounds and GRPO draw on: its first
    --limit (all with 0), from the one after the last whose reference reasoning rft0 trains on.
    Why: on rft0's own questions the correct chains a round earns mostly repeat the reference
    chains rft0 learnt, so the round teaches nothing new."""
    task = get_task(spec.task, spec.reasoning)
    sampled = training_questions(task, sampled_dataset(spec), 0)
    stop = min(spec.limit, len(sampled)) if spec.limit else len(sampled)
    trained = {ex.question for ex in reference_questions(spec)} if spec.bootstrap == "reference" else set()
    start = next((i + 1 for i in reversed(range(len(sampled))) if sampled[i].question in trained), 0)
    if start >= stop:
        raise ReasonlabError(
            f"rollout_dataset: rft0 trains on {sampled_dataset(spec)!r} up to its question {start}, so the rounds "
            f"have none of its first {stop} left to roll out; give --rollout-dataset broad, a larger --limit "
            "or a smaller --reference-limit."
        )
    return range(start, stop)


def reference_questions(spec: RunSpec) -> list[Example]:
    """The questions whose reference reasoning rft0 trains on: --reference-dataset's first
    --reference-limit."""
    task = get_task(spec.task, spec.reasoning)
    return training_questions(task, spec.reference_dataset or spec.dataset, spec.reference_limit)


def sampled_dataset(spec: RunSpec) -> str:
    """The questions the pipeline's sampling stages (rollouts, GRPO) draw on."""
    return spec.rollout_dataset or spec.dataset


def has_teacher(spec: RunSpec) -> bool:
    """Whether the rollouts sample from a model other than the one being trained."""
    return spec.rollout_model not in ("", spec.model)


def _write_reference_data(ctx):
    """RFT rows for the reference dataset's questions with the task's reference reasoning."""
    task = get_task(ctx.spec.task, ctx.spec.reasoning)
    path = ctx.run_dir / "reference_rft.json"
    save_examples(path, [Example(ex.question, ex.answer, task.completion(ex, "cot")) for ex in reference_questions(ctx.spec)])
    return path


def _record(ctx, index: int, stage: Stage, child) -> None:
    if stage.kind == "rollout":
        names = (SUCCESS_RATE, CORRECT_RATE, RFT_ROWS)
        values = {name: child.summary[name] for name in names if name in child.summary}
    else:
        values = _scores(child)
    overall = {name: value for name, value in values.items() if "/" not in name}
    ctx.results.update({f"{stage.label}_{name}": value for name, value in overall.items()})
    ctx.results[f"{stage.label}_run"] = child.id
    ctx.results[f"{stage.label}_seconds"] = round(child.duration or 0.0, 1)
    if stage.kind != "rollout":
        ctx.tracker.log(index, **values)
    ctx.log.info("stage %s (run %d) done: %s", stage.label, child.id, overall)
