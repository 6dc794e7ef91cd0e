"""Queued runs from the runs screen: `[` and `]` move the highlighted one in the queue, x
cancels it after asking. The runs are queued with no engine process, so they stay queued."""

from __future__ import annotations

from engine.core.spec import RunSpec
from engine.core.store import RunStore
from tests.tui.conftest import wait_for

from tui.screens.confirm import ConfirmDialog
from tui.screens.runs import RunsScreen
from tui.widgets.runs_table import RunsTable


def queue(db_path) -> list[int]:
    return [queued.id for queued in RunStore(db_path).queued_runs()]


def positions(app) -> dict[int, int | None]:
    return {row.id: row.queue_position for row in app.screen.query_one(RunsTable)._rows}


async def test_brackets_move_the_highlighted_queued_run_and_the_table_follows(make_app, seeded_db):
    store = RunStore(seeded_db)
    waiting = [store.create_run(RunSpec(kind="eval", name=f"waiting-{n}")).id for n in range(2)]
    assert queue(seeded_db) == [6, *waiting]
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(RunsTable).run_ids) == 8)
        app.screen.query_one(RunsTable).select_run(waiting[1])
        await pilot.press("left_square_bracket")
        await wait_for(pilot, lambda: positions(app)[waiting[1]] == 2)
        assert queue(seeded_db) == [6, waiting[1], waiting[0]]
        assert positions(app)[waiting[0]] == 3
        await pilot.press("left_square_bracket", "left_square_bracket")  # the second finds it first
        await wait_for(pilot, lambda: positions(app)[waiting[1]] == 1)
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: positions(app)[waiting[1]] == 2)
        await pilot.pause(0.3)
        assert queue(seeded_db) == [6, waiting[1], waiting[0]]


async def test_brackets_do_nothing_on_a_run_that_is_not_queued(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(RunsTable).run_ids) == 6)
        app.screen.query_one(RunsTable).select_run(1)
        await pilot.pause()
        assert app.screen.check_action("move_in_queue", (-1,)) is False
        app.screen.query_one(RunsTable).select_run(6)
        await pilot.pause()
        assert app.screen.check_action("move_in_queue", (-1,)) is True


async def test_a_queued_run_is_cancelled_after_confirming(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(RunsTable).run_ids) == 6)
        app.screen.query_one(RunsTable).select_run(6)  # the queued pipeline
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.pause(0.3)
        assert RunStore(seeded_db).get_run(6).status == "queued"
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: {row.id: row.status for row in app.screen.query_one(RunsTable)._rows}[6] == "cancelled")
    assert RunStore(seeded_db).get_run(6).status == "cancelled"
    assert queue(seeded_db) == []
