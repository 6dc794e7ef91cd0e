"""Teacher and student: a pipeline whose rollouts sample from one local model (the teacher, no
adapter) while its SFT and RFT stages train another (the student), recorded in the runs."""

from __future__ import annotations

import pytest
import torch

from engine import rollout
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.generation import Completion
from engine.model import load_model
from engine.pipeline import has_teacher
from engine.runner import execute
from engine.tasks import get_task
from engine.tiny import save_tiny_model


def _first_weights(model) -> torch.Tensor:
    return model.get_input_embeddings().weight[:4, :8].detach().clone()


@pytest.fixture
def teacher_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-teacher"), seed=1)


@pytest.fixture
def sampled_by(tiny_model_dir, monkeypatch):
    """Rollouts answer with the reference reasoning (a random model solves nothing) and record,
    per call, the sampling model's first weights and whether it carries a LoRA adapter."""
    task = get_task("unit_conversion")
    tokenizer = load_model(tiny_model_dir).tokenizer
    answers = {task.prompt(ex.question, "cot", tokenizer): task.completion(ex, "cot") for ex in task.load("broad")[:8]}
    calls: list[tuple[torch.Tensor, bool, int]] = []

    def generate(model, tokenizer, prompts, sampling, *, num_return_sequences, batch_size, keys=None):
        calls.append((_first_weights(model), hasattr(model, "peft_config"), sampling.seed))
        return [[Completion(answers[p], 10)] * num_return_sequences for p in prompts]

    monkeypatch.setattr(rollout, "generate", generate)
    return calls


def _pipeline(student: str, teacher: str) -> RunSpec:
    return RunSpec(
        kind="pipeline", model=student, rollout_model=teacher, bootstrap="rollout", rounds=2, limit=4,
        batch_size=8, epochs=1, eval_limit=2, eval_interval=0, num_samples=2, max_new_tokens=8, checkpoint_interval=0,
    )


def test_rollouts_sample_from_the_teacher_and_rft_trains_the_student(tiny_model_dir, teacher_dir, db_path, sampled_by):
    store = RunStore(db_path)
    pipeline = execute(store, store.create_run(_pipeline(tiny_model_dir, teacher_dir)).id)
    assert pipeline.status == "completed"
    assert (pipeline.spec.model, pipeline.spec.rollout_model) == (tiny_model_dir, teacher_dir)
    sft, rollout1, rft1, rollout2, rft2 = sorted(store.list_runs(tag=f"pipeline:{pipeline.id}"), key=lambda r: r.id)
    assert [r.kind for r in (sft, rollout1, rft1, rollout2, rft2)] == ["sft", "rollout", "rft", "rollout", "rft"]

    # The teacher samples with its own weights and no adapter, a new seed each round.
    for run, seed in ((rollout1, 0), (rollout2, 1)):
        assert (run.spec.model, run.spec.adapter, run.spec.seed) == (teacher_dir, "", seed)
    teacher = _first_weights(load_model(teacher_dir).model)
    student = _first_weights(load_model(tiny_model_dir).model)
    assert not torch.equal(teacher, student)
    assert [seed for *_, seed in sampled_by] == [0, 1]  # one batch per round: its seed is the spec's
    assert all(torch.equal(weights, teacher) and not adapted for weights, adapted, _ in sampled_by)

    # The student trains on the teacher's chains, its adapter carried from stage to stage.
    for run in (sft, rft1, rft2):
        assert run.spec.model == tiny_model_dir and run.status == "completed"
    assert (rft1.spec.adapter, rft1.spec.data) == (str(sft.id), str(rollout1.id))
    assert (rft2.spec.adapter, rft2.spec.data) == (str(rft1.id), str(rollout2.id))
    assert rft1.summary["train_examples"] == 4 and rollout1.parent_id == sft.id and rft1.parent_id == rollout1.id

    summary = store.get_run(pipeline.id).summary
    assert summary["accuracy"] == rft2.summary["accuracy"]
    assert summary["shifted_accuracy"] == rft2.summary["shifted_accuracy"]


def test_a_rollout_model_equal_to_the_trained_one_is_no_teacher():
    spec = RunSpec(kind="pipeline", model="a")
    assert not has_teacher(spec)
    assert not has_teacher(spec.replace(rollout_model="a"))
    assert has_teacher(spec.replace(rollout_model="b"))
