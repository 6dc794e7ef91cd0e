"""Smoke test on the embedded SmolLM2-135M: a few SFT steps and a short rollout."""

from __future__ import annotations

import pytest

from engine.runner import execute
from engine.core.spec import RunSpec
from engine.core.store import RunStore


@pytest.mark.slow
def test_real_model_sft_steps_and_a_short_rollout(db_path):
    store = RunStore(db_path)
    sft = store.create_run(
        RunSpec(kind="sft", limit=8, batch_size=4, epochs=1, eval_limit=2, eval_interval=0, log_interval=1)
    )
    sft = execute(store, sft.id)
    assert sft.status == "completed"
    assert sft.summary["train_examples"] == 8
    assert 130e6 < sft.summary["parameters"] < 140e6 and sft.summary["adapter_mb"] < 20
    assert len(store.metric_series(sft.id, "loss")) == 2

    rollout = store.create_run(
        RunSpec(kind="rollout", limit=2, num_samples=2, max_new_tokens=32, adapter=str(sft.id))
    )
    rollout = execute(store, rollout.id)
    assert rollout.status == "completed"
    assert len(store.samples(rollout.id)) == 4 and store.artifact(rollout.id, "rft_data")
