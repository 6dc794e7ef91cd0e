"""Runs on several ranks through `accelerate launch`, on CPU with gloo and the tiny model.

Every rank process gets an audit hook (a `sitecustomize` on PYTHONPATH) that records each SQLite
file it opens with its RANK, so a test sees which ranks touched the store. Each launch costs a few
seconds of interpreter and torch start-up per rank, more on a loaded machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.distributed import OUTCOME, free_port
from engine.runner import execute

LOSS_TOLERANCE = 1e-4
"""Relative. Two ranks sum the same per-example losses and gradients in another order; in float32
that moves the loss by ~1e-7 relative per step (2e-6 absolute on a loss of 10.7 measured over 8
steps). A real difference in the global batch or the gradient moves it by 1e-2 or more."""

AUDIT_HOOK = """
import os, sys
def _record(event, args):
    if event == "sqlite3.connect" and str(args[0]).endswith("runs.db"):
        with open(os.environ["REASONLAB_TEST_AUDIT"], "a") as out:
            out.write(os.environ.get("RANK", "-") + "\\n")
if os.environ.get("REASONLAB_TEST_AUDIT"):
    sys.addaudithook(_record)
"""


@pytest.fixture
def audited(tmp_path, monkeypatch) -> Path:
    """Rank processes started from here record (by RANK) every runs.db they open."""
    hook_dir = tmp_path / "audit"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
    record = tmp_path / "sqlite_opens.txt"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook_dir), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("REASONLAB_TEST_AUDIT", str(record))
    return record


def _ranks_that_opened_the_store(record: Path) -> set[str]:
    """RANK of each rank process that opened runs.db ('-', a process that is no rank, such as
    the owner, is left out)."""
    return set(record.read_text().split()) - {"-"} if record.exists() else set()


def _sft_spec(model: str, **changes) -> RunSpec:
    settings = dict(
        kind="sft", model=model, limit=16, batch_size=4, epochs=2, eval_limit=4, eval_interval=0,
        log_interval=1, checkpoint_interval=0, device="cpu",
        dtype="float32",  # the tolerance is float32's: bf16 on AMX rounds two ranks' sums 1e-3 apart
    )
    return RunSpec(**settings | changes)


def _losses(store: RunStore, run_id: int) -> list[tuple[int, float]]:
    return store.metric_series(run_id, "loss")


def test_sft_on_two_processes_follows_the_one_process_loss_curve_and_only_rank_0_writes(tiny_model_dir, db_path, audited):
    store = RunStore(db_path)
    one = execute(store, store.create_run(_sft_spec(tiny_model_dir)).id)
    two = execute(store, store.create_run(_sft_spec(tiny_model_dir, processes=2)).id)
    assert one.status == two.status == "completed"
    reference, measured = _losses(store, one.id), _losses(store, two.id)
    assert [s for s, _ in measured] == list(range(1, 9))  # same global batch: 16 rows / 4 per step x 2 epochs
    assert [v for _, v in measured] == pytest.approx([v for _, v in reference], rel=LOSS_TOLERANCE)
    assert _ranks_that_opened_the_store(audited) == {"0"}
    assert store.artifact(two.id, "adapter") is not None
    per_rank = {"samples_per_s/rank=0", "samples_per_s/rank=1", "threads/rank=0", "threads/rank=1"}
    assert per_rank <= set(store.metric_names(two.id))  # what the app's run page shows
    assert not [name for name in store.metric_names(one.id) if "/rank=" in name]
    for split in ("valid", "shifted"):  # the final eval, sharded and gathered
        assert sorted(r["idx"] for r in store.samples(two.id, split=split)) == [0, 1, 2, 3]


def _committed(log: Path) -> Counter:
    """(step, question, sample) triples rank 0 committed, over every attempt in the run's log."""
    keys: Counter = Counter()
    for line in log.read_text().splitlines():
        if " committed " in line:
            keys.update(tuple(k) for k in json.loads(line.split(" committed ", 1)[1]))
    return keys


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["eval", "rollout"])
def test_two_processes_do_every_question_once_even_across_kill_9_and_resume(kind, tiny_model_dir, db_path, tmp_path, audited):
    questions, k = 40, (2 if kind == "rollout" else 1)
    store = RunStore(db_path)
    dataset = "valid" if kind == "eval" else "train"
    per_kind = {"num_samples": k} if kind == "rollout" else {}
    # One question per rank per round (a rollout batch holds k samples of one question): 20 rounds.
    spec = RunSpec(
        kind=kind, model=tiny_model_dir, dataset=dataset, limit=questions, batch_size=k, max_new_tokens=24,
        processes=2, device="cpu", **per_kind,
    )
    run = store.create_run(spec)
    folder = store.run_folder(run)
    with open(tmp_path / "launcher.txt", "wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "engine", "start", str(run.id), "--db", str(db_path)], stdout=out, stderr=subprocess.STDOUT
        )
    _wait_for(lambda: store.done_indices(run.id), 120, "a first committed round")
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()
    # The launcher's death reaches accelerate (parent-death signal), which stops every rank.
    _wait_for(lambda: (folder / OUTCOME).exists(), 60, "the ranks to stop")
    _wait_for(lambda: "rank 1: cancelled" in (tmp_path / "launcher.txt").read_text(), 60, "rank 1 to stop")
    done_before = len(store.done_indices(run.id))
    assert 0 < done_before < questions, "the kill came after the last round; make the run longer"

    assert main(["resume", str(run.id), "--db", str(db_path)]) == 0
    assert store.get_run(run.id).status == "completed"
    expected = {(0, i, j) for i in range(questions) for j in range(k)}
    committed = _committed(folder / "log.txt")
    assert set(committed) == expected  # none lost
    assert set(committed.values()) == {1}  # none done twice: not by two ranks, not again after the resume
    assert len(store.samples(run.id)) == len(expected)
    assert _ranks_that_opened_the_store(audited) == {"0"}
    if kind == "rollout":
        assert {"tokens_per_s/rank=0", "tokens_per_s/rank=1"} <= set(store.metric_names(run.id))


def test_two_machines_on_localhost_complete_one_consistent_sft_run(tiny_model_dir, db_path, tmp_path, audited):
    store = RunStore(db_path)
    run = store.create_run(_sft_spec(tiny_model_dir, machines=2))
    port = str(free_port())
    with open(tmp_path / "machine0.txt", "wb") as out0, open(tmp_path / "machine1.txt", "wb") as out1:
        machine0 = subprocess.Popen(
            [sys.executable, "-m", "engine", "start", str(run.id), "--db", str(db_path), "--main-port", port],
            stdout=out0, stderr=subprocess.STDOUT,
        )
        machine1 = subprocess.Popen(
            [sys.executable, "-m", "engine", "join", "--machines", "2", "--processes", "1", "--machine-rank", "1",
             "--main-ip", "127.0.0.1", "--main-port", port, "--device", "cpu"],
            stdout=out1, stderr=subprocess.STDOUT,
        )
        assert machine0.wait(timeout=300) == 0, (tmp_path / "machine0.txt").read_text()[-2000:]
        assert machine1.wait(timeout=60) == 0, (tmp_path / "machine1.txt").read_text()[-2000:]
    done = store.get_run(run.id)
    assert done.status == "completed"
    assert [s for s, _ in _losses(store, run.id)] == list(range(1, 9))
    assert sorted(r["idx"] for r in store.samples(run.id, split="shifted")) == [0, 1, 2, 3]
    assert Path(store.artifact(run.id, "adapter")["path"], "adapter_config.json").exists()
    assert [r.id for r in store.list_runs()] == [run.id]
    assert "rank 1 of 2" in (tmp_path / "machine1.txt").read_text()  # the other machine did take part
    assert _ranks_that_opened_the_store(audited) == {"0"}


def test_cancel_stops_every_rank_and_a_two_rank_checkpoint_resumes_on_one(tiny_model_dir, db_path, tmp_path):
    from engine.core.processes import cancel_run

    store = RunStore(db_path)
    spec = _sft_spec(tiny_model_dir, checkpoint_interval=2, epochs=6)  # 24 steps: time for the cancel to land
    reference = execute(store, store.create_run(spec).id)
    run = store.create_run(spec.replace(processes=2))
    with open(tmp_path / "launcher.txt", "wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "engine", "start", str(run.id), "--db", str(db_path)], stdout=out, stderr=subprocess.STDOUT
        )
    _wait_for(lambda: store.artifact(run.id, "checkpoint"), 120, "a first checkpoint")
    assert "Asked run" in cancel_run(store, run.id)
    assert launcher.wait(timeout=120) == 130
    assert store.get_run(run.id).status == "cancelled"
    assert "rank 1: cancelled" in (tmp_path / "launcher.txt").read_text()  # the cancel reached the other rank
    stopped_at = max(s for s, _ in _losses(store, run.id))
    assert stopped_at < 24

    assert main(["resume", str(run.id), "--db", str(db_path), "--processes", "1"]) == 0
    assert store.get_run(run.id).spec.processes == 1
    assert [v for _, v in _losses(store, run.id)] == pytest.approx(
        [v for _, v in _losses(store, reference.id)], rel=LOSS_TOLERANCE
    )


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("items", [0, 1, 5, 12])
def test_rounds_and_shares_give_every_item_to_exactly_one_rank(world, items):
    from engine.distributed import Ranks

    def as_rank(rank: int) -> Ranks:
        ranks = Ranks()
        ranks.rank, ranks.world = rank, world
        return ranks

    todo = list(range(100, 100 + items))
    rounds = [list(as_rank(r).rounds(todo, 2)) for r in range(world)]
    assert len({len(per_rank) for per_rank in rounds}) == 1  # every rank reaches the same stop points
    taken = [i for per_rank in rounds for mine, _ in per_rank for i in mine]
    assert sorted(taken) == todo
    assert all(whole == todo[n * 2 * world : (n + 1) * 2 * world] for per_rank in rounds for n, (_, whole) in enumerate(per_rank))
    shared = [i for r in range(world) for i in as_rank(r).share(todo)]
    assert sorted(shared) == todo


def test_a_machine_that_never_joins_fails_the_run_with_one_line_after_the_join_timeout(tiny_model_dir, db_path):
    store = RunStore(db_path)
    run = store.create_run(_sft_spec(tiny_model_dir, machines=2, join_timeout=3))
    port = free_port()
    started = subprocess.run(
        [sys.executable, "-m", "engine", "start", str(run.id), "--db", str(db_path), "--main-port", str(port)],
        capture_output=True, text=True, timeout=300,
    )
    line = (
        "machine 1 of 2 did not join within 3 s: start `python -m engine join --machines 2 --processes 1 "
        f"--machine-rank 1 --main-ip 127.0.0.1 --main-port {port}` on it, or lower --machines"
    )
    assert started.returncode == 1
    assert started.stderr.strip().splitlines() == [f"error: {line}"]
    failed = store.get_run(run.id)
    assert (failed.status, failed.error) == ("failed", line)
    assert [r.id for r in store.list_runs()] == [run.id]


def test_a_joining_machine_whose_machine_0_never_starts_fails_with_one_line():
    port = free_port()
    joined = subprocess.run(
        [sys.executable, "-m", "engine", "join", "--machines", "2", "--processes", "1", "--machine-rank", "1",
         "--main-port", str(port), "--device", "cpu", "--join-timeout", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert joined.returncode == 1
    assert joined.stderr.strip().splitlines() == [
        f"error: the run's machines did not all meet within 2 s at 127.0.0.1:{port}: start the run on machine 0 "
        f"(`python -m engine start RUN --main-ip 127.0.0.1 --main-port {port}`) and join every other machine, "
        "or check --main-ip and --main-port"
    ]


def test_join_refuses_a_join_timeout_out_of_range_in_one_line():
    joined = subprocess.run(
        [sys.executable, "-m", "engine", "join", "--machines", "2", "--processes", "1", "--machine-rank", "1",
         "--join-timeout", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert joined.returncode == 1
    assert joined.stderr.strip().splitlines() == ["error: join_timeout: must be at least 1 (got 0)"]


DIES_EARLY = """
import os
if os.environ.get("RANK") == "1":
    os._exit(3)
"""


def test_a_rank_that_dies_at_start_ends_the_run_in_one_line_without_a_traceback(tiny_model_dir, db_path, tmp_path, monkeypatch):
    hook_dir = tmp_path / "dies"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(DIES_EARLY)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook_dir), os.environ.get("PYTHONPATH", "")]))
    store = RunStore(db_path)
    run = store.create_run(_sft_spec(tiny_model_dir, processes=2))
    started = subprocess.run(
        [sys.executable, "-m", "engine", "start", str(run.id), "--db", str(db_path)], capture_output=True, text=True, timeout=300
    )
    assert started.returncode == 1
    lines = started.stderr.strip().splitlines()
    assert "Traceback" not in started.stderr
    assert len(lines) == 2
    assert lines[0] == "rank 1 exited with code 3; the launcher stopped the other ranks"
    assert lines[1].startswith("error: The ranks exited with code 1 before reporting an outcome")
    assert store.get_run(run.id).status == "failed"
