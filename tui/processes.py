"""Starting and stopping engine processes.

Runs are started detached (their own session, output to `<run_dir>/log.txt`) so they outlive
the app; the app only keeps the `Popen` handles to reap them (no zombies while it lives).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.core.store import ACTIVE_STATUSES, RunStore

DEFAULT_ENGINE = (sys.executable, "-m", "engine")


class EngineLauncher:
    """Starts `<engine> start RUN --db PATH` for queued runs and signals them to stop."""

    def __init__(self, engine: Sequence[str], db_path: Path):
        self.engine = list(engine)
        self.db_path = db_path
        self._children: dict[int, subprocess.Popen] = {}

    def start(self, run_id: int, run_dir: str) -> subprocess.Popen:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        command = [*self.engine, "start", str(run_id), "--db", str(self.db_path)]
        with open(Path(run_dir) / "log.txt", "ab") as log:
            child = subprocess.Popen(
                command, start_new_session=True, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._children[run_id] = child
        return child

    def reap(self) -> None:
        """Collect children that have exited."""
        for run_id, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[run_id]

    def cancel(self, store: RunStore, run_id: int) -> str:
        """Ask a run to stop; returns what happened, for a notification. The engine marks the run
        cancelled itself; a run without a live process is marked cancelled here."""
        run = store.get_run(run_id)
        if run.status not in ACTIVE_STATUSES:
            return f"Run #{run_id} is {run.status}; only queued or running runs can be cancelled."
        child = self._children.get(run_id)
        pid = run.pid or (child.pid if child and child.poll() is None else None)
        if pid and _terminate(pid):
            return f"Asked run #{run_id} to stop."
        store.mark_finished(run_id, "cancelled", "Cancelled from the app")
        return f"Run #{run_id} cancelled."


def _terminate(pid: int) -> bool:
    """SIGTERM the run's process group (or the process alone when it leads none); False when
    the process is gone."""
    try:
        os.killpg(pid, signal.SIGTERM)
        return True
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        return True
    except (ProcessLookupError, PermissionError):
        return False
