"""A run's progress bar with counts and the estimated time left."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from engine.core.store import FINAL_STATUSES, Run
from tui.data import eta_seconds, format_duration


def progress_text(run: Run, now: float) -> str:
    done, total = run.progress_done, run.progress_total
    counts = f"{done or 0}/{total}" if total else (f"{done}" if done else "")
    if run.status == "running":
        # At this attempt's pace: a resumed run's stop and its model loading are not work.
        elapsed = now - run.pace_since if run.pace_since is not None else None
        eta = eta_seconds(done, total, elapsed, run.pace_since_done or 0)
        tail = f"ETA {format_duration(eta)}" if eta is not None else "ETA --"
    else:
        tail = run.status
    return " · ".join(part for part in (counts, tail) if part)


class RunProgress(Horizontal):
    """The ETA is computed from the store's record of the attempt (when and where its progress
    began), not from how fast the bar moved while this screen was open."""

    def compose(self) -> ComposeResult:
        yield ProgressBar(show_eta=False, id="progress-bar")
        yield Label(id="progress-text")

    def show(self, run: Run) -> None:
        bar = self.query_one(ProgressBar)
        if run.progress_total:
            bar.update(total=run.progress_total, progress=run.progress_done or 0)
        elif run.status in FINAL_STATUSES:  # a bar without a total pulses: stop it once the run is over
            bar.update(total=1, progress=1 if run.status == "completed" else 0)
        self.query_one("#progress-text", Label).update(progress_text(run, time.time()))
