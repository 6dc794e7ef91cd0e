"""The queue and sweeps: runs wait as `queued` for one of N slots and start in queue order, with
no app and no daemon; a waiting run can be cancelled or moved up; `engine queue` shows it; a
sweep queues a grid of runs. Real detached engine processes where the promise is about them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.errors import ReasonlabError, SpecError
from engine.core.processes import Owner, start_detached
from engine.core.queue import default_slots, first_waiting_ahead, slot_count, try_slot, wait_for_slot
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.core.sweep import sweep_specs

ROOT = Path(__file__).resolve().parents[1]


def _wait_until(predicate, timeout: float = 300.0, what: str = "") -> None:
    """A guard against hanging, not a speed check."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.1)


def _log(store: RunStore, run_id: int) -> str:
    path = Path(store.get_run(run_id).run_dir) / "log.txt"
    return path.read_text() if path.exists() else ""


@pytest.fixture
def engine_env(monkeypatch):
    """Engine processes started from this test import this checkout and use one thread."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(ROOT)


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


@pytest.fixture
def strangers():
    """Two live processes unrelated to any run, and to each other."""
    processes = [_sleeper(), _sleeper()]
    yield processes
    for process in processes:
        process.kill()
        process.wait()


# -- real processes, no app ------------------------------------------------------------------


def test_a_sweep_of_six_runs_in_one_slot_runs_one_at_a_time_in_queue_order(tmp_path, tiny_model_dir, engine_env, capsys):
    db = str(tmp_path / "runs.db")
    assert main(["queue", "--slots", "1", "--db", db]) == 0
    capsys.readouterr()
    store = RunStore(db)
    held = try_slot(store)  # the test holds the one slot until every run waits and one was moved
    assert held is not None
    code = main(["sweep", "eval", "--model", tiny_model_dir, "--limit", "4", "--max-new-tokens", "4",
                 "--mode", "direct", "--seed", "0..5", "--json", "--db", db])
    assert code == 0
    sweep = json.loads(capsys.readouterr().out)
    ids = sweep["run_ids"]
    assert len(ids) == 6
    assert all(store.get_run(i).tags == (f"sweep:{sweep['sweep']}",) for i in ids)
    assert [store.get_run(i).spec.seed for i in ids] == list(range(6))
    _wait_until(lambda: all("waits for a slot" in _log(store, i) for i in ids), what="six waiting processes")
    assert store.reap_dead_runs() == [] and {store.get_run(i).status for i in ids} == {"queued"}

    assert main(["queue", "move", str(ids[-1]), "--to", "1", "--db", db]) == 0
    capsys.readouterr()
    assert main(["queue", "--db", db]) == 0
    shown = capsys.readouterr().out
    queued_rows = [line.split() for line in shown.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert [int(row[1]) for row in queued_rows] == [ids[-1], *ids[:-1]]
    assert all("pid" in row for row in queued_rows)
    assert max(len(line) for line in shown.splitlines()) <= 80

    held.release()
    _wait_until(lambda: all(store.get_run(i).status not in ("queued", "running") for i in ids), what="six final runs")
    runs = sorted((store.get_run(i) for i in ids), key=lambda run: run.started_at)
    assert [run.status for run in runs] == ["completed"] * 6, [run.error for run in runs]
    assert [run.id for run in runs] == [ids[-1], *ids[:-1]]
    for earlier, later in zip(runs, runs[1:]):
        assert earlier.finished_at <= later.started_at, (earlier.id, later.id)
    assert {store.db.execute("select slot from runs where id = ?", [i]).fetchone()[0] for i in ids} == {1}


def test_cancelling_a_waiting_run_ends_its_process_without_running_it(tmp_path, engine_env, strangers):
    store = RunStore(tmp_path / "runs.db")
    held = try_slot(store)
    ahead = store.create_run(RunSpec(kind="eval"))
    store.register_waiter(ahead.id, Owner.of_pid(strangers[0].pid))  # a live waiter ahead: ours is not next
    run = store.create_run(RunSpec(kind="eval", model="never-loaded"))
    process = start_detached(run.id, store.path, store.run_folder(run) / "log.txt")
    _wait_until(lambda: "waits for a slot" in _log(store, run.id), what="a waiting process")
    assert store.reap_dead_runs() == []
    assert main(["runs", "--db", str(store.path)]) == 0
    assert store.get_run(run.id).status == "queued"
    assert main(["cancel", str(run.id), "--db", str(store.path)]) == 0
    assert process.wait(timeout=60) == 130
    cancelled = store.get_run(run.id)
    assert cancelled.status == "cancelled" and cancelled.started_at is None
    log = _log(store, run.id)
    assert f"run {ahead.id} starts before it" in log and "did not start: it is cancelled" in log
    assert store.get_run(ahead.id).status == "queued"
    held.release()


def test_a_foreground_run_waits_for_a_slot_and_ctrl_c_cancels_it(tmp_path, engine_env):
    store = RunStore(tmp_path / "runs.db")
    held = try_slot(store)
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "eval", "--model", "never-loaded", "--db", str(store.path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Ctrl-C as a terminal delivers it, even when this suite runs as a background job, whose
        # shell makes it ignore SIGINT (a child that inherits that never sees the signal).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    said = []
    while not any("waits for a slot" in line for line in said):  # told why, then Ctrl-C (a signal sent
        said.append(process.stderr.readline())  # before it would race the message)
        assert said[-1], f"the engine exited while it should wait: {''.join(said)}"
    assert store.get_run(1).status == "queued" and store.get_run(1).owner == Owner.of_pid(process.pid)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    err = "".join(said) + err
    assert process.returncode == 130, err
    assert "did not start: it is cancelled" in err and "Traceback" not in err
    assert store.get_run(1).status == "cancelled" and store.get_run(1).started_at is None
    held.release()


# -- queue order (in-process waiters) --------------------------------------------------------


def test_moving_a_run_up_changes_the_start_order(tmp_path):
    path = tmp_path / "runs.db"
    store = RunStore(path)
    ids = [store.create_run(RunSpec(kind="eval", name=f"r{i}")).id for i in range(3)]
    me = Owner.of_this_process()
    for run_id in ids:
        store.register_waiter(run_id, me)  # each thread below waits for one run as this process
    held = try_slot(store)
    started: list[int] = []

    def wait_and_run(run_id: int) -> None:
        own = RunStore(path)
        slot = wait_for_slot(own, run_id)
        own.claim_run(run_id, me, {}, resume=False)
        started.append(run_id)
        own.mark_finished(run_id, "completed")
        slot.release()

    threads = [threading.Thread(target=wait_and_run, args=(run_id,)) for run_id in ids]
    for thread in threads:
        thread.start()
    assert store.move_in_queue(ids[2], 1) == 1
    assert store.move_in_queue(ids[0], 99) == 3
    held.release()
    for thread in threads:
        thread.join(timeout=60)
    assert started == [ids[2], ids[1], ids[0]]


def test_only_runs_with_a_live_waiting_process_hold_up_the_queue(tmp_path, strangers):
    store = RunStore(tmp_path / "runs.db")
    stranger, other = strangers
    first, second = (store.create_run(RunSpec(kind="eval")).id for _ in range(2))
    assert first_waiting_ahead(store, second) is None  # no process waits for the first run
    store.register_waiter(first, Owner.of_pid(stranger.pid))
    assert first_waiting_ahead(store, second) == first
    with pytest.raises(ReasonlabError, match="already waits for a slot"):
        store.register_waiter(first, Owner.of_pid(other.pid))
    store.register_waiter(first, Owner.of_this_process())  # the launcher of the waiting process
    assert store.get_run(first).owner == Owner.of_pid(stranger.pid)
    stranger.kill()
    stranger.wait()
    assert first_waiting_ahead(store, second) is None
    assert store.reap_dead_runs() == [] and store.get_run(first).status == "queued"


def test_new_runs_queue_behind_moved_ones(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    ids = [store.create_run(RunSpec(kind="eval")).id for _ in range(3)]
    store.move_in_queue(ids[0], 3)
    later = store.create_run(RunSpec(kind="eval")).id
    assert [q.id for q in store.queued_runs()] == [ids[1], ids[2], ids[0], later]
    store.mark_finished(ids[1], "completed")
    with pytest.raises(ReasonlabError, match="only queued runs"):
        store.move_in_queue(ids[1], 1)


def test_queue_command_shows_slots_running_and_queued_runs(tmp_path, capsys):
    db = str(tmp_path / "runs.db")
    store = RunStore(db)
    running, waiting, orphan = (store.create_run(RunSpec(kind="sft", name=name)).id for name in ("trainer", "next", "orphan"))
    store.claim_run(running, Owner.of_this_process(), {}, resume=False)
    store.record_slot(running, 2)
    store.register_waiter(waiting, Owner.of_this_process())
    assert main(["queue", "--slots", "2", "--db", db]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert "2 slot(s)" in captured.err
    assert lines[0].startswith("slots: 1 of 2 busy (set for this database")
    row = next(line.split() for line in lines if "trainer" in line.split())
    assert row[:4] == ["2", str(running), "trainer", "sft"]
    rows = [line.split() for line in lines if {"next", "orphan"} & set(line.split())]
    assert [r[:4] for r in rows] == [["1", str(waiting), "next", "sft"], ["2", str(orphan), "orphan", "sft"]]
    assert rows[0][-2:] == ["pid", str(os.getpid())]
    assert rows[1][-1] == "none"
    assert f"No process waits for run(s) {orphan};" in captured.out
    assert max(len(line) for line in lines) <= 80
    assert slot_count(store) == 2 and default_slots(2) == 1 and default_slots(32) == 4


def test_run_page_gives_queued_runs_their_place(tmp_path):
    from engine.core.store import RunFilter, RunOrder

    store = RunStore(tmp_path / "runs.db")
    ids = [store.create_run(RunSpec(kind="eval")).id for _ in range(3)]
    store.mark_finished(ids[0], "failed")
    store.move_in_queue(ids[2], 1)
    page = store.run_page(RunFilter(), RunOrder("id", descending=False), 10)
    assert [(row.id, row.queue_position) for row in page.rows] == [(ids[0], None), (ids[1], 2), (ids[2], 1)]


# -- sweeps ----------------------------------------------------------------------------------


def test_sweep_grid_and_seeded_sample():
    specs = sweep_specs("sft", {"learning_rate": "1e-3, 2e-3,3e-3", "seed": "0..1"})
    assert [(s.learning_rate, s.seed) for s in specs] == [
        (1e-3, 0), (1e-3, 1), (2e-3, 0), (2e-3, 1), (3e-3, 0), (3e-3, 1),
    ]
    assert specs[3].name == "learning_rate=0.002 seed=1"
    named = sweep_specs("sft", {"name": "lr", "learning_rate": "1e-3,2e-3", "epochs": "2"})
    assert [s.name for s in named] == ["lr learning_rate=0.001", "lr learning_rate=0.002"]
    sample = sweep_specs("sft", {"learning_rate": "1e-3,2e-3,3e-3", "seed": "0..1"}, sample=3, sample_seed=7)
    again = sweep_specs("sft", {"learning_rate": "1e-3,2e-3,3e-3", "seed": "0..1"}, sample=3, sample_seed=7)
    assert sample == again and len(set(sample)) == 3 and set(sample) <= set(specs)
    assert {s.seed for s in sweep_specs("eval", {"seed": "2,0..2"})} == {0, 1, 2}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sft", "--learning-rate", "1e-3,fast"], "learning_rate: expected a number, got 'fast'"),
        (["sft", "--learning-rate", "1e-3,2"], "learning_rate: must be at most 1"),
        (["sft", "--learning-rate", "1e-3..2e-3"], "ranges are for whole-number settings"),
        (["eval", "--seed", "3..1"], "runs backwards"),
        (["eval", "--seed", "0,,1"], "empty value"),
        (["eval", "--mode", "cot,chatty"], "'chatty' is not one of cot, direct"),
        (["eval", "--seed", "0..5", "--sample", "7"], "between 1 and the grid's 6 combinations"),
        (["eval", "--seed", "0..60"], "pass --sample N"),
    ],
)
def test_bad_sweep_values_are_one_line_and_queue_nothing(capsys, db_path, argv, expected):
    code = main(["sweep", *argv])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and expected in errors[0], err
    assert RunStore(db_path).list_runs() == []


def test_a_setting_error_names_the_setting():
    with pytest.raises(SpecError) as caught:
        sweep_specs("eval", {"learning_rate": "1e-3"})
    assert caught.value.field == "learning_rate"


def test_an_optuna_search_runs_its_trials_through_the_queue(tmp_path, tiny_model_dir, engine_env, capsys):
    db = str(tmp_path / "runs.db")
    assert main(["queue", "--slots", "1", "--db", db]) == 0
    capsys.readouterr()
    code = main(["sweep", "eval", "--model", tiny_model_dir, "--limit", "4", "--max-new-tokens", "4", "--mode", "direct",
                 "--seed", "0..5", "--search", "optuna", "--trials", "2", "--json", "--db", db])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    store = RunStore(db)
    runs = [store.get_run(i) for i in result["run_ids"]]
    assert len(runs) == 2 and all(run.status == "completed" for run in runs)
    assert all(run.tags == (f"sweep:{result['sweep']}",) for run in runs)
    assert runs[0].finished_at <= runs[1].started_at  # one slot: one trial at a time
    assert result["best_run"] in result["run_ids"] and set(result["best_params"]) == {"seed"}
    assert result["best_value"] == store.get_run(result["best_run"]).summary["accuracy"]
    assert all(f"run {run.id}: accuracy" in captured.err for run in runs)


def test_a_bad_value_in_an_optuna_search_queues_nothing(capsys, db_path):
    code = main(["sweep", "sft", "--learning-rate", "1e-3,5", "--search", "optuna", "--trials", "3"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 1 and errors == ["error: learning_rate: must be at most 1 (got 5)"]
    assert RunStore(db_path).list_runs() == []
