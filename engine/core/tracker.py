"""Buffered metric logging: points collect in memory and reach the store in one short
transaction per flush, so logging costs a training step almost nothing and readers never wait."""

from __future__ import annotations

import time

from engine.core import metrics
from engine.core.store import RunStore


class Tracker:
    def __init__(self, store: RunStore, run_id: int, *, flush_seconds: float = 1.0):
        self.store = store
        self.run_id = run_id
        self.flush_seconds = flush_seconds
        self._points: list[tuple[int, str, float, float]] = []
        self._progress: tuple[int, int | None] | None = None
        self._last_flush = time.monotonic()

    def log(self, step: int, **values: float) -> None:
        undeclared = [name for name in values if not metrics.is_declared(name)]
        if undeclared:
            raise ValueError(f"metric {undeclared[0]!r} is not declared in engine.core.metrics")
        now = time.time()
        self._points.extend((step, name, float(value), now) for name, value in values.items())
        self._maybe_flush()

    def progress(self, done: int, total: int | None) -> None:
        self._progress = (done, total)
        self._maybe_flush()

    def flush(self) -> None:
        if self._points or self._progress is not None:
            self.store.log_metrics(self.run_id, self._points, self._progress)
        self._points, self._progress = [], None
        self._last_flush = time.monotonic()

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()
