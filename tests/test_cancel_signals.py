"""Cancelling a run by signal: a second signal while the first one's checkpoint is being saved
still ends in a clean exit 130 and a cancelled run, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from engine.core.spec import RunSpec
from engine.core.store import RunStore

LONG_SFT = dict(limit=64, batch_size=1, epochs=20, eval_limit=1, eval_interval=0, log_interval=1, checkpoint_interval=0)


@pytest.mark.parametrize(
    ("kind", "signum"),
    [("sft", signal.SIGTERM), ("sft", signal.SIGINT), ("pipeline", signal.SIGTERM)],
    ids=["sft-sigterm", "sft-sigint", "pipeline-sigterm"],
)
def test_two_signals_20_ms_apart_exit_130_cleanly(tiny_model_dir, db_path, kind, signum):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind=kind, model=tiny_model_dir, **LONG_SFT))
    training_run = run.id if kind == "sft" else run.id + 1  # a pipeline's first stage is its SFT run
    child = subprocess.Popen(
        [sys.executable, "-m", "engine", "start", str(run.id), "--db", str(db_path)],
        env=os.environ | {"OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while "loss" not in store.metric_names(training_run) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, "the run ended before it could be cancelled"
    child.send_signal(signum)
    time.sleep(0.02)
    child.send_signal(signum)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert "Traceback" not in err and "RunCancelled" not in err
    assert store.get_run(run.id).status == "cancelled" and store.get_run(training_run).status == "cancelled"
    assert store.artifact(training_run, "checkpoint") is not None
