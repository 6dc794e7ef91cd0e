"""The run core's promises: no code from files, nothing written or deleted outside a database's
own runs folder, no signal to a process that is not the run's, one process per run, and
effective settings wherever a spec is shown. Real engine processes where a promise is about
processes (kill -9, SIGTERM through `engine cancel`, two concurrent resumes)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.errors import ReasonlabError
from engine.core.processes import Owner, cancel_run
from engine.core.spec import RunSpec
from engine.core.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def _engine(*argv: str, db: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *argv, "--db", str(db)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )


def _wait_until(predicate, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def _steps(store: RunStore, run_id: int, metric: str = "loss") -> list[int]:
    return [step for step, _ in store.metric_series(run_id, metric)]


class _Payload:
    """Unpickling this creates `marker`: proof that a file's code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# -- no code from files ----------------------------------------------------------------------


def test_a_planted_pickle_in_a_checkpoint_never_runs(tmp_path):
    from engine.checkpoint import ADAPTER, has_checkpoint, load_state

    marker = tmp_path / "pwned"
    folder = tmp_path / "checkpoint"
    (folder / ADAPTER).mkdir(parents=True)
    (folder / ADAPTER / "adapter_config.json").write_text("{}")
    payload = pickle.dumps(_Payload(marker))
    (folder / "state.pt").write_bytes(payload)  # the old pickle format: never read
    assert not has_checkpoint(folder)
    (folder / "state.json").write_text(json.dumps({"step": 1}))
    (folder / "state.safetensors").write_bytes(payload)  # a pickle where tensors belong
    with pytest.raises(ReasonlabError, match="checkpoint .* is unreadable"):
        load_state(folder)
    assert not marker.exists()


def test_checkpoint_round_trip_restores_optimiser_scheduler_and_rng(tmp_path):
    import random

    import torch

    from engine.checkpoint import load_state, save_checkpoint

    class Adapter(torch.nn.Linear):
        active_adapter = "default"

        def save_pretrained(self, folder, safe_serialization=True, selected_adapters=None, save_embedding_layers="auto"):
            assert selected_adapters == [self.active_adapter]
            Path(folder).mkdir(parents=True)
            (Path(folder) / "adapter_config.json").write_text("{}")

    model = Adapter(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    for _ in range(3):
        model(torch.randn(4, 3)).sum().backward()
        optimizer.step()
        scheduler.step()
    save_checkpoint(tmp_path / "checkpoint", model, optimizer, scheduler, step=3)
    expected_torch, expected_python = torch.rand(3), random.random()
    torch.manual_seed(123)
    random.seed(123)
    state = load_state(tmp_path / "checkpoint")
    assert state.step == 3 and state.scheduler["last_epoch"] == 3
    assert torch.equal(torch.rand(3), expected_torch) and random.random() == expected_python
    fresh = torch.optim.AdamW(model.parameters(), lr=0.1)
    fresh.load_state_dict(state.optimizer)
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(fresh.state_dict()["state"][0][key], optimizer.state_dict()["state"][0][key])


# -- run folders -----------------------------------------------------------------------------


def test_two_databases_in_one_folder_never_share_a_run_folder(tmp_path):
    a, b = RunStore(tmp_path / "a.db"), RunStore(tmp_path / "b.db")
    run_a, run_b = a.create_run(RunSpec(kind="eval")), b.create_run(RunSpec(kind="eval"))
    assert run_a.id == run_b.id == 1
    assert Path(run_a.run_dir) != Path(run_b.run_dir)
    assert Path(run_a.run_dir).parent == tmp_path / "a.db.runs"


def test_a_row_pointing_outside_its_runs_folder_is_never_written_nor_deleted(tmp_path, capsys):
    store = RunStore(tmp_path / "runs.db")
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    run = store.create_run(RunSpec(kind="eval"))
    store.update_run(run.id, run_dir=str(victim))
    with pytest.raises(ReasonlabError, match="outside this database's runs folder"):
        store.delete_run(run.id)
    with pytest.raises(ReasonlabError, match="outside this database's runs folder"):
        store.claim_run(run.id, Owner.of_this_process(), {}, resume=False)
    assert main(["start", str(run.id), "--db", str(store.path)]) == 1
    assert "outside this database's runs folder" in capsys.readouterr().err
    assert sorted(p.name for p in victim.iterdir()) == ["thesis.tex"]
    assert store.get_run(run.id).status == "queued"
    linked = tmp_path / "runs.db.runs" / "link"
    linked.symlink_to(victim)  # inside by name, outside once resolved
    store.update_run(run.id, run_dir=str(linked))
    with pytest.raises(ReasonlabError, match="outside"):
        store.delete_run(run.id)
    assert (victim / "thesis.tex").exists()
    store.delete_run(run.id, remove_files=False)  # the row alone can always go
    assert store.list_runs() == []


def test_older_databases_move_only_the_run_folders_they_provably_own(tmp_path):
    import sqlite_utils

    from engine.core.schema import migrations

    def old_database(name: str, spec: dict) -> Path:
        path = tmp_path / name
        db = sqlite_utils.Database(path)
        migrations.apply(db, stop_before="m003_run_folders_per_database")
        db["runs"].insert({"kind": "eval", "status": "completed", "spec": json.dumps(spec), "created_at": 1.0,
                           "run_dir": str(tmp_path / "runs" / "1")})
        db.close()
        return path

    shared = tmp_path / "runs" / "1"
    shared.mkdir(parents=True)
    spec_b = {"kind": "eval", "limit": 3}
    (shared / "log.txt").write_text(f"2026-01-01 INFO starting run 1 (eval) {json.dumps(spec_b)}\n")
    a = RunStore(old_database("a.db", {"kind": "eval", "limit": 9}))
    assert shared.exists() and Path(a.get_run(1).run_dir) == tmp_path / "a.db.runs" / "1"
    RunStore(old_database("b.db", spec_b))
    assert not shared.exists()
    assert (tmp_path / "b.db.runs" / "1" / "log.txt").exists()


def test_a_database_moved_with_its_runs_folder_keeps_its_runs(tmp_path, tiny_model_dir, capsys):
    """Trained in one place (a GPU machine, say), the database and its runs folder are moved
    together: the adapter still loads for an eval, and delete removes the new place's folder."""
    import shutil

    there = tmp_path / "gpu-box"
    there.mkdir()
    fast = ["--limit", "8", "--batch-size", "4", "--epochs", "1", "--eval-limit", "1", "--checkpoint-interval", "1"]
    assert main(["sft", "--model", tiny_model_dir, *fast, "--db", str(there / "runs.db")]) == 0
    here = tmp_path / "laptop"
    shutil.move(there, here)
    store = RunStore(here / "runs.db")
    run = store.get_run(1)
    assert Path(run.run_dir) == here / "runs.db.runs" / "1"
    assert {a["kind"]: Path(a["path"]).parent for a in store.artifacts(1)} == {
        "adapter": here / "runs.db.runs" / "1", "checkpoint": here / "runs.db.runs" / "1",
    }
    assert main(["eval", "--model", tiny_model_dir, "--adapter", "1", "--mode", "direct", "--limit", "1",
                 "--max-new-tokens", "2", "--db", str(store.path)]) == 0
    assert store.get_run(2).status == "completed"
    assert main(["delete", "1", "--db", str(store.path)]) == 0
    assert not (here / "runs.db.runs" / "1").exists() and (here / "runs.db.runs" / "2").exists()
    capsys.readouterr()


def test_opening_an_unmoved_database_writes_nothing_and_other_folders_stay_refused(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    kept = store.create_run(RunSpec(kind="eval"))
    legacy = store.create_run(RunSpec(kind="eval"))
    store.update_run(legacy.id, run_dir=str(tmp_path / "runs" / str(legacy.id)))  # not a `<db>.runs` folder
    store.close()
    reopened = RunStore(tmp_path / "runs.db")
    assert reopened.db.conn.total_changes == 0
    assert Path(reopened.get_run(kept.id).run_dir) == tmp_path / "runs.db.runs" / str(kept.id)
    with pytest.raises(ReasonlabError, match="outside this database's runs folder"):
        reopened.run_folder(reopened.get_run(legacy.id))


# -- process identity ------------------------------------------------------------------------


@pytest.fixture
def stranger():
    """A live process unrelated to any run."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def test_a_reused_pid_is_not_the_runs_process(tmp_path, capsys, stranger):
    store = RunStore(tmp_path / "runs.db")
    run = store.create_run(RunSpec(kind="eval", name="ghost"))
    reused = Owner(stranger.pid, Owner.of_pid(stranger.pid).started - 30)  # same pid, other process
    store.update_run(run.id, status="running", pid=reused.pid, pid_started=reused.started)
    assert not reused.is_alive() and not reused.terminate()
    assert main(["cancel", str(run.id), "--db", str(store.path)]) == 0
    assert "already exited" in capsys.readouterr().err
    assert stranger.poll() is None
    assert store.get_run(run.id).status == "failed"
    store.update_run(run.id, status="running")
    assert main(["show", str(run.id), "--db", str(store.path)]) == 0
    assert "failed" in capsys.readouterr().out
    store.update_run(run.id, status="running")
    assert main(["runs", "--db", str(store.path)]) == 0
    listing = capsys.readouterr().out
    assert "failed" in listing and "running" not in listing
    store.update_run(run.id, status="running")
    cancel_run(store, run.id)  # the app's cancel is this same function
    assert stranger.poll() is None


def test_a_queued_run_cancelled_before_its_process_claims_it_stays_cancelled(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run = store.create_run(RunSpec(kind="eval"))
    assert "before it started" in cancel_run(store, run.id)
    with pytest.raises(ReasonlabError, match="already cancelled"):
        store.claim_run(run.id, Owner.of_this_process(), {}, resume=False)


# -- real engine processes -------------------------------------------------------------------


SFT_STEPS = 96  # 48 rows / batch 4 x 8 epochs: long enough that a kill lands mid-run


def _sft_args(model: str) -> list[str]:
    return ["sft", "--model", model, "--limit", "48", "--batch-size", "4", "--epochs", "8",
            "--log-interval", "1", "--checkpoint-interval", "3", "--eval-interval", "0", "--eval-limit", "2"]


def test_kill_9_then_resume_at_once_logs_each_step_once(tmp_path, tiny_model_dir):
    db = tmp_path / "runs.db"
    first = _engine(*_sft_args(tiny_model_dir), db=db)
    store = RunStore(db)
    _wait_until(lambda: len(store.list_runs()) == 1 and len(_steps(store, 1)) >= 5, what="five logged steps")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert store.get_run(1).status == "running"  # nobody reaped it: resume must cope
    resumed = _engine("resume", "1", db=db)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    run = store.get_run(1)
    assert run.status == "completed"
    assert _steps(store, 1) == list(range(1, SFT_STEPS + 1))  # every step once
    samples = store.samples(1)
    assert len({(s["split"], s["step"], s["idx"], s["sample"]) for s in samples}) == len(samples) > 0


def test_cancel_sends_a_real_sigterm_and_resume_finishes(tmp_path, tiny_model_dir):
    db = tmp_path / "runs.db"
    first = _engine(*_sft_args(tiny_model_dir), db=db)
    store = RunStore(db)
    _wait_until(lambda: len(store.list_runs()) == 1 and len(_steps(store, 1)) >= 2, what="two logged steps")
    assert main(["cancel", "1", "--db", str(db)]) == 0
    first.communicate(timeout=120)
    assert first.returncode == 130
    cancelled = store.get_run(1)
    assert cancelled.status == "cancelled" and "resume" in cancelled.error
    assert store.artifact(1, "checkpoint") is not None  # saved on the way out
    assert main(["resume", "1", "--db", str(db)]) == 0
    assert _steps(store, 1) == list(range(1, SFT_STEPS + 1))


def test_two_concurrent_resumes_run_the_run_once(tmp_path, tiny_model_dir):
    db = tmp_path / "runs.db"
    store = RunStore(db)
    run = store.create_run(RunSpec(kind="eval", model=tiny_model_dir, mode="direct", limit=40, batch_size=4, max_new_tokens=4))
    store.mark_finished(run.id, "failed", "as if it had crashed")
    racers = [_engine("resume", str(run.id), db=db) for _ in range(2)]
    results = [(r.wait(timeout=300), r.communicate()[1]) for r in racers]
    assert sorted(code for code, _ in results) == [0, 1], results
    loser_err = next(err for code, err in results if code == 1)
    assert [line for line in loser_err.splitlines() if line.startswith("error:")] != []
    log = (Path(store.get_run(run.id).run_dir) / "log.txt").read_text()
    assert log.count(f"resuming run {run.id}") == 1
    assert store.get_run(run.id).status == "completed"


# -- effective values ------------------------------------------------------------------------


def test_show_displays_effective_values(tmp_path, capsys):
    store = RunStore(tmp_path / "runs.db")
    sft = store.create_run(RunSpec(kind="sft"))
    pipeline = store.create_run(RunSpec(kind="pipeline", epochs=2))
    assert main(["show", str(sft.id), "--db", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert _spec_row(out, "epochs") == "6" and _spec_row(out, "lora_alpha") == "32"
    assert main(["show", str(pipeline.id), "--db", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert _spec_row(out, "epochs") == "2" and _spec_row(out, "batch_size") == "each stage's default"


def _spec_row(out: str, name: str) -> str:
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│┃| ").split("│")]
        if cells and cells[0] == name:
            return cells[1]
    raise AssertionError(f"no {name} row in:\n{out}")


def test_pipeline_stages_take_their_own_kinds_defaults():
    from engine.pipeline import Stage, _stage_spec

    class Ctx:
        spec = RunSpec(kind="pipeline", learning_rate=1e-3, rollout_limit=7)
        run = type("R", (), {"id": 1, "label": "pipeline-1"})()

    rollout = _stage_spec(Ctx, Stage("rollout1", "rollout", 1), 5, "4", range(5000, 8000))
    assert (rollout.batch_size, rollout.temperature, rollout.limit, rollout.mode) == (64, 0.8, 7, "cot")
    sft = _stage_spec(Ctx, Stage("sft", "sft"), 1, "", range(0))
    assert (sft.epochs, sft.learning_rate, sft.batch_size) == (6, 1e-3, 32)


# -- cancelling ------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["config", "weights", "tokenizer"])
def test_a_cancel_while_the_model_loads_cancels_the_run(tiny_model_dir, db_path, monkeypatch, capsys, stage):
    """The signal handler raises RunCancelled wherever the run is; loading wraps the libraries'
    many error types into one line, and must not turn a cancel into a failed run."""
    import transformers

    from engine.core.errors import RunCancelled

    def cancelled(*args, **kwargs):
        raise RunCancelled()

    target = {"config": transformers.AutoConfig, "weights": transformers.AutoModelForCausalLM,
              "tokenizer": transformers.AutoTokenizer}[stage]
    monkeypatch.setattr(target, "from_pretrained", cancelled)
    code = main(["eval", "--model", tiny_model_dir, "--mode", "direct", "--limit", "1", "--max-new-tokens", "2"])
    run = RunStore(db_path).get_run(1)
    assert (code, run.status) == (130, "cancelled"), run.error
    assert "Traceback" not in capsys.readouterr().err
