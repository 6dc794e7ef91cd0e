"""The run screen: live charts, progress, samples, log and details."""

from __future__ import annotations

from engine.core.metrics import CHARTS_BY_KIND
from engine.core.processes import Owner
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from tests.tui.conftest import wait_for
from textual.widgets import DataTable, RichLog, Select, TabbedContent

from tui.screens.confirm import ConfirmDialog
from tui.screens.run import RunScreen, read_log
from tui.screens.sample_detail import SampleDialog
from tui.widgets.metric_chart import MetricChart
from tui.widgets.result_panel import ResultPanel
from tui.widgets.samples_view import SamplesView


def log_text(screen: RunScreen) -> str:
    """The log as shown (the view renders once its tab has been shown)."""
    return "\n".join(strip.text for strip in screen.query_one("#run-log", RichLog).lines)


async def test_every_chart_of_a_grpo_run_gets_room_and_is_drawn(make_app, db_path):
    """Six charts in a grid of two columns: a fixed two-row grid once left the last three with no
    room, so a GRPO run never showed its KL, clipping or completion lengths."""
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="grpo", steps=10))
    store.log_metrics(run.id, [(s, m, 0.1 * s, 1e9 + s) for s in range(1, 11) for m in CHARTS_BY_KIND["grpo"]])
    store.update_run(run.id, status="completed", started_at=1e9, finished_at=1e9 + 20)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_run(run.id)
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.query(MetricChart))
        charts = list(app.screen.query(MetricChart))
        assert [c.metric for c in charts] == list(CHARTS_BY_KIND["grpo"]) and len(charts) == 6
        await wait_for(pilot, lambda: all(c.drawn for c in charts))
        assert all(c.region.height >= 7 and c.region.width >= 40 for c in charts)


async def test_seeded_run_shows_charts_samples_and_details(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_run(1)
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run is not None)
        screen = app.screen
        charts = {c.metric: c for c in screen.query(MetricChart)}
        assert set(charts) == {"loss", "lr", "accuracy", "shifted_accuracy"}
        assert len(charts["loss"].series[""]) == 17 and charts["accuracy"].last_step() == 80
        assert charts["shifted_accuracy"].last_step() == 80
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
        assert loss.series[""].steps.tolist() == list(range(1, 11))  # each point once
        assert app.screen.query_one(SamplesView).query_one(DataTable).row_count == 6
        await pilot.press("3")
        await wait_for(pilot, lambda: "fake engine: done" in log_text(app.screen))


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
        await pilot.press("3")
        await wait_for(pilot, lambda: "resumed" in log_text(screen))


def test_read_log_tails_and_continues(tmp_path):
    log = tmp_path / "log.txt"
    assert read_log(log, None) == ([], 0)
    log.write_text("one\ntwo\nthr")
    lines, offset = read_log(log, None)
    assert lines == ["one", "two"] and offset == 8
    with log.open("a") as f:
        f.write("ee\nbar 10%\rbar 100%\n")
    assert read_log(log, offset) == (["three", "bar 100%"], len(log.read_bytes()))


async def open_run_page(app, pilot, run_id: int) -> RunScreen:
    app.open_run(run_id)
    await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run is not None)
    return app.screen


async def test_a_finished_eval_opens_on_its_accuracy(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_page(app, pilot, 2)
        panel = screen.query_one(ResultPanel)
        await wait_for(pilot, lambda: "0.250" in panel.text)
        assert panel.display and screen.query_one(TabbedContent).active == "charts"
        assert panel.text.split("\n") == [
            "8 / 8 questions · completed",
            "Accuracy", "0.250", "2 of 8 correct",
            "Answer rate", "0.750", "6 of 8 answered",
            "Tokens / s", "812", "generated",
        ]
        assert panel.region.height > 0 and panel.region.y < 24  # on the first screen, visible


async def test_a_rollout_shows_success_and_correct_rates(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_page(app, pilot, 4)
        panel = screen.query_one(ResultPanel)
        await wait_for(pilot, lambda: "0.625" in panel.text)
        assert "Success rate\n0.625" in panel.text and "Correct rate\n0.500" in panel.text


async def test_training_runs_have_no_result_panel(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_page(app, pilot, 1)
        assert not screen.query_one(ResultPanel).display


async def test_a_running_eval_counts_live(make_app, db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval", limit=8))
    store.claim_run(run.id, Owner.of_this_process(), {}, resume=False)
    store.add_samples(run.id, [sample_row(i, correct=i == 0) for i in range(3)])
    store.set_progress(run.id, 3, 8)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_page(app, pilot, run.id)
        panel = screen.query_one(ResultPanel)
        await wait_for(pilot, lambda: "3 / 8 questions · running" in panel.text)
        assert "Accuracy so far\n0.333\n1 of 3 correct" in panel.text
        assert "Answer rate\n-\nwhen it finishes" in panel.text
        store.add_samples(run.id, [sample_row(i, correct=i < 5) for i in range(3, 8)])
        store.log_metrics(run.id, [(0, "accuracy", 0.375, 0.0), (0, "answer_rate", 1.0, 0.0), (0, "tokens_per_s", 50.0, 0.0)], progress=(8, 8))
        store.mark_finished(run.id, "completed")
        await wait_for(pilot, lambda: "completed" in panel.text)
        assert "Accuracy\n0.375\n3 of 8 correct" in panel.text and "Tokens / s\n50.0" in panel.text


def sample_row(idx: int, correct: bool) -> dict:
    return {
        "step": 0, "idx": idx, "question": f"q{idx}", "target": 1.0, "output": "<answer>1</answer>",
        "answer": 1.0 if correct else 2.0, "correct": correct,
    }


async def test_a_poll_that_lands_while_the_screen_closes_is_dropped(make_app, seeded_db, monkeypatch):
    """Escape pressed while a poll is being read: the reply reaches a screen whose charts are
    already removed. It must be dropped, not crash the app looking for them."""
    app = make_app()
    replies = []
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_run(1)
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run is not None)
        screen = app.screen
        screen._timer.pause()
        real = RunScreen.on_run_screen_polled
        monkeypatch.setattr(RunScreen, "on_run_screen_polled", lambda self, message: replies.append(message))
        screen._poll(screen.state, screen.metrics, False)  # a fresh reply, kept for later
        await wait_for(pilot, lambda: replies)
        assert replies[0].result.points["loss"] is not None
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.is_attached)
        real(screen, replies[0])  # as if it had landed during the removal
        await pilot.pause(0.2)
        assert app.is_running
