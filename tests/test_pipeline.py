"""The pipeline on the tiny model: stages as linked runs, each starting from the last adapter,
and a stopped pipeline resuming without redoing or duplicating stages."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import pipeline as pipeline_module
from engine import rollout, training
from engine.core.errors import ReasonlabError, RunCancelled
from engine.datasets import load_examples
from engine.generation import Completion
from engine.model import load_tokenizer
from engine.pipeline import Stage, chosen_model, reference_questions, rollout_pool, round_questions
from engine.runner import execute
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.tasks import get_task


SOLVED = range(0, 8, 2)  # the questions the fake rollouts answer right
ROUND_POOL = range(4, 8)
"""The broad questions the rounds roll out at --limit 8: rft0 trains on train+broad's first 8,
which hold broad's first 4."""
POOL_SOLVED = [i for i in ROUND_POOL if i in SOLVED]


@pytest.fixture
def solving_rollouts(tiny_model_dir, monkeypatch):
    """Rollouts that answer every other question with its reference reasoning and the rest
    wrongly: the tiny model solves nothing."""
    _solve_every_other(tiny_model_dir, monkeypatch, "broad")


def _solve_every_other(tiny_model_dir, monkeypatch, dataset: str, solved=SOLVED) -> None:
    task = get_task("unit_conversion")
    tokenizer = load_tokenizer(tiny_model_dir)
    questions = task.load(dataset)[:8]
    answers = {
        task.prompt(ex.question, "cot", tokenizer): task.completion(ex, "cot") if i in solved else "<answer>-1</answer>"
        for i, ex in enumerate(questions)
    }

    def generate(model, tokenizer, prompts, sampling, *, num_return_sequences, batch_size, keys):
        return [[Completion(answers[p], 10)] * num_return_sequences for p in prompts]

    monkeypatch.setattr(rollout, "generate", generate)


def _pipeline(model: str) -> RunSpec:
    return RunSpec(
        kind="pipeline", model=model, limit=8, batch_size=8, epochs=1, eval_limit=2, eval_interval=0,
        num_samples=2, max_new_tokens=8, rounds=1, checkpoint_interval=0,
    )


def test_pipeline_links_stages_and_chains_adapters(tiny_model_dir, db_path, solving_rollouts):
    store = RunStore(db_path)
    pipeline = execute(store, store.create_run(_pipeline(tiny_model_dir)).id)
    assert pipeline.status == "completed"
    sft, rft0, rollout1, rft1 = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert [r.kind for r in (sft, rft0, rollout1, rft1)] == ["sft", "rft", "rollout", "rft"]
    assert [r.parent_id for r in (sft, rft0, rollout1, rft1)] == [pipeline.id, sft.id, rft0.id, rollout1.id]
    assert all(r.status == "completed" for r in (sft, rft0, rollout1, rft1))
    assert rft0.spec.adapter == str(sft.id) and rollout1.spec.adapter == str(rft0.id)
    assert rft1.spec.adapter == str(rft0.id) and rft1.spec.data == str(rollout1.id)
    assert rollout1.spec.mode == "cot" and rollout1.summary["questions_done"] == len(ROUND_POOL)
    assert rollout1.summary["success_rate"] == len(POOL_SOLVED) / len(ROUND_POOL)
    assert rollout1.summary["rft_rows"] == rft1.summary["train_examples"] == len(POOL_SOLVED)  # k copies deduplicated
    assert rft0.summary["train_examples"] == 8  # reference reasoning for every train question
    assert store.get_run(pipeline.id).summary["accuracy"] == rft1.summary["accuracy"]


@pytest.mark.parametrize("given, round_rate", [({}, 5e-4), ({"round_learning_rate": 3e-4}, 3e-4)])
def test_rounds_train_at_the_round_learning_rate(tiny_model_dir, db_path, solving_rollouts, given, round_rate):
    """rft0 starts its adapter's training at the pipeline's learning rate; a round goes on from
    a trained adapter, at a quarter of it unless told otherwise."""
    store = RunStore(db_path)
    spec = _pipeline(tiny_model_dir).replace(learning_rate=2e-3, **given)
    pipeline = execute(store, store.create_run(spec).id)
    sft, rft0, _, rft1 = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert (sft.spec.learning_rate, rft0.spec.learning_rate, rft1.spec.learning_rate) == (2e-3, 2e-3, round_rate)
    assert store.metric_series(rft1.id, "lr")[0][1] <= round_rate


@pytest.mark.parametrize("given, rollout_batch", [({}, 8), ({"rollout_batch_size": 5}, 5)])
def test_the_rollouts_batch_is_their_own_setting(tiny_model_dir, db_path, solving_rollouts, given, rollout_batch):
    """--rollout-batch-size sets the rollouts' batch alone, so a GPU can generate wide while
    training keeps its batch; unset, the rollouts take --batch-size, as before it existed."""
    store = RunStore(db_path)
    pipeline = execute(store, store.create_run(_pipeline(tiny_model_dir).replace(**given)).id)
    stages = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert [(r.kind, r.spec.batch_size) for r in stages] == [
        ("sft", 8), ("rft", 8), ("rollout", rollout_batch), ("rft", 8)
    ]


def test_the_rollouts_batch_defaults_to_the_rollout_kinds_own():
    assert RunSpec(kind="pipeline").rollout_batch_size is None
    assert RunSpec(kind="pipeline").replace(kind="rollout").batch_size == RunSpec.default_for("rollout", "batch_size") == 64


def test_resumed_pipeline_skips_completed_stages(tiny_model_dir, db_path, solving_rollouts, monkeypatch):
    """Stopped in its second stage (rft0): resuming runs rft0 and the rest, never sft again."""
    from engine import pipeline as pipeline_module

    store = RunStore(db_path)
    real_step, steps = training.optimizer_step, []

    def stop_in_second_stage(*args):
        steps.append(1)
        if len(steps) == 2:  # sft is one step (8 rows, batch 8, 1 epoch)
            raise RunCancelled()
        return real_step(*args)

    monkeypatch.setattr(training, "optimizer_step", stop_in_second_stage)
    pipeline = execute(store, store.create_run(_pipeline(tiny_model_dir)).id)
    assert pipeline.status == "cancelled"
    sft, rft0 = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert (sft.status, rft0.status) == ("completed", "cancelled")

    real_execute, executed = pipeline_module.execute, []

    def recording(store, run_id, **kwargs):
        executed.append(run_id)
        return real_execute(store, run_id, **kwargs)

    monkeypatch.setattr(pipeline_module, "execute", recording)
    assert execute(store, pipeline.id, resume=True).status == "completed"
    stages = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert [r.kind for r in stages] == ["sft", "rft", "rollout", "rft"] and stages[1].id == rft0.id
    assert executed == [r.id for r in stages[1:]] and stages[0] == sft  # sft untouched


def test_two_rounds_chain_rollouts_and_rft(tiny_model_dir, db_path, solving_rollouts):
    store = RunStore(db_path)
    pipeline = execute(store, store.create_run(_pipeline(tiny_model_dir).replace(rounds=2)).id)
    assert pipeline.status == "completed"
    stages = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    sft, rft0, rollout1, rft1, rollout2, rft2 = stages
    assert [r.kind for r in stages] == ["sft", "rft", "rollout", "rft", "rollout", "rft"]
    assert [r.parent_id for r in stages] == [pipeline.id] + [r.id for r in stages[:-1]]
    assert (rollout2.spec.adapter, rft2.spec.adapter, rft2.spec.data) == (str(rft1.id), str(rft1.id), str(rollout2.id))
    assert rft2.summary["train_examples"] == len(POOL_SOLVED)
    # One point per training stage, at its index, then the chosen model's after the stages (the
    # tiny model scores alike everywhere, and a tie goes to the later stage).
    accuracy = store.metric_series(pipeline.id, "accuracy")
    assert [step for step, _ in accuracy] == [0, 1, 3, 5, 6] and accuracy[-1][1] == rft2.summary["accuracy"]
    assert store.get_run(pipeline.id).summary["model_run"] == rft2.id


def test_stopped_pipeline_resumes_the_stopped_stage(tiny_model_dir, db_path, solving_rollouts, monkeypatch):
    store = RunStore(db_path)
    spec = _pipeline(tiny_model_dir).replace(bootstrap="rollout")  # sft -> rollout1 -> rft1
    real_step = training.optimizer_step

    def stop(*args):
        raise RunCancelled()

    monkeypatch.setattr(training, "optimizer_step", stop)
    pipeline = execute(store, store.create_run(spec).id)
    assert pipeline.status == "cancelled"
    (sft,) = store.list_runs(tag=f"pipeline:{pipeline.id}")
    assert sft.status == "cancelled"

    monkeypatch.setattr(training, "optimizer_step", real_step)
    assert execute(store, pipeline.id, resume=True).status == "completed"
    stages = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert [r.kind for r in stages] == ["sft", "rollout", "rft"] and stages[0].id == sft.id
    assert all(r.status == "completed" for r in stages)


def test_a_pipeline_resumed_on_other_processes_resumes_its_stopped_stage_on_them(
    tiny_model_dir, db_path, solving_rollouts, monkeypatch
):
    """`resume --processes N` changes the pipeline's setting; the stage it stopped in follows, as
    the stages still to come do (they are made from the pipeline's spec)."""
    store = RunStore(db_path)
    spec = _pipeline(tiny_model_dir).replace(bootstrap="rollout")

    def stop(*args, **kwargs):
        raise RunCancelled()

    monkeypatch.setattr(training, "optimizer_step", stop)
    pipeline = execute(store, store.create_run(spec).id)
    (sft,) = store.list_runs(tag=f"pipeline:{pipeline.id}")
    assert sft.status == "cancelled" and sft.spec.processes == 1
    store.change_processes(pipeline.id, 2)
    launched: list[int] = []

    def launch(store, run_id, **kwargs):  # what the stage would be launched with
        launched.append(store.get_run(run_id).spec.processes)
        raise RunCancelled()

    monkeypatch.setattr(pipeline_module, "execute", launch)
    assert execute(store, pipeline.id, resume=True).status == "cancelled"
    assert launched == [2] and store.get_run(sft.id).spec.processes == 2


def test_each_round_rolls_out_the_next_rollout_limit_questions(tiny_model_dir, db_path, solving_rollouts):
    store = RunStore(db_path)
    spec = _pipeline(tiny_model_dir).replace(bootstrap="rollout", rollout_limit=3, rounds=3)
    pipeline = execute(store, store.create_run(spec).id)
    assert pipeline.status == "completed"
    stages = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert stages[0].summary["train_examples"] == 8
    rollouts = [r for r in stages if r.kind == "rollout"]
    assert [(r.spec.offset, r.spec.limit, r.summary["questions_done"]) for r in rollouts] == [(0, 3, 3), (3, 3, 3), (6, 2, 2)]
    broad = get_task("unit_conversion").load("broad")
    for rollout_run, block in zip(rollouts, (broad[0:3], broad[3:6], broad[6:8])):
        assert {s["question"] for s in store.samples(rollout_run.id)} == {ex.question for ex in block}


def test_grpo_steps_add_a_last_stage_from_the_last_adapter(tiny_model_dir, db_path, solving_rollouts):
    store = RunStore(db_path)
    spec = _pipeline(tiny_model_dir).replace(bootstrap="rollout", grpo_steps=2)  # sft -> rollout1 -> rft1 -> grpo
    pipeline = execute(store, store.create_run(spec).id)
    assert pipeline.status == "completed"
    sft, rollout1, rft1, grpo = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert grpo.kind == "grpo" and grpo.status == "completed"
    assert grpo.spec.adapter == str(rft1.id) and grpo.parent_id == rft1.id and grpo.spec.steps == 2
    assert (grpo.spec.temperature, grpo.spec.learning_rate) == (1.0, RunSpec.default_for("grpo", "learning_rate"))
    assert [s for s, _ in store.metric_series(grpo.id, "reward_mean")] == [2]  # log_interval 5: the last step
    assert store.get_run(pipeline.id).summary["accuracy"] == grpo.summary["accuracy"]


def test_rollouts_and_grpo_sample_broad_after_rft0s_questions_sft_trains_on_dataset_and_rft0_on_the_reference_dataset(
    tiny_model_dir, db_path, solving_rollouts
):
    store = RunStore(db_path)
    spec = _pipeline(tiny_model_dir).replace(grpo_steps=1)
    pipeline = execute(store, store.create_run(spec).id)
    assert pipeline.status == "completed", pipeline.error
    sft, rft0, rollout1, rft1, grpo = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert (sft.spec.dataset, rollout1.spec.dataset, grpo.spec.dataset) == ("train", "broad", "broad")
    broad = get_task("unit_conversion").load("broad")
    assert {s["question"] for s in store.samples(rollout1.id)} == {broad[i].question for i in ROUND_POOL}
    assert (grpo.spec.offset, grpo.spec.limit) == (ROUND_POOL.start, len(ROUND_POOL))
    assert rft1.summary["train_examples"] == len(POOL_SOLVED)
    # By default the train questions interleaved with broad's, with their reference reasoning.
    assert rft0.summary["train_examples"] == 8
    train_and_broad = get_task("unit_conversion").load("train+broad")[:8]
    assert [(e.question, e.reasoning) for e in load_examples(rft0.spec.data)] == [
        (e.question, get_task("unit_conversion").completion(e, "cot")) for e in train_and_broad
    ]


@pytest.mark.parametrize("setting", ["rollout_dataset", "reference_dataset"])
@pytest.mark.parametrize("held_out", ["valid", "shifted", "selection", "train+shifted"])
def test_a_held_out_sampled_or_reference_dataset_is_refused_before_any_stage(tiny_model_dir, db_path, setting, held_out):
    store = RunStore(db_path)
    run_id = store.create_run(_pipeline(tiny_model_dir).replace(**{setting: held_out})).id
    with pytest.raises(ReasonlabError, match="held out for evaluation"):
        execute(store, run_id)
    pipeline = store.get_run(run_id)
    assert pipeline.status == "failed"
    assert "held out for evaluation" in pipeline.error and "\n" not in pipeline.error
    assert store.list_runs(tag=f"pipeline:{pipeline.id}") == []


def test_the_reference_dataset_mixes_broad_into_train_only():
    """A dataset of the user's own is what rft0 trains on unless they mix it themselves."""
    assert RunSpec(kind="pipeline").reference_dataset == "train+broad"
    assert RunSpec(kind="pipeline", dataset="/data/mine.json").reference_dataset == "/data/mine.json"
    assert RunSpec(kind="pipeline", dataset="broad", reference_dataset="train").reference_dataset == "train"


def test_the_rounds_roll_out_broads_questions_rft0_never_trains_on():
    """At the defaults rft0 takes train's 5000 questions and broad's first 5000; the rounds roll
    out broad's other 3000, a new block of 1000 each round."""
    spec = RunSpec(kind="pipeline")
    assert (spec.rollout_dataset, spec.reference_dataset, spec.reference_limit) == ("broad", "train+broad", 10_000)
    pool = rollout_pool(spec)
    assert pool == range(5000, 8000)
    assert [round_questions(spec, r, pool) for r in (1, 2, 3, 4)] == [(5000, 1000), (6000, 1000), (7000, 1000), (5000, 1000)]
    broad = get_task("unit_conversion").load("broad")
    trained = {ex.question for ex in reference_questions(spec)}
    assert len(trained) == 10_000 and not trained & {broad[i].question for i in pool}
    assert {ex.question for ex in broad[:5000]} <= trained


def test_the_reference_limit_follows_the_limit_and_a_dataset_of_ones_own_is_all_reference():
    assert RunSpec(kind="pipeline", limit=2000).reference_limit == 2000
    assert RunSpec(kind="pipeline", dataset="/data/mine.json").reference_limit == 0
    assert RunSpec(kind="pipeline", dataset="/data/mine.json").rollout_dataset == "/data/mine.json"
    assert rollout_pool(RunSpec(kind="pipeline", limit=2000)) == range(1000, 2000)
    assert rollout_pool(RunSpec(kind="pipeline", bootstrap="rollout", limit=2000)) == range(0, 2000)


def test_rounds_with_nothing_left_to_roll_out_are_refused_before_any_stage(tiny_model_dir, db_path):
    store = RunStore(db_path)
    spec = _pipeline(tiny_model_dir).replace(rollout_dataset="train", reference_dataset="train")
    run_id = store.create_run(spec).id
    with pytest.raises(ReasonlabError, match="rounds have none"):
        execute(store, run_id)
    pipeline = store.get_run(run_id)
    assert pipeline.status == "failed" and "\n" not in pipeline.error
    assert pipeline.error.startswith("rollout_dataset: rft0 trains on 'train' up to its question 8")
    assert store.list_runs(tag=f"pipeline:{pipeline.id}") == []


def test_no_rounds_ends_the_pipeline_with_rft0(tiny_model_dir, db_path):
    store = RunStore(db_path)
    spec = _pipeline(tiny_model_dir).replace(rounds=0, rollout_dataset="train", reference_dataset="train")
    pipeline = execute(store, store.create_run(spec).id)  # nothing left to roll out, and no round asks
    assert pipeline.status == "completed", pipeline.error
    sft, rft0 = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert (sft.kind, rft0.kind, rft0.spec.adapter) == ("sft", "rft", str(sft.id))
    assert store.get_run(pipeline.id).summary["accuracy"] == rft0.summary["accuracy"]


def test_a_round_whose_rollout_kept_no_rows_skips_its_rft_and_the_next_goes_on_from_the_same_adapter(
    tiny_model_dir, db_path, monkeypatch
):
    """Round 1 rolls out broad's questions 4-5 and solves neither, round 2 rolls out 6-7 and
    solves 6: rft1 is skipped (no run), round 2 rolls out from rft0's adapter and trains it. A
    stop in rft2 resumes without rerunning or duplicating a stage."""
    _solve_every_other(tiny_model_dir, monkeypatch, "broad", solved={6})
    real_step, steps = training.optimizer_step, []

    def stop_in_rft2(*args):
        steps.append(1)
        if len(steps) == 3:  # sft and rft0 take one step each (8 rows, batch 8)
            raise RunCancelled()
        return real_step(*args)

    monkeypatch.setattr(training, "optimizer_step", stop_in_rft2)
    store = RunStore(db_path)
    spec = _pipeline(tiny_model_dir).replace(rounds=2, rollout_limit=2)
    pipeline = execute(store, store.create_run(spec).id)
    assert pipeline.status == "cancelled"
    assert [r.kind for r in sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)] == [
        "sft", "rft", "rollout", "rollout", "rft"
    ]
    pipeline = execute(store, pipeline.id, resume=True)
    assert pipeline.status == "completed", pipeline.error
    stages = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    sft, rft0, rollout1, rollout2, rft2 = stages
    assert [r.kind for r in stages] == ["sft", "rft", "rollout", "rollout", "rft"]
    assert (rollout1.summary["rft_rows"], rollout2.summary["rft_rows"]) == (0, 1)
    assert (rollout1.spec.offset, rollout2.spec.offset) == (4, 6)
    assert rollout2.spec.adapter == rft2.spec.adapter == str(rft0.id) and rollout2.parent_id == rollout1.id
    assert (rft2.spec.data, rft2.summary["train_examples"], rft2.status) == (str(rollout2.id), 1, "completed")
    log = (store.run_folder(pipeline) / "log.txt").read_text()
    assert f"stage rft1 skipped: its rollout (run {rollout1.id}) kept no rows" in log
    assert pipeline.summary["model_run"] == rft2.id  # the tiny model scores alike: the later stage


def test_when_no_round_earns_rows_the_pipeline_ends_with_rft0s_model(tiny_model_dir, db_path, monkeypatch):
    _solve_every_other(tiny_model_dir, monkeypatch, "broad", solved=())
    store = RunStore(db_path)
    pipeline = execute(store, store.create_run(_pipeline(tiny_model_dir)).id)
    assert pipeline.status == "completed", pipeline.error
    sft, rft0, rollout1 = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert rollout1.summary["rft_rows"] == 0 and pipeline.summary["model_run"] == rft0.id


class _Scored:
    def __init__(self, **summary):
        self.summary = summary


def test_the_pipelines_model_is_the_stage_best_on_selection_the_later_on_a_tie():
    sft, rft0, rft1 = Stage("sft", "sft"), Stage("rft0", "rft"), Stage("rft1", "rft", 1)
    runs = [_Scored(selection_accuracy=0.1), _Scored(selection_accuracy=0.6), _Scored(selection_accuracy=0.5)]
    assert chosen_model(list(zip((sft, rft0, rft1), runs)))[0] == rft0
    runs[2] = _Scored(selection_accuracy=0.6, accuracy=0.0)
    assert chosen_model(list(zip((sft, rft0, rft1), runs)))[0] == rft1
    # Stages that never scored selection (run before the split existed): the last one.
    unscored = [_Scored(accuracy=0.9), _Scored(accuracy=0.1)]
    assert chosen_model(list(zip((sft, rft0), unscored)))[0] == rft0


def test_the_pipeline_hands_on_the_adapter_of_the_stage_best_on_selection(tiny_model_dir, db_path, solving_rollouts, monkeypatch):
    """rft1 scores lower on the selection split than rft0 here (a round that lost what rft0 had
    learnt): the pipeline's model is rft0's adapter, copied into the pipeline's folder, and an
    eval of `--adapter <pipeline>` scores that adapter."""
    held_out = training.evaluate_held_out

    def rft0_selects_best(ctx, loaded, task, mode, step, final):
        metrics = held_out(ctx, loaded, task, mode, step, final)
        if final:
            metrics["selection_accuracy"] = 0.75 if ctx.spec.name.endswith(" rft0") else 0.25
        return metrics

    monkeypatch.setattr(training, "evaluate_held_out", rft0_selects_best)
    store = RunStore(db_path)
    pipeline = execute(store, store.create_run(_pipeline(tiny_model_dir)).id)
    assert pipeline.status == "completed", pipeline.error
    sft, rft0, rollout1, rft1 = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert (pipeline.summary["model_run"], pipeline.summary["selection_accuracy"]) == (rft0.id, 0.75)
    assert pipeline.summary["accuracy"] == rft0.summary["accuracy"]
    adapter = Path(store.artifact(pipeline.id, "adapter")["path"])
    assert adapter.parent == store.run_folder(pipeline)
    weights = "adapter_model.safetensors"
    assert (adapter / weights).read_bytes() == (Path(store.artifact(rft0.id, "adapter")["path"]) / weights).read_bytes()
    assert (adapter / weights).read_bytes() != (Path(store.artifact(rft1.id, "adapter")["path"]) / weights).read_bytes()
    # The pipeline's model outlives its stage, and evaluates by the pipeline's id.
    store.delete_run(rft0.id)
    spec = RunSpec(kind="eval", model=tiny_model_dir, adapter=str(pipeline.id), mode="direct", limit=2, max_new_tokens=4)
    assert execute(store, store.create_run(spec).id).status == "completed"
