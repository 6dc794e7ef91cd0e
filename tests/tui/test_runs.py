"""The runs screen: filters, search, sorting, delete, cancel, resume, tags and notes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.core.processes import Owner
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from tests.tui.conftest import wait_for
from textual.widgets import Input, Select, TextArea

from tui.screens.confirm import ConfirmDialog
from tui.screens.edit_run import EditRunDialog
from tui.screens.runs import RunsScreen
from tui.widgets.runs_table import RunsTable


def shown_ids(app) -> list[int]:
    return app.screen.query_one(RunsTable).run_ids


async def test_filters_and_search(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: shown_ids(app) == [6, 5, 4, 3, 2, 1])
        screen = app.screen
        screen.query_one("#filter-kind", Select).value = "eval"
        await wait_for(pilot, lambda: shown_ids(app) == [5, 2])
        screen.query_one("#filter-status", Select).value = "completed"
        await wait_for(pilot, lambda: shown_ids(app) == [2])
        screen.query_one("#filter-kind", Select).clear()
        screen.query_one("#filter-status", Select).clear()
        await wait_for(pilot, lambda: "rft" in screen.query_one("#filter-tag", Select)._legal_values)
        screen.query_one("#filter-tag", Select).value = "rft"
        await wait_for(pilot, lambda: shown_ids(app) == [6, 3])
        screen.query_one("#filter-tag", Select).clear()
        await pilot.press("slash")
        assert isinstance(screen.focused, Input)
        await pilot.press(*"baseline")
        await wait_for(pilot, lambda: shown_ids(app) == [2, 1])
        screen.query_one("#filter-search", Input).value = "#3"
        await wait_for(pilot, lambda: shown_ids(app) == [3])
        assert "1 runs" in str(screen.query_one("#runs-status").render())


async def test_sort_by_column(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(shown_ids(app)) == 6)
        app.screen.sort_by("accuracy")
        await wait_for(pilot, lambda: shown_ids(app)[:4] == [1, 4, 3, 2])  # 0.7, 0.5 (rollout), 0.48, 0.25
        await pilot.press("r")
        await wait_for(pilot, lambda: shown_ids(app)[:4] == [2, 3, 4, 1])
        app.screen.sort_by("name")
        await wait_for(pilot, lambda: shown_ids(app)[0] == 2)  # eval-base first; rollout-4 has no name


async def test_delete_with_confirmation_removes_row_and_run_dir(make_app, seeded_db):
    run_dir = Path(RunStore(seeded_db).get_run(1).run_dir)
    assert (run_dir / "adapter").is_dir()
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(shown_ids(app)) == 6)
        app.screen.query_one(RunsTable).select_run(1)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")  # keep
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert run_dir.exists()
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and 1 not in shown_ids(app))
    assert not run_dir.exists()
    assert [r.id for r in RunStore(seeded_db).list_runs()] == [6, 5, 4, 3, 2]


async def test_cancel_running_run(make_app, db_path, monkeypatch):
    monkeypatch.setenv("FAKE_ENGINE_SECONDS", "60")
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="sft", name="slow"))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.launcher.start(store, run.id)
        await wait_for(pilot, lambda: [r.status for r in app.screen.query_one(RunsTable)._rows] == ["running"])
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: [r.status for r in app.screen.query_one(RunsTable)._rows] == ["cancelled"])
    assert store.get_run(run.id).status == "cancelled"


async def test_cancel_asks_first_and_keeps_the_run_on_no(make_app, db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval"))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: shown_ids(app) == [run.id])
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert app.screen.question.startswith(f"Cancel run #{run.id} eval-{run.id}?")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.pause(0.5)
        assert store.get_run(run.id).status == "queued"
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: [r.status for r in app.screen.query_one(RunsTable)._rows] == ["cancelled"])
    assert store.get_run(run.id).error.startswith("Cancelled before it started")


async def test_dead_running_run_shows_as_failed(make_app, db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval"))
    store.update_run(run.id, status="running", pid=2**22 + 12345, pid_started=1.0)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: [r.status for r in app.screen.query_one(RunsTable)._rows] == ["failed"])


async def test_cancel_never_signals_a_process_that_reused_the_runs_pid(make_app, db_path):
    """A live, unrelated process holds the pid written in a running row (its start time differs):
    the app shows the run as dead, and cancel leaves the process alone."""
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store = RunStore(db_path)
        run = store.create_run(RunSpec(kind="eval"))
        store.update_run(run.id, status="running", pid=stranger.pid, pid_started=Owner.of_pid(stranger.pid).started - 50)
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: [r.status for r in app.screen.query_one(RunsTable)._rows] == ["failed"])
            store.update_run(run.id, status="running")  # as if read before the reap: cancel must still check
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("y")
            await wait_for(pilot, lambda: store.get_run(run.id).status == "failed")
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


async def test_resume_completes_a_cancelled_run(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(shown_ids(app)) == 6)
        app.screen.query_one(RunsTable).select_run(2)
        await pilot.press("R")  # completed: refused, nothing starts
        await pilot.pause(0.5)
        assert RunStore(seeded_db).get_run(2).environment.get("engine") is None
        app.screen.query_one(RunsTable).select_run(5)
        await pilot.press("R")
        await wait_for(pilot, lambda: RunStore(seeded_db).get_run(5).status == "completed")
    run = RunStore(seeded_db).get_run(5)
    assert run.environment == {"engine": "fake"} and run.error is None
    assert "fake engine: run 5 (eval) resumed" in (Path(run.run_dir) / "log.txt").read_text()


async def test_edit_tags_and_notes(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(shown_ids(app)) == 6)
        app.screen.query_one(RunsTable).select_run(2)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, EditRunDialog))
        assert app.screen.query_one("#edit-tags", Input).value == "baseline"
        app.screen.query_one("#edit-tags", Input).value = "baseline, keep  keep"
        app.screen.query_one("#edit-notes", TextArea).text = "the reference eval"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await wait_for(pilot, lambda: RunStore(seeded_db).get_run(2).notes == "the reference eval")
    assert RunStore(seeded_db).get_run(2).tags == ("baseline", "keep")


async def test_compare_needs_two_selected_runs(make_app, seeded_db):
    from tui.screens.compare import CompareScreen

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(shown_ids(app)) == 6)
        table = app.screen.query_one(RunsTable)
        await pilot.press("c")
        assert isinstance(app.screen, RunsScreen)
        table.select_run(2)
        await pilot.press("space")
        table.select_run(1)
        await pilot.press("space")
        assert table.marked == {1, 2}
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert app.screen.run_ids == [1, 2]


async def test_empty_database_tells_a_new_user_what_to_do(make_app, db_path):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        empty = app.screen.query_one("#runs-empty")
        await wait_for(pilot, lambda: empty.display)
        assert "No runs yet" in str(empty.render()) and "launch" in str(empty.render())


async def test_filters_that_hide_every_run_say_so(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(shown_ids(app)) == 6)
        empty = app.screen.query_one("#runs-empty")
        assert not empty.display
        app.screen.query_one("#filter-search", Input).value = "no run is called this"
        await wait_for(pilot, lambda: empty.display)
        assert "No runs match" in str(empty.render())


async def test_queued_runs_show_their_place_in_the_queue(make_app, db_path):
    store = RunStore(db_path)
    first, second = (store.create_run(RunSpec(kind="eval")).id for _ in range(2))
    app = make_app()

    def statuses() -> dict[int, str]:
        table = app.screen.query_one(RunsTable)
        return {run_id: table.get_cell(str(run_id), "status").plain.strip() for run_id in table.run_ids}

    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: statuses() == {first: "queued #1", second: "queued #2"})
        store.move_in_queue(second, 1)
        await wait_for(pilot, lambda: statuses() == {first: "queued #2", second: "queued #1"})
