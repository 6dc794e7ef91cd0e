"""Soak: three writer runs, a reader and the app, all on one database, for a given time, with a
kill -9 and a resume of one writer half-way. Prints operations done, errors by kind, lost or
duplicated samples and metric points, and the slowest read.

Writers are real engine processes on a tiny model, replaced as they finish: an eval, an SFT
that logs every step, and a rollout. The reader lists runs, pages the runs table and reads
every run's metrics and samples in a loop. The app runs headless in its own process, opening
runs and going back. Afterwards every finished run is checked: an eval holds each question
once, a rollout each (question, sample) once, an SFT each step once (the killed-and-resumed
one included).

    .venv/bin/python bench/soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.core.store import RunFilter, RunOrder, RunStore, UnreadableRun  # noqa: E402

QUESTIONS = 24
SAMPLES = 2
SFT_ROWS, SFT_BATCH = 64, 4

APP_SCRIPT = """
import asyncio, sys, time
from tui.app import ReasonlabApp

from textual.pilot import WaitForScreenTimeout

async def main(db, seconds):
    app = ReasonlabApp(db, poll_interval=0.2, run_poll_interval=0.2)
    lagged = 0
    async with app.run_test(size=(100, 30)) as pilot:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for key in ("down", "enter", "tab", "escape", "home"):
                try:
                    await pilot.press(key)
                except WaitForScreenTimeout:  # the test driver's own patience on a loaded CPU
                    lagged += 1
                await pilot.pause(0.3)
        assert app.is_running
    print(lagged)
asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


def writer_command(kind: str, model: str, db: Path) -> list[str]:
    common = [sys.executable, "-m", "engine", kind, "--model", model, "--db", str(db), "--name", f"soak-{kind}"]
    if kind == "eval":
        return common + ["--mode", "direct", "--dataset", "valid", "--limit", str(QUESTIONS), "--batch-size", "4", "--max-new-tokens", "6"]
    if kind == "rollout":
        return common + ["--mode", "direct", "--limit", str(QUESTIONS), "--num-samples", str(SAMPLES), "--batch-size", "8", "--max-new-tokens", "6"]
    return common + ["--limit", str(SFT_ROWS), "--batch-size", str(SFT_BATCH), "--epochs", "1", "--log-interval", "1",
                     "--checkpoint-interval", "4", "--eval-interval", "0", "--eval-limit", "4"]


class Reader(threading.Thread):
    def __init__(self, db: Path, stop: threading.Event):
        super().__init__(daemon=True)
        self.db, self.stop = db, stop
        self.operations, self.slowest = 0, 0.0
        self.errors: collections.Counter[str] = collections.Counter()

    def run(self) -> None:
        store = RunStore(self.db)
        while not self.stop.is_set():
            began = time.perf_counter()
            try:
                store.run_page(RunFilter(), RunOrder("accuracy"), 100)
                for run in store.list_runs(limit=20):
                    if isinstance(run, UnreadableRun):
                        self.errors["unreadable row"] += 1
                        continue
                    for name in store.metric_names(run.id):
                        store.metric_series(run.id, name)
                    store.samples(run.id, limit=200)
                    self.operations += 1
            except Exception as exc:  # counted by kind: the figure this bench reports
                self.errors[f"reader {type(exc).__name__}"] += 1
            self.slowest = max(self.slowest, time.perf_counter() - began)
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    from engine.tiny import save_tiny_model

    folder = Path(tempfile.mkdtemp(prefix="reasonlab-soak-"))
    model = save_tiny_model(folder / "tiny")
    db = folder / "soak.db"
    RunStore(db).close()
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    seconds = args.minutes * 60
    began = time.monotonic()
    stop = threading.Event()
    reader = Reader(db, stop)
    reader.start()
    app = subprocess.Popen([sys.executable, "-c", APP_SCRIPT, str(db), str(seconds)], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errors: collections.Counter[str] = collections.Counter()
    writers: dict[str, subprocess.Popen] = {}
    started: collections.Counter[str] = collections.Counter()
    killed_run: int | None = None
    store = RunStore(db)
    while time.monotonic() - began < seconds:
        for kind in ("eval", "sft", "rollout"):
            process = writers.get(kind)
            if process is not None and process.poll() is None:
                continue
            if process is not None and process.returncode != 0 and not (kind == "sft" and process.returncode == -signal.SIGKILL):
                errors[f"{kind} exit {process.returncode}"] += 1
            writers[kind] = subprocess.Popen(writer_command(kind, model, db), cwd=ROOT, env=env,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started[kind] += 1
        if killed_run is None and time.monotonic() - began > seconds / 2:
            killed_run = kill_and_resume(store, writers, model, db, env, errors)
        time.sleep(0.5)
    for process in writers.values():
        process.wait()
    app_out, app_err = app.communicate()
    if app.returncode != 0:
        errors[f"app exit {app.returncode}: {app_err.strip().splitlines()[-1:]}"] += 1
    lagged = int(app_out.strip() or 0) if app.returncode == 0 else 0
    stop.set()
    reader.join()
    lost, duplicated, checked = audit(store)
    errors.update(reader.errors)
    print(f"soak: {args.minutes:g} min on {db}")
    print(f"  writer runs started: {dict(started)}; kill -9 and resume of run {killed_run}")
    print(f"  reader operations: {reader.operations}; slowest read: {reader.slowest * 1000:.0f} ms")
    print(f"  app key presses the test driver gave up waiting on (CPU load, not errors): {lagged}")
    print(f"  runs checked: {checked}; lost rows: {lost}; duplicated rows: {duplicated}")
    print(f"  errors: {sum(errors.values())} {dict(errors) if errors else ''}")


def kill_and_resume(store: RunStore, writers, model: str, db: Path, env, errors) -> int | None:
    """kill -9 the SFT writer once it has logged steps, then resume its run at once."""
    sft = writers["sft"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = [r for r in store.list_runs(kind="sft", status="running") if not isinstance(r, UnreadableRun)]
        if runs and len(store.metric_series(runs[0].id, "loss")) >= 3:
            sft.send_signal(signal.SIGKILL)
            sft.wait()
            resumed = subprocess.run([sys.executable, "-m", "engine", "resume", str(runs[0].id), "--db", str(db)],
                                     cwd=ROOT, env=env, capture_output=True, text=True)
            if resumed.returncode != 0:
                errors[f"resume exit {resumed.returncode}"] += 1
            return runs[0].id
        time.sleep(0.1)
    errors["no sft run to kill"] += 1
    return None


def audit(store: RunStore) -> tuple[int, int, int]:
    """(lost rows, duplicated rows, runs checked) over every completed writer run."""
    lost = duplicated = checked = 0
    for run in store.list_runs(status="completed"):
        if isinstance(run, UnreadableRun):
            continue
        checked += 1
        if run.kind == "sft":
            steps = [s for s, _ in store.metric_series(run.id, "loss")]
            expected = list(range(1, SFT_ROWS // SFT_BATCH + 1))
        else:
            samples = store.samples(run.id)
            steps = [(s["idx"], s["sample"]) for s in samples]
            per_question = SAMPLES if run.kind == "rollout" else 1
            expected = [(q, k) for q in range(QUESTIONS) for k in range(per_question)]
        duplicated += len(steps) - len(set(steps))
        lost += len(set(expected) - set(steps))
    return lost, duplicated, checked


if __name__ == "__main__":
    main()
