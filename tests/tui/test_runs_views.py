"""The runs screen's chosen columns, groups, setting-vs-metric plot and selection."""

from __future__ import annotations

import json

import pytest
from textual.widgets import DataTable, Input, Select, SelectionList

from engine.core.store import RunStore
from tests.tui.conftest import wait_for
from tests.tui.seed import seed, seed_sweeps
from tui.screens.confirm import ConfirmDialog
from tui.screens.param_metric import ParamMetricScreen, plot_data, varying_settings
from tui.screens.runs import COLUMNS_SETTING, RunsScreen
from tui.screens.table_choices import ColumnsDialog, GroupingDialog
from tui.widgets.groups_table import GroupsTable
from tui.widgets.runs_table import DEFAULT_KEYS, RunsTable

SWEEP_RUNS = [12, 11, 10, 9, 8, 7]


@pytest.fixture
def sweeps_db(db_path):
    store = seed(db_path)
    seed_sweeps(store)
    store.close()
    return db_path


def table(app) -> RunsTable:
    return app.screen.query_one(RunsTable)


def cell(app, run_id: int, key: str) -> str:
    return table(app).get_cell(str(run_id), key).plain.strip()


async def loaded(pilot, count: int = 12) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RunsScreen) and len(table(pilot.app).run_ids) == count)


async def test_chosen_columns_show_settings_and_metrics_and_are_remembered_per_database(make_app, sweeps_db):
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, ColumnsDialog))
        choices = app.screen.query_one(SelectionList)
        assert set(choices.selected) == set(DEFAULT_KEYS) - {"id"}
        choices.deselect("started")
        choices.select("setting:learning_rate")
        choices.select("metric:answer_rate")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and "setting:learning_rate" in table(app).keys)
        await wait_for(pilot, lambda: len(table(app).run_ids) == 12 and cell(app, 2, "metric:answer_rate") == "0.75")
        assert "started" not in table(app).keys
        assert [cell(app, i, "setting:learning_rate") for i in (7, 10, 2)] == ["0.002", "0.001", ""]
        app.screen.sort_by("setting:learning_rate")
        await wait_for(pilot, lambda: table(app).run_ids[:3] == [10, 11, 12])
        await wait_for(pilot, lambda: RunStore(sweeps_db).setting(COLUMNS_SETTING) is not None)
    stored = json.loads(RunStore(sweeps_db).setting(COLUMNS_SETTING))
    assert "setting:learning_rate" in stored and "started" not in stored
    again = make_app()
    async with again.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        assert table(again).keys == ["id", *stored]


async def test_unknown_stored_columns_are_left_out(make_app, sweeps_db):
    RunStore(sweeps_db).set_setting(COLUMNS_SETTING, json.dumps(["name", "metric:nope", "setting:seed", 3]))
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        assert table(app).keys == list(DEFAULT_KEYS)  # not a list of text: the fixed columns
    RunStore(sweeps_db).set_setting(COLUMNS_SETTING, json.dumps(["name", "metric:nope", "setting:seed"]))
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: table(app).keys == ["id", "name", "setting:seed"])


async def test_a_three_seed_sweep_shows_as_one_group_with_mean_and_std(make_app, sweeps_db):
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, GroupingDialog))
        await pilot.press("down", "enter")  # the first grouping after "no grouping": sweep
        groups = app.screen.query_one(GroupsTable)
        await wait_for(pilot, lambda: len(groups.groups) == 3)
        assert [(g.label("sweep"), g.run_ids) for g in groups.groups] == [
            ("sweep:7", (7, 8, 9)), ("sweep:8", (10, 11, 12)), ("(no sweep)", (1, 2, 3, 4, 5, 6)),
        ]
        accuracy = groups.get_column_index("accuracy")
        assert groups.get_cell_at((0, accuracy)).plain.strip() == "0.81 ± 0.02 (n=3)"  # 0.80, 0.83, 0.79
        assert groups.get_cell_at((1, accuracy)).plain.strip() == "0.58 ± 0.03 (n=3)"
        assert "3 groups of 12 runs by sweep" in str(app.screen.query_one("#runs-status").render())
        await pilot.press("d", "x")  # no action on a single run while grouped
        await pilot.pause(0.3)
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("down", "enter")
        await loaded(pilot, 3)
        assert table(app).run_ids == [12, 11, 10]
        assert "group sweep:8" in str(app.screen.query_one("#runs-status").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: groups.display and len(groups.groups) == 3)
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, GroupingDialog))
        await pilot.press("home", "enter")  # no grouping
        await loaded(pilot)


async def test_setting_vs_metric_plots_the_selected_runs(make_app, sweeps_db):
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        for run_id in SWEEP_RUNS:
            table(app).select_run(run_id)
            await pilot.press("space")
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, ParamMetricScreen))
        points = app.screen.query_one("#pm-points", DataTable)
        await wait_for(pilot, lambda: points.row_count == 6)
        assert app.screen.run_ids == sorted(SWEEP_RUNS)
        assert app.screen.query_one("#pm-x", Select).value == "setting:learning_rate"
        assert app.screen.query_one("#pm-y", Select).value == "metric:accuracy"
        assert [points.get_cell_at((r, 1)).plain for r in range(6)] == ["0.001"] * 3 + ["0.002"] * 3
        app.screen.query_one("#pm-y", Select).value = "metric:loss"
        await wait_for(pilot, lambda: points.get_cell_at((0, 2)).plain == "0.95")  # 1.5 - 0.55
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))


def test_plot_data_places_numbers_on_a_scale_and_text_at_positions():
    numeric = plot_data([(1e-3, 0.5), (2e-3, 0.7), (1e-3, 0.7), (None, 0.9), (3e-3, None)])
    assert numeric.points == [(1e-3, 0.5), (2e-3, 0.7), (1e-3, 0.7)] and numeric.categories == []
    assert numeric.means == [(1e-3, pytest.approx(0.6)), (2e-3, 0.7)]
    text = plot_data([("linear", 0.5), ("cosine", 0.7)])
    assert text.categories == ["cosine", "linear"] and text.points == [(2.0, 0.5), (1.0, 0.7)]


def test_varying_settings_put_numbers_first():
    from engine.core.columns import SETTING_NAMES

    def row(**values):
        return (1, "r", *(values.get(name, "same") for name in SETTING_NAMES))

    rows = [row(adapter="", seed=0, epochs=1), row(adapter="1", seed=1, epochs=2)]
    assert varying_settings(rows) == ["epochs", "seed", "adapter"]


async def test_selection_is_limited_to_shown_runs_counted_and_cleared(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, 6)
        status = app.screen.query_one("#runs-status")
        for run_id in (1, 2):
            table(app).select_run(run_id)
            await pilot.press("space")
        assert table(app).marked == {1, 2} and "2 selected" in str(status.render())
        app.screen.query_one("#filter-kind", Select).value = "eval"
        await wait_for(pilot, lambda: table(app).run_ids == [5, 2])
        assert table(app).marked == {2} and "1 selected" in str(status.render())
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert app.screen.question.startswith("Delete run #2 ")  # not the hidden run 1
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("u")
        assert table(app).marked == set() and "selected" not in str(status.render())
        assert cell(app, 2, "id") == "2"
        app.screen.query_one("#filter-search", Input).value = ""
