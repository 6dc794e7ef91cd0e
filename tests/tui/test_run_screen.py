"""The run screen: live charts, progress, samples, log and details."""

from __future__ import annotations

from engine.core.spec import RunSpec
from engine.core.store import RunStore
from tests.tui.conftest import wait_for
from textual.widgets import DataTable, Log, Select

from tui.screens.confirm import ConfirmDialog
from tui.screens.run import RunScreen, read_log
from tui.screens.sample_detail import SampleDialog
from tui.widgets.metric_chart import MetricChart
from tui.widgets.samples_view import SamplesView


async def test_seeded_run_shows_charts_samples_and_details(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_run(1)
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run is not None)
        screen = app.screen
        charts = {c.metric: c for c in screen.query(MetricChart)}
        assert set(charts) == {"loss", "lr", "accuracy"}
        assert len(charts["loss"].series[""]) == 17 and charts["accuracy"].last_step() == 80
        samples = screen.query_one("#samples-table", DataTable)
        assert samples.row_count == 8
        await pilot.press("2")
        screen.query_one("#samples-filter", Select).value = "incorrect"
        await wait_for(pilot, lambda: samples.row_count == 3)
        samples.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SampleDialog))
        assert app.screen.sample["correct"] == 0
        await pilot.press("escape")
        await pilot.press("4")
        assert screen.query_one("#artifacts-table", DataTable).row_count == 1


async def test_points_appear_while_the_run_goes_on(make_app, db_path, monkeypatch):
    monkeypatch.setenv("FAKE_ENGINE_SECONDS", "3")
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="sft"))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.launcher.start(store, run.id)
        app.open_run(run.id)
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run is not None)
        loss = app.screen.query_one("#chart-loss", MetricChart)
        await wait_for(pilot, lambda: 0 < loss.last_step() < 10)
        await wait_for(pilot, lambda: app.screen.run.status == "completed")
        await pilot.pause(0.5)
        assert [s for s, _ in loss.series[""]] == list(range(1, 11))  # each point once
        assert app.screen.query_one(SamplesView).query_one(DataTable).row_count == 6
        assert any("fake engine: done" in line for line in app.screen.query_one(Log).lines)


async def test_cancel_after_confirmation_then_resume_and_follow_the_run(make_app, db_path, monkeypatch):
    monkeypatch.setenv("FAKE_ENGINE_SECONDS", "60")
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="sft"))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.launcher.start(store, run.id)
        app.open_run(run.id)
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run is not None)
        screen = app.screen
        await wait_for(pilot, lambda: screen.run.status == "running")
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen is screen and screen.run.status == "cancelled")
        monkeypatch.setenv("FAKE_ENGINE_SECONDS", "1")
        await pilot.pause(1.0)  # the screen has stopped polling the finished run
        await pilot.press("R")
        await wait_for(pilot, lambda: screen.run.status == "completed")
        assert any("resumed" in line for line in screen.query_one(Log).lines)


def test_read_log_tails_and_continues(tmp_path):
    log = tmp_path / "log.txt"
    assert read_log(log, None) == ([], 0)
    log.write_text("one\ntwo\nthr")
    lines, offset = read_log(log, None)
    assert lines == ["one", "two"] and offset == 8
    with log.open("a") as f:
        f.write("ee\nbar 10%\rbar 100%\n")
    assert read_log(log, offset) == (["three", "bar 100%"], len(log.read_bytes()))
