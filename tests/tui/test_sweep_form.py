"""Sweeps from the launch form: several values in a field, the live grid size and sample, the
sweep's review, and its runs queued as `engine sweep` queues them (the fake engine runs them)."""

from __future__ import annotations

from engine.core.store import RunStore
from engine.core.sweep import sweep_specs
from tests.tui.conftest import wait_for
from tests.tui.test_launch import open_form
from textual.widgets import Input, Static

from tui.screens.review import ReviewDialog
from tui.screens.runs import RunsScreen
from tui.widgets.setting_field import SettingField

SWEEP = {"seed": "0..1", "learning_rate": "1e-3, 2e-3, 3e-3"}
"""In the form's order (the spec's), which sets the grid's order: the first varies slowest."""


def grid_text(screen) -> str:
    return str(screen.query_one("#launch-grid", Static).render())


async def test_a_sampled_sweep_from_the_form_queues_its_runs_tagged_and_named(make_app, db_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_form(pilot, "sft")
        assert not screen.query_one("#launch-sweep").display
        screen.query_one("#input-epochs", Input).value = "2"
        for name, text in SWEEP.items():
            screen.query_one(f"#input-{name}", Input).value = text
        await wait_for(pilot, lambda: grid_text(screen) == "6 runs")
        assert screen.query_one("#launch-sweep").display
        screen.query_one("#launch-sample", Input).value = "3"
        screen.query_one("#launch-sample-seed", Input).value = "7"
        await wait_for(pilot, lambda: grid_text(screen) == "3 of 6 runs")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewDialog))
        lines = app.screen.review.lines()
        assert "Runs      3 drawn from the grid's 6" in lines
        varying = lines.index("Varying")
        assert lines[varying + 1:varying + 3] == ["  seed           0, 1", "  learning_rate  0.001, 0.002, 0.003"]
        assert lines[-2:] == ["Changed from the defaults in every run", "  epochs  2"]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
    runs = sorted(RunStore(db_path).list_runs(), key=lambda run: run.id)
    expected = sweep_specs("sft", SWEEP | {"epochs": "2"}, sample=3, sample_seed=7)
    assert [run.spec for run in runs] == expected
    assert [run.name for run in runs] == [spec.name for spec in expected]
    (tag,) = runs[0].tags
    assert tag.startswith("sweep:") and all(run.tags == (tag,) for run in runs)


async def test_a_grid_past_fifty_runs_is_refused_in_one_line_until_sampled(make_app, db_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_form(pilot)
        screen.query_one("#input-seed", Input).value = "0..60"
        error = screen.query_one("#launch-sweep-error", Static)
        await wait_for(pilot, lambda: error.display)
        assert str(error.render()) == "the grid has 61 runs, more than 50; sample 50 or fewer of them"
        notices, notify = [], app.notify
        app.notify = lambda message, **kwargs: (notices.append(message), notify(message, **kwargs))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: notices)
        assert notices == ["Sweep sample: the grid has 61 runs, more than 50; sample 50 or fewer of them"]
        assert app.screen is screen and screen.focused is screen.query_one("#launch-sample", Input)
        await pilot.press("5")
        await wait_for(pilot, lambda: not error.display)
        assert grid_text(screen) == "5 of 61 runs"
    assert RunStore(db_path).list_runs() == []


async def test_each_value_of_a_list_is_checked_inline(make_app, db_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_form(pilot, "sft")
        field = screen.query_one("#setting-learning_rate", SettingField)
        for text, reason in [
            ("1e-3, fast", "expected a number, got 'fast'"),
            ("1e-3, 2", "must be at most 1 (got 2)"),
            ("1e-3..2e-3", "'1e-3..2e-3': a..b ranges are for whole-number settings; list the values"),
            ("1e-3,,2e-3", "empty value in '1e-3,,2e-3'; separate values with single commas"),
        ]:
            screen.query_one("#input-learning_rate", Input).value = text
            await wait_for(pilot, lambda: field.error == reason)
            assert not screen.query_one("#launch-sweep").display  # a refused list counts once
        screen.query_one("#input-learning_rate", Input).value = "1e-3, 2e-3"
        await wait_for(pilot, lambda: field.error is None and grid_text(screen) == "2 runs")
    assert RunStore(db_path).list_runs() == []


async def test_one_value_per_field_still_launches_one_untagged_run(make_app, db_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_form(pilot)
        screen.query_one("#input-seed", Input).value = "3, 3"  # repeated values count once
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewDialog))
        assert str(app.screen.query_one(".dialog-title").render()) == "Launch this run?"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await wait_for(pilot, lambda: RunStore(db_path).list_runs())
    (run,) = RunStore(db_path).list_runs()
    assert run.spec.seed == 3 and run.tags == () and run.name == ""
