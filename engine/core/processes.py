"""Run processes: who owns a run, whether that owner still lives, starting and cancelling.

A pid alone cannot tell a run's process from a later one that reused its number, so a run
records its owner as the pid together with the process's start time (psutil reads it from the
kernel). Everything that asks whether a run is alive, or signals it, goes through `Owner`: a
process whose start time differs is never treated as the run's, and never signalled.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from engine.core.errors import ReasonlabError

if TYPE_CHECKING:
    from engine.core.store import RunStore

ENGINE_COMMAND = (sys.executable, "-m", "engine")
START_TIME_TOLERANCE = 0.05
"""Seconds. The kernel counts start times in clock ticks (10 ms), so a reading is stable."""


@dataclass(frozen=True)
class Owner:
    """The process that runs a run: its pid and its start time."""

    pid: int
    started: float

    @classmethod
    def of_this_process(cls) -> "Owner":
        return cls.of_pid(psutil.Process().pid)

    @classmethod
    def of_pid(cls, pid: int) -> "Owner":
        return cls(pid, psutil.Process(pid).create_time())

    def process(self) -> psutil.Process | None:
        """The live process when it is this owner (same pid and start time), else None."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.started) > START_TIME_TOLERANCE:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return process
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError, OverflowError):
            return None

    def is_alive(self) -> bool:
        return self.process() is not None

    def is_ancestor_of(self, other: "Owner") -> bool:
        """Whether this owner started `other`, directly or through wrappers such as `uv run`
        (a launcher records the process it starts before that process can record itself)."""
        mine, theirs = self.process(), other.process()
        if mine is None or theirs is None:
            return False
        try:
            return any(parent.pid == mine.pid for parent in theirs.parents())
        except psutil.Error:
            return False

    def terminate(self) -> bool:
        """Send SIGTERM (the engine saves and stops) to this owner only; False when it is gone.
        psutil checks the process's identity again right before signalling."""
        process = self.process()
        if process is None:
            return False
        try:
            process.send_signal(signal.SIGTERM)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False
        return True


def start_detached(
    run_id: int, db_path: Path, log_path: Path, engine: Sequence[str] = ENGINE_COMMAND, *, resume: bool = False,
) -> subprocess.Popen:
    """Start `<engine> start RUN --db PATH` (`resume` with `resume`) in its own session, so it
    outlives whoever started it (the app), with its output appended to the run's log. The
    engine claims the run itself, atomically."""
    command = [*engine, "resume" if resume else "start", str(run_id), "--db", str(db_path)]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command, start_new_session=True, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )


class Launcher:
    """Starts engine processes for queued runs (the app's launches, sweeps) and keeps their
    handles only to reap them, so no zombie lingers while the app lives; the runs themselves
    go on after it quits."""

    def __init__(self, db_path: Path, engine: Sequence[str] = ENGINE_COMMAND):
        self.db_path = db_path
        self.engine = list(engine)
        self._children: list[subprocess.Popen] = []

    def start(self, store: "RunStore", run_id: int, *, resume: bool = False) -> None:
        """Start the run's engine process and record it at once as the run's waiter, so the run
        holds its place in the queue before any run launched after it (engine.core.queue)."""
        folder = store.run_folder(store.get_run(run_id))
        child = start_detached(run_id, self.db_path, folder / "log.txt", self.engine, resume=resume)
        self._children.append(child)
        if resume:
            return  # a resume takes any free slot; it holds no place in the queue
        try:
            store.register_waiter(run_id, Owner.of_pid(child.pid))
        except (psutil.NoSuchProcess, ReasonlabError):
            pass  # the child already exited, took the run, or found it taken; its log says which

    def reap(self) -> None:
        self._children = [child for child in self._children if child.poll() is None]


def cancel_run(store: "RunStore", run_id: int) -> str:
    """Stop a run, the one way the CLI and the app both use; returns what happened.

    A queued run is marked cancelled (its engine, if one is starting, then fails to claim it).
    A running run's owner gets SIGTERM and marks the run cancelled itself after saving. A
    running run whose owner is gone is marked failed, and no process is signalled."""
    run = store.get_run(run_id)
    if run.status == "queued":
        if store.cancel_queued(run_id):
            return f"Run #{run_id} cancelled before it started."
        run = store.get_run(run_id)
    if run.status != "running":
        return f"Run #{run_id} is {run.status}; only queued or running runs can be cancelled."
    if run.owner is not None and run.owner.terminate():
        return f"Asked run #{run_id} to stop; it saves a checkpoint first."
    store.reap_dead_runs()
    return f"Run #{run_id}'s process had already exited; it is marked failed and can be resumed."
