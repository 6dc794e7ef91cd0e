"""One place where a failed background read or write ends up: a notification, never an exit.

Every screen's workers run with `exit_on_error=False`; their state changes reach the screen
that started them, and this handler turns an error into one line on screen. Whatever the
database holds (an unreadable row, a corrupt page, a file made read-only), the app stays up.

A read can also finish after its screen was closed: its reply then arrives while the screen's
widgets are being removed, so each reply handler of a screen that can be closed starts with
`if self.closed: return`.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.worker import Worker, WorkerState


class ReportsWorkerErrors(Screen):
    @property
    def closed(self) -> bool:
        """Whether the screen has left the screen stack (it is being removed)."""
        return self not in self.app.screen_stack

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.worker_failed(event.worker)

    def worker_failed(self, worker: Worker) -> None:
        """Show the error; screens that wait for a worker's reply also stop waiting."""
        error = worker.error
        self.notify(f"{type(error).__name__}: {error}".splitlines()[0], severity="error", markup=False)
