"""User strings are text, never markup: runs named, tagged and annotated with markup, links,
escape sequences and brackets go through every screen without crashing the app, and show
literally. Worker errors become notifications; they never exit the app."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Label

from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.core.text import visible
from tests.tui.conftest import wait_for
from tui.screens.compare import CompareScreen
from tui.screens.edit_run import EditRunDialog
from tui.screens.run import RunScreen
from tui.screens.runs import RunsScreen
from tui.widgets.runs_table import RunsTable

HOSTILE = [
    "[/bold]x",
    "[link=http://example.com]click[/link]",
    "\x1b[31mred\x1b[0m",
    "expected [question, answer] rows",
    "[b]bold[/b] [@click=app.quit]quit[/]",
]


def _seed(store: RunStore) -> list[int]:
    ids = []
    for text in HOSTILE:
        run = store.create_run(RunSpec(kind="eval", name=text, model=f"/tmp/{text}"), tags=[text])
        store.update_run(run.id, notes=text)
        store.log_metrics(run.id, [(0, "accuracy", 0.5, 0.0)])
        store.add_samples(run.id, [{"idx": 0, "question": text, "target": 1.0, "output": text, "answer": 1.0, "correct": True}])
        store.mark_finished(run.id, "failed", f"dataset: {text} is missing; pass a file")
        ids.append(run.id)
    return ids


@pytest.mark.parametrize("size", [(80, 24)])
async def test_hostile_names_tags_notes_and_errors_render_as_text(make_app, db_path, size):
    ids = _seed(RunStore(db_path))
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(RunsTable)._rows) == len(HOSTILE))
        assert app.is_running
        for run_id in ids:
            app.open_run(run_id)
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run is not None)
            title = str(app.screen.query_one("#run-title", Label).render())
            assert visible(HOSTILE[run_id - 1]) in title and "\x1b" not in title
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        app.compare(ids)
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.query("#diff-table"))
        await pilot.pause(0.5)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        app.screen.query_one(RunsTable).select_run(ids[0])
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, EditRunDialog))
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.press(*"open")
        await pilot.pause(0.5)
        await pilot.press("escape")
        assert app.is_running
        table = app.screen.query_one(RunsTable)
        assert isinstance(table, DataTable)


async def test_a_database_fault_in_a_worker_is_a_notification_not_an_exit(make_app, db_path, monkeypatch):
    import sqlite3

    RunStore(db_path).create_run(RunSpec(kind="eval", name="fine"))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(RunsTable)._rows) == 1)

        def broken(*args, **kwargs):
            raise sqlite3.DatabaseError("database disk image is malformed")

        monkeypatch.setattr(RunStore, "run_page", broken)
        app.screen.reload()
        await wait_for(pilot, lambda: any("malformed" in str(n.message) for n in app._notifications))
        # Not stuck loading: the screen's timer may have started the next (failing) read already.
        await wait_for(pilot, lambda: app.screen._loading is False)
        assert app.is_running
        monkeypatch.undo()
        app.screen.reload()
        await wait_for(pilot, lambda: len(app.screen.query_one(RunsTable)._rows) == 1)
