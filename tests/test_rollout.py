"""Rollouts on the tiny random model: every sample stored, RFT data written, crash-safe resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from engine import rollout
from engine.cli import main
from engine.runner import execute
from engine.core.spec import RunSpec
from engine.core.store import RunStore

QUESTIONS, K = 6, 2


def _spec(model: str, questions: int = QUESTIONS, max_new_tokens: int = 6, batch_size: int = 4) -> RunSpec:
    # batch 4 with k=2: two questions per generation batch and per commit
    return RunSpec(
        kind="rollout", model=model, limit=questions, num_samples=K, batch_size=batch_size,
        max_new_tokens=max_new_tokens, temperature=0.8, top_p=0.95,
    )


def _outputs(store: RunStore, run_id: int) -> dict[tuple[int, int], str]:
    return {(r["idx"], r["sample"]): r["output"] for r in store.samples(run_id)}


def _assert_complete(store: RunStore, run_id: int, questions: int = QUESTIONS) -> None:
    rows = store.samples(run_id)
    keys = [(r["idx"], r["sample"]) for r in rows]
    assert sorted(keys) == [(i, j) for i in range(questions) for j in range(K)]  # none lost, none twice


def test_rollout_stores_every_sample_and_writes_rft_data(tiny_model_dir, db_path):
    assert main(["rollout", "--model", tiny_model_dir, "--limit", "6", "--num-samples", "2", "--batch-size", "4", "--max-new-tokens", "6"]) == 0
    store = RunStore(db_path)
    run = store.list_runs()[0]
    _assert_complete(store, run.id)
    assert run.summary["questions_done"] == QUESTIONS
    assert {"success_rate", "correct_rate", "tokens_per_s"} <= set(run.summary)
    assert json.load(open(store.artifact(run.id, "rft_data")["path"])) == []  # a random model solves nothing


def test_rollout_crashing_mid_run_resumes_without_duplicates_or_losses(tiny_model_dir, db_path, monkeypatch):
    store = RunStore(db_path)
    run = store.create_run(_spec(tiny_model_dir))
    real_generate, calls = rollout.generate, []

    def crash_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(rollout, "generate", crash_on_second_batch)
    with pytest.raises(RuntimeError):
        execute(store, run.id)
    assert store.done_indices(run.id) == {0, 1}  # the first batch was committed
    committed = {(r["idx"], r["sample"]): r["output"] for r in store.samples(run.id)}

    monkeypatch.setattr(rollout, "generate", real_generate)
    calls.clear()
    assert execute(store, run.id, resume=True).status == "completed"
    _assert_complete(store, run.id)
    after = _outputs(store, run.id)
    assert all(after[key] == output for key, output in committed.items())  # committed rows untouched
    uninterrupted = execute(store, store.create_run(_spec(tiny_model_dir)).id)
    assert after == _outputs(store, uninterrupted.id)  # the resumed questions drew the same samples


def test_rollout_samples_depend_on_the_question_not_its_batch(tiny_model_dir, db_path):
    """Seeded by question index: two questions per batch or four, each question gets the same
    samples, and a question's k samples differ from each other. At temperature 0.8 the tiny model
    starts its answer with the same digit 0.8 of the time, so whether two samples differ would
    turn on the draw; at 2 it does not. In fp32: bf16 kernels may round a row differently in a
    batch of another shape (tests/test_generation.py)."""
    store = RunStore(db_path)
    spec = _spec(tiny_model_dir).replace(temperature=2.0, dtype="float32")
    narrow = execute(store, store.create_run(spec.replace(batch_size=4)).id)
    wide = execute(store, store.create_run(spec.replace(batch_size=8)).id)
    samples = _outputs(store, narrow.id)
    assert samples == _outputs(store, wide.id)
    assert sum(samples[(i, 0)] != samples[(i, 1)] for i in range(QUESTIONS)) >= 2


def test_rollout_killed_with_sigkill_resumes(tiny_model_dir, db_path):
    """A real kill -9 of the process between commits: resume finishes the rest."""
    store = RunStore(db_path)
    run = store.create_run(_spec(tiny_model_dir, questions=12, max_new_tokens=24))
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "engine", "start", str(run.id), "--db", str(db_path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not store.done_indices(run.id) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert store.get_run(run.id).status == "running", "the child finished before it could be killed"
    assert 0 < len(store.done_indices(run.id)) < 12
    assert store.reap_dead_runs() == [run.id]
    assert execute(store, run.id, resume=True).status == "completed"
    _assert_complete(store, run.id, questions=12)


def test_correct_examples_are_deduplicated_by_text(db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="rollout"))
    row = {"question": "Convert 1 km to m.", "target": 1000.0, "answer": 1000.0}
    store.add_samples(
        run.id,
        [
            row | {"idx": 0, "sample": 0, "output": "1 km = 1000 m. <answer>1000</answer>", "correct": True},
            row | {"idx": 0, "sample": 1, "output": "1 km = 1000 m. <answer>1000</answer>", "correct": True},
            row | {"idx": 0, "sample": 2, "output": "1 * 1000 = 1000. <answer>1000</answer>", "correct": True},
            row | {"idx": 0, "sample": 3, "output": "<answer>7</answer>", "answer": 7.0, "correct": False},
        ],
    )
    examples = rollout.correct_examples(store, run)
    assert [e.reasoning for e in examples] == [
        "1 km = 1000 m. <answer>1000</answer>", "1 * 1000 = 1000. <answer>1000</answer>"
    ]
