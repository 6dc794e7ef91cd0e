"""Eval runs through the runner: resuming after partial progress generates only the questions
left and ends with the rows an uninterrupted run has."""

from __future__ import annotations

import pytest

from engine import evaluation
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.model import load_tokenizer
from engine.runner import execute
from engine.tasks import get_task


def _spec(model: str) -> RunSpec:
    # Sampled, so a redone question or a question seeded by its batch position would show.
    return RunSpec(kind="eval", model=model, dataset="valid", mode="direct", limit=6, batch_size=2, max_new_tokens=6, temperature=0.8)


def _outputs(store: RunStore, run_id: int) -> dict[int, str]:
    return {r["idx"]: r["output"] for r in store.samples(run_id)}


def test_resumed_eval_never_redoes_a_finished_question(tiny_model_dir, db_path, monkeypatch):
    store = RunStore(db_path)
    reference = execute(store, store.create_run(_spec(tiny_model_dir)).id)
    assert reference.status == "completed"

    real_generate, asked = evaluation.generate, []

    def recording(model, tokenizer, prompts, *args, **kwargs):
        asked.append(prompts)
        if crash_on_second_batch and len(asked) == 2:
            raise RuntimeError("simulated crash")
        return real_generate(model, tokenizer, prompts, *args, **kwargs)

    monkeypatch.setattr(evaluation, "generate", recording)
    run = store.create_run(_spec(tiny_model_dir))
    crash_on_second_batch = True
    with pytest.raises(RuntimeError):
        execute(store, run.id)
    assert store.done_indices(run.id) == {0, 1}

    asked.clear()
    crash_on_second_batch = False
    assert execute(store, run.id, resume=True).status == "completed"
    task, tokenizer = get_task("unit_conversion"), load_tokenizer(tiny_model_dir)
    left = [task.prompt(ex.question, "direct", tokenizer) for ex in task.load("valid")[2:6]]
    assert [p for batch in asked for p in batch] == left  # questions 2-5, each once, none of 0-1
    assert _outputs(store, run.id) == _outputs(store, reference.id)
    assert store.get_run(run.id).summary["accuracy"] == reference.summary["accuracy"]


def test_sampled_eval_draws_by_question_whatever_the_batch(tiny_model_dir, db_path):
    """Each question's sample is keyed by its index, not its place in a batch of 2 or 4."""
    store = RunStore(db_path)
    narrow = execute(store, store.create_run(_spec(tiny_model_dir)).id)
    wide = execute(store, store.create_run(_spec(tiny_model_dir).replace(batch_size=4)).id)
    assert _outputs(store, narrow.id) == _outputs(store, wide.id)
    assert len(set(_outputs(store, narrow.id).values())) >= 4  # questions drew different samples
