"""Fixtures for the TUI tests: a database (empty or seeded), the app wired to a fake engine,
and a helper that waits for the app's background reads."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tui.seed import seed
from tui.app import ReasonlabApp

os.environ["TZ"] = "UTC"  # timestamps in snapshots
time.tzset()

FAKE_ENGINE = [sys.executable, str(Path(__file__).with_name("fake_engine.py"))]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def seeded_db(db_path: Path) -> Path:
    seed(db_path).close()
    return db_path


@pytest.fixture
def make_app(db_path: Path) -> Callable[..., ReasonlabApp]:
    def make(poll: float = 0.2) -> ReasonlabApp:
        return ReasonlabApp(db_path, engine=FAKE_ENGINE, poll_interval=poll, run_poll_interval=poll)

    return make


async def wait_for(pilot, predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Let the app run until `predicate()` is true (background reads land asynchronously)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await pilot.pause(0.05)
