"""Launching runs from the form."""

from __future__ import annotations

from engine.core.spec import RunSpec
from engine.core.store import RunStore
from tests.tui.conftest import wait_for
from textual.widgets import Input, Select

from tui.screens.launch import LaunchScreen
from tui.screens.runs import RunsScreen
from tui.widgets.runs_table import RunsTable
from tui.widgets.setting_field import SettingField


def statuses(app) -> dict[int, str]:
    return {row.id: row.status for row in app.screen.query_one(RunsTable)._rows}


async def test_launched_run_reaches_completed_in_the_table(make_app, db_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen))
        app.screen.query_one("#input-name", Input).value = "from-form"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and statuses(app).get(1) == "completed")
        table = app.screen.query_one(RunsTable)
        assert table.current_run.id == 1
        assert table.current_run.name == "from-form"
    store = RunStore(db_path)
    run = store.get_run(1)
    assert run.status == "completed" and run.spec.kind == "eval"
    assert "fake engine: done" in (db_path.parent / "runs" / "1" / "log.txt").read_text()


async def test_invalid_value_is_refused_inline_and_creates_no_run(make_app, db_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen))
        app.screen.query_one("#input-batch_size", Input).value = "0"
        await pilot.pause()
        field = app.screen.query_one("#setting-batch_size", SettingField)
        assert field.error == "must be at least 1 (got 0)"
        assert field.has_class("-invalid")
        notices, notify = [], app.notify
        app.notify = lambda message, **kwargs: (notices.append(message), notify(message, **kwargs))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: notices)  # the refusal, which returns before any run is created
        assert notices == ["Fix the highlighted settings first."]
        assert isinstance(app.screen, LaunchScreen)
        assert app.screen.focused is app.screen.query_one("#input-batch_size", Input)
    assert RunStore(db_path).list_runs() == []


async def test_kind_switch_rebuilds_the_form_and_keeps_edits(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen))
        app.screen.query_one("#input-seed", Input).value = "7"
        app.screen.query_one("#launch-kind", Select).value = "sft"
        await wait_for(pilot, lambda: app.screen.query("#input-lora_rank"))
        assert app.screen.query_one("#input-seed", Input).value == "7"
        assert app.screen.query_one("#input-learning_rate", Input).value == str(RunSpec.default_for("sft", "learning_rate"))
        assert not app.screen.query("#setting-mode")


async def test_parent_run_is_offered_and_recorded(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen))
        picker = app.screen.query_one("#setting-adapter .parent-picker", Select)
        await wait_for(pilot, lambda: app.screen.query_one("#setting-adapter", SettingField).candidate_ids)
        assert app.screen.query_one("#setting-adapter", SettingField).candidate_ids == {1}
        picker.value = 1
        await pilot.pause()
        assert app.screen.query_one("#input-adapter", Input).value == "1"
        app.screen.query_one("#input-adapter", Input).value = "2"
        await pilot.pause()
        assert "not a completed run with adapter" in app.screen.query_one("#setting-adapter", SettingField).error
        app.screen.query_one("#input-adapter", Input).value = "1"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and 7 in statuses(app))
    run = RunStore(seeded_db).get_run(7)
    assert run.parent_id == 1 and run.spec.adapter == "1"
