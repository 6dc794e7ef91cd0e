import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlite_utils

from engine.core.errors import ReasonlabError
from engine.core.spec import RunSpec
from engine.core.processes import Owner
from engine.core.schema import migrations
from engine.core.store import RunStore
from engine.core.tracker import Tracker


ME = Owner.of_this_process()


def test_run_round_trip(db_path):
    store = RunStore(db_path)
    spec = RunSpec(kind="sft", name="first", lora_rank=4)
    run = store.create_run(spec, tags=["b", "a", "a"])
    loaded = store.get_run(run.id)
    assert loaded.spec == spec
    assert loaded.status == "queued" and loaded.tags == ("a", "b") and loaded.name == "first"
    assert os.path.isdir(loaded.run_dir) and loaded.run_dir.endswith(f"runs.db.runs/{run.id}")
    store.claim_run(run.id, ME, {"python": "3"}, resume=False)
    store.mark_finished(run.id, "failed", "boom")
    done = store.get_run(run.id)
    assert (done.status, done.error, done.owner, done.environment) == ("failed", "boom", ME, {"python": "3"})
    assert done.started_at <= done.finished_at and done.duration == done.finished_at - done.started_at


def test_resumed_run_keeps_its_first_start(db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="sft"))
    store.claim_run(run.id, ME, {}, resume=False)
    store.update_run(run.id, started_at=1000.0)  # as if it first ran long ago
    store.mark_finished(run.id, "cancelled")
    store.claim_run(run.id, ME, {}, resume=True)
    resumed = store.get_run(run.id)
    assert resumed.started_at == 1000.0 and resumed.finished_at is None and resumed.status == "running"


def test_an_attempts_pace_starts_at_its_first_progress_report(db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="sft"))
    store.claim_run(run.id, ME, {}, resume=False)
    assert store.get_run(run.id).pace_since is None  # no progress yet: nothing to measure from
    store.log_metrics(run.id, [], (0, 100))
    first = store.get_run(run.id)
    assert first.pace_since is not None and first.pace_since_done == 0
    store.set_progress(run.id, 40, 100)
    assert (store.get_run(run.id).pace_since, store.get_run(run.id).pace_since_done) == (first.pace_since, 0)
    store.mark_finished(run.id, "failed", "stopped")
    store.claim_run(run.id, ME, {}, resume=True)
    resumed = store.get_run(run.id)
    assert resumed.pace_since is None and resumed.progress_done == 40  # the bar stays; the pace starts over
    store.set_progress(run.id, 25, 100)  # back to its checkpoint
    again = store.get_run(run.id)
    assert again.pace_since >= first.pace_since and again.pace_since_done == 25


def test_metrics_samples_artifacts(db_path, tmp_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval"))
    store.log_metrics(run.id, [(1, "loss", 2.0, 0.0), (2, "loss", 1.0, 0.0), (2, "lr", float("nan"), 0.0)], (5, 10))
    assert store.metric_series(run.id, "loss") == [(1, 2.0), (2, 1.0)]
    assert store.metric_series(run.id, "loss", after_step=1) == [(2, 1.0)]
    got = store.get_run(run.id)
    assert got.summary == {"loss": 1.0} and (got.progress_done, got.progress_total) == (5, 10)
    row = {"idx": 0, "sample": 0, "question": "q", "target": 2.0, "output": "<answer>2</answer>", "answer": 2.0, "correct": True}
    store.add_samples(run.id, [row, {**row, "sample": 1, "answer": float("nan"), "correct": False}])
    store.add_samples(run.id, [row])  # a resumed run re-sending a committed row does not duplicate it
    rows = store.samples(run.id)
    assert len(rows) == 2 and rows[1]["answer"] is None
    assert len(store.samples(run.id, correct=True)) == 1
    assert store.done_indices(run.id) == {0}
    folder = Path(run.run_dir) / "adapter"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"x" * 100)
    store.add_artifact(run.id, "adapter", folder)
    assert store.artifact(run.id, "adapter")["bytes"] == 100


def test_list_filter_search_and_delete(db_path):
    store = RunStore(db_path)
    a = store.create_run(RunSpec(kind="eval", name="baseline"), tags=["cot"])
    b = store.create_run(RunSpec(kind="sft", name="lr sweep"), tags=["sweep"])
    child = store.create_run(RunSpec(kind="eval", adapter=str(b.id)), parent_id=b.id)
    assert [r.id for r in store.list_runs(kind="eval")] == [child.id, a.id]
    assert [r.id for r in store.list_runs(tag="sweep")] == [b.id]
    assert [r.id for r in store.list_runs(search="sweep")] == [b.id]
    assert store.all_tags() == ["cot", "sweep"]
    store.delete_run(b.id)
    assert store.get_run(child.id).parent_id is None
    with pytest.raises(ReasonlabError, match="No run with id"):
        store.get_run(b.id)


def test_migrates_an_existing_older_database(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m002_progress_and_summary")
    db["runs"].insert({"kind": "eval", "status": "completed", "spec": json.dumps({"kind": "eval"}), "created_at": 1.0})
    db.close()
    store = RunStore(path)
    run = store.get_run(1)
    assert run.status == "completed" and run.summary == {} and run.progress_done is None
    assert {m.name for m in migrations.applied(store.db)} == {
        "m001_initial", "m002_progress_and_summary", "m003_run_folders_per_database",
        "m004_process_start_time", "m005_unique_metric_points", "m006_queue", "m007_sample_splits",
        "m008_attempt_pace",
    }
    assert store.db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_migration_names_the_split_of_samples_stored_before_splits(tmp_path):
    """Training runs stored valid's samples only; an eval or a rollout its spec's dataset, which
    the spec omits when it was the kind's default (valid for eval, train for rollout)."""
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m007_sample_splits")
    for kind, spec in (
        ("sft", {"kind": "sft"}), ("eval", {"kind": "eval", "dataset": "shifted"}),
        ("eval", {"kind": "eval"}), ("rollout", {"kind": "rollout"}), ("rollout", {"kind": "rollout", "dataset": "broad"}),
    ):
        run_id = db["runs"].insert({"kind": kind, "status": "completed", "spec": json.dumps(spec), "created_at": 1.0}).last_pk
        db["samples"].insert({"run_id": run_id, "step": 0, "idx": 0, "sample": 0, "question": "q", "target": 1.0,
                              "output": "o", "answer": 1.0, "correct": 1})
    db.close()
    store = RunStore(path)
    assert [store.sample_splits(i) for i in range(1, 6)] == [["valid"], ["shifted"], ["valid"], ["train"], ["broad"]]
    store.add_samples(1, [_sample(0, 0, False)], split="shifted")  # the new key takes a second split
    assert store.sample_splits(1) == ["valid", "shifted"]


def test_unreadable_database_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.db"
    path.write_text("this is not sqlite" * 100)
    with pytest.raises(ReasonlabError, match="Cannot open run database"):
        RunStore(path)


def test_reader_is_not_blocked_while_a_writer_logs(db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="sft"))
    stop = threading.Event()
    written = []

    def write():
        writer = RunStore(db_path)
        tracker = Tracker(writer, run.id, flush_seconds=0)
        while not stop.is_set():
            tracker.log(len(written) + 1, loss=1.0)
            written.append(1)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        worst, reads = 0.0, 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline or len(written) < 50:
            began = time.perf_counter()
            store.list_runs()
            store.metric_series(run.id, "loss")
            worst = max(worst, time.perf_counter() - began)
            reads += 1
    finally:
        stop.set()
        thread.join()
    assert reads > 10 and len(store.metric_series(run.id, "loss")) == len(written)
    assert worst < 2.0  # would hit the 10 s busy timeout if a write transaction blocked readers


def test_reap_marks_runs_whose_process_died(db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval"))
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.update_run(run.id, status="running", pid=proc.pid, pid_started=time.time())
    assert store.reap_dead_runs() == [run.id]
    assert store.get_run(run.id).status == "failed"


def test_opening_while_another_process_writes_does_not_fail(db_path):
    """The app opens a store per background read while engine processes write."""
    import sqlite3

    RunStore(db_path).close()
    writer = sqlite3.connect(db_path, check_same_thread=False)
    writer.execute("begin immediate")
    writer.execute("insert into runs (kind, status, spec, created_at) values ('eval', 'queued', '{}', 0)")
    release = threading.Timer(1.0, writer.commit)
    release.start()
    try:
        began = time.perf_counter()
        store = RunStore(db_path)  # an up-to-date database opens without taking a write lock
        assert time.perf_counter() - began < 0.5
        assert store.list_runs() == []  # the uncommitted row is not visible yet
    finally:
        release.join()
        writer.close()
    assert len(RunStore(db_path).list_runs()) == 1


def test_many_connections_creating_one_new_database_at_once(tmp_path):
    """The app's workers and an engine process may all open a database that does not exist yet."""
    path = tmp_path / "new.db"
    errors = []

    def open_it():
        try:
            RunStore(path).list_runs()
        except Exception as exc:  # collected: the assertion below shows what went wrong
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not migrations.pending(RunStore(path).db)


def test_a_foreign_sqlite_file_is_refused_at_once_and_left_unchanged(tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as other:
        other.execute("create table runs (id integer primary key, what text)")
    before = path.read_bytes()
    with pytest.raises(ReasonlabError, match="not a reasonlab store"):
        RunStore(path)
    assert path.read_bytes() == before and not (tmp_path / "other.db-wal").exists()


def test_an_unreadable_row_is_listed_as_such_and_can_be_deleted(db_path, capsys):
    from engine.cli import main

    store = RunStore(db_path)
    good = store.create_run(RunSpec(kind="eval", name="fine"))
    bad = store.create_run(RunSpec(kind="sft"))
    with store.transaction():
        store.db.execute("update runs set spec = ?, tags = ? where id = ?", ['{"batch_size": "abc"}', "{oops", bad.id])
    listed = store.list_runs()
    assert [type(r).__name__ for r in listed] == ["UnreadableRun", "Run"]
    assert "batch_size" in listed[0].reason and f"delete {bad.id}" in listed[0].reason
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert "fine" in out and "unreadable" in out
    assert main(["show", str(bad.id)]) == 1
    assert "stored record is unreadable" in capsys.readouterr().err
    from engine.core.store import RunFilter, RunOrder

    page = store.run_page(RunFilter(), RunOrder(), 10)
    assert page.total == 2 and page.rows[0].tags == ("(unreadable tags)",)
    assert main(["delete", str(bad.id)]) == 0
    assert [r.id for r in store.list_runs()] == [good.id]


def _dead_owner() -> Owner:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return Owner(proc.pid, time.time())


def test_reap_leaves_runs_whose_process_lives_and_reaps_the_dead_after_them(db_path):
    store = RunStore(db_path)
    alive, dead = (store.create_run(RunSpec(kind="eval")) for _ in range(2))
    store.claim_run(alive.id, ME, {}, resume=False)
    gone = _dead_owner()
    store.update_run(dead.id, status="running", pid=gone.pid, pid_started=gone.started)
    assert store.reap_dead_runs() == [dead.id]
    assert store.get_run(alive.id).status == "running" and store.get_run(dead.id).status == "failed"


def test_a_read_only_connection_lists_a_dead_run_as_stored(db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval"))
    gone = _dead_owner()
    store.update_run(run.id, status="running", pid=gone.pid, pid_started=gone.started)
    store.db.execute("pragma query_only = 1")
    assert store.reap_dead_runs() == []
    assert store.get_run(run.id).status == "running"


def test_a_running_run_is_refused_to_start_and_to_resume_while_its_process_lives(db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval"))
    store.claim_run(run.id, ME, {}, resume=False)
    for resume in (False, True):
        with pytest.raises(ReasonlabError, match=f"Run {run.id} is already running \\(pid {ME.pid}\\); .*cancel"):
            store.claim_run(run.id, Owner(ME.pid, ME.started), {}, resume=resume)


def _sample(step: int, idx: int, correct: bool, sample: int = 0) -> dict:
    return {"step": step, "idx": idx, "sample": sample, "question": f"q{idx}", "target": 1.0, "output": "o",
            "answer": 1.0 if correct else 2.0, "correct": correct}


def test_final_samples_are_each_splits_last_scored_step(db_path):
    store = RunStore(db_path)
    run, other = store.create_run(RunSpec(kind="sft")), store.create_run(RunSpec(kind="sft"))
    assert store.final_samples(run.id) == [] and store.sample_splits(run.id) == []
    store.add_samples(run.id, [_sample(4, 0, True), _sample(8, 0, True), _sample(8, 1, False)])
    store.add_samples(run.id, [_sample(4, 0, False), _sample(6, 0, True)], split="shifted")
    store.add_samples(other.id, [_sample(12, 0, True)])
    assert store.sample_splits(run.id) == ["valid", "shifted"]
    assert store.sample_steps(run.id, "shifted") == [4, 6]
    assert [(r["split"], r["step"], r["idx"]) for r in store.final_samples(run.id)] == [
        ("valid", 8, 0), ("valid", 8, 1), ("shifted", 6, 0),
    ]
    assert [r["step"] for r in store.question_samples(run.id, "valid", "q0")] == [8]
    assert store.sample_counts(run.id, "valid", 8) == (2, 1) and store.sample_counts(run.id, "shifted", 8) == (0, 0)


def test_the_same_step_and_index_on_two_splits_are_two_samples(db_path):
    """A training run scores valid's and shifted's question 0 at the same step; before splits
    were stored, the second would have been dropped as a repeat."""
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="sft"))
    for _ in range(2):  # a resumed run writes the same rows again
        store.add_samples(run.id, [_sample(4, 0, True)])
        store.add_samples(run.id, [_sample(4, 0, False)], split="shifted")
    assert [(r["split"], r["correct"]) for r in store.samples(run.id)] == [("shifted", 0), ("valid", 1)]


def test_samples_after_polls_one_steps_new_rows_in_order(db_path):
    store = RunStore(db_path)
    run, other = store.create_run(RunSpec(kind="sft")), store.create_run(RunSpec(kind="sft"))
    store.add_samples(run.id, [_sample(4, i, i % 2 == 0) for i in range(6)] + [_sample(8, 0, True)])
    store.add_samples(other.id, [_sample(4, i, True) for i in range(3)])
    store.add_samples(run.id, [_sample(4, 9, True)], split="shifted")
    first = store.samples_after(run.id, "valid", 4, after_id=0, correct=None, limit=4)
    assert [(r["run_id"], r["step"], r["idx"]) for r in first] == [(run.id, 4, i) for i in range(4)]
    rest = store.samples_after(run.id, "valid", 4, after_id=first[-1]["id"], correct=None, limit=10)
    assert [r["idx"] for r in rest] == [4, 5]
    assert [r["idx"] for r in store.samples_after(run.id, "valid", 4, 0, correct=True, limit=10)] == [0, 2, 4]
    assert [r["idx"] for r in store.samples_after(run.id, "valid", 4, 0, correct=False, limit=10)] == [1, 3, 5]
    assert [r["idx"] for r in store.samples_after(run.id, "shifted", 4, 0, correct=None, limit=10)] == [9]
def test_metric_series_timed_keeps_each_points_time(db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="sft"))
    store.log_metrics(run.id, [(1, "loss", 2.0, 100.0), (2, "loss", 1.0, 109.5), (2, "lr", 0.1, 109.5)])
    store.log_metrics(run.id, [(2, "loss", 0.9, 130.0)])  # a resumed run replays step 2 later
    assert store.metric_series_timed(run.id, "loss") == [(1, 2.0, 100.0), (2, 0.9, 130.0)]
    assert store.metric_series_timed(run.id, "loss", after_step=1) == [(2, 0.9, 130.0)]


def test_resume_takes_over_a_running_run_whose_process_died(db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval"))
    gone = _dead_owner()
    store.update_run(run.id, status="running", pid=gone.pid, pid_started=gone.started)
    with pytest.raises(ReasonlabError, match=f"Run {run.id} is already running \\(pid {gone.pid}\\)"):
        store.claim_run(run.id, ME, {}, resume=False)  # starting never reaps: only resume takes over
    assert store.get_run(run.id).status == "running"
    assert store.claim_run(run.id, ME, {}, resume=True).owner == ME


@pytest.mark.parametrize(
    ("status", "resume", "message"),
    [
        ("queued", True, "is queued; only cancelled or failed runs can be resumed"),
        ("completed", True, "is completed; only cancelled or failed runs can be resumed"),
        ("completed", False, "is already completed; use `python -m engine resume"),
        ("failed", False, "is already failed; use `python -m engine resume"),
    ],
)
def test_a_run_in_the_wrong_state_is_refused_with_what_to_do(db_path, status, resume, message):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval"))
    store.update_run(run.id, status=status)
    with pytest.raises(ReasonlabError, match=f"Run {run.id} {message}"):
        store.claim_run(run.id, ME, {}, resume=resume)


def test_resume_waits_while_the_runs_last_process_is_still_exiting(db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval"))
    store.claim_run(run.id, ME, {}, resume=False)
    store.mark_finished(run.id, "failed", "boom")  # ME, alive, still owns it
    newcomer = Owner(ME.pid, ME.started + 5)
    with pytest.raises(ReasonlabError, match=f"Run {run.id}'s last process \\(pid {ME.pid}\\) is still exiting"):
        store.claim_run(run.id, newcomer, {}, resume=True)


@pytest.mark.parametrize(
    ("resume", "rival_leaves", "message"),
    [
        (False, "running", "is already running"),
        (False, "cancelled", "is already cancelled; use `python -m engine resume"),
        (True, "completed", "is completed; only cancelled or failed runs can be resumed"),
    ],
)
def test_a_claim_that_loses_the_race_is_refused_with_the_winners_state(db_path, monkeypatch, resume, rival_leaves, message):
    """Between a claim's checks and its update another process takes the run (and may even
    finish it): the update changes nothing and the loser says what the run is now."""
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval"))
    if resume:
        store.update_run(run.id, status="failed")
    rival, real_transaction = RunStore(db_path), store.transaction

    @contextmanager
    def rival_first():
        rival.update_run(run.id, status=rival_leaves)
        with real_transaction():
            yield

    monkeypatch.setattr(store, "transaction", rival_first)
    with pytest.raises(ReasonlabError, match=f"Run {run.id} {message}"):
        store.claim_run(run.id, ME, {}, resume=resume)
    assert rival.get_run(run.id).status == rival_leaves


def test_samples_store_defaults_and_only_finite_answers(db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval"))
    answers = [2.5, None, float("inf"), float("-inf"), float("nan")]
    store.add_samples(run.id, [
        {"idx": i, "question": "q", "target": 1.0, "output": "o", "answer": a, "correct": False}
        for i, a in enumerate(answers)
    ])
    rows = store.samples(run.id)
    assert [(r["step"], r["sample"]) for r in rows] == [(0, 0)] * len(answers)
    assert [r["answer"] for r in rows] == [2.5, None, None, None, None]
