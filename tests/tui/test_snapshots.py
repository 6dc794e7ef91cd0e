"""SVG snapshots of each screen at 80×24 on the seeded database (fixed times, UTC).

Regenerate after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import pytest
from tests.tui.conftest import FAKE_ENGINE
from tests.tui.seed import seed_sweeps
from textual.widgets import DataTable, Input

from engine.core.store import RunStore

from tui.app import ReasonlabApp
from tui.screens.compare import CompareScreen
from tui.screens.launch import LaunchScreen
from tui.screens.param_metric import ParamMetricScreen
from tui.screens.table_choices import ColumnsDialog, GroupingDialog
from tui.screens.review import ReviewDialog
from tui.screens.run import RunScreen
from tui.widgets.metric_chart import MetricChart
from tui.widgets.result_panel import ResultPanel
from tui.widgets.groups_table import GroupsTable
from tui.widgets.runs_table import DEFAULT_KEYS, RunsTable
from tui.widgets.setting_field import SettingField

SIZE = (80, 24)


def app_for(db) -> ReasonlabApp:
    return ReasonlabApp(db, engine=FAKE_ENGINE)


async def until(pilot, predicate) -> None:
    from tests.tui.conftest import wait_for

    await wait_for(pilot, predicate)
    await pilot.pause()


async def runs_loaded(pilot) -> None:
    await until(pilot, lambda: len(pilot.app.screen.query_one(RunsTable).run_ids) == 6)


class TestRunsScreen:
    def test_all_runs(self, snap_compare, seeded_db):
        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=runs_loaded)

    def test_selected_and_sorted(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await runs_loaded(pilot)
            await pilot.press("down", "space", "down", "space", "s", "s", "s", "s", "s")
            await until(pilot, lambda: pilot.app.screen.query_one(RunsTable).run_ids[0] == 1)

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)


class TestLaunchScreen:
    @staticmethod
    async def open_form(pilot, kind: str = "eval") -> None:
        await runs_loaded(pilot)
        pilot.app.launch(kind)
        await until(pilot, lambda: isinstance(pilot.app.screen, LaunchScreen) and any(
            f.candidate_ids for f in pilot.app.screen.query("#setting-adapter").results(SettingField)
        ))

    def test_eval_form(self, snap_compare, seeded_db):
        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=self.open_form)

    def test_invalid_value(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await self.open_form(pilot, "sft")
            pilot.app.screen.query_one("#input-learning_rate", Input).value = "2"
            await pilot.press("ctrl+s")
            await pilot.pause()

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)


class TestLaunchReview:
    def test_review_of_a_clone(self, snap_compare, seeded_db):
        """Clone the rollout run (third row) and review it: adapter with its base model, dataset
        with its question count, the settings changed from the defaults."""

        async def run_before(pilot):
            await runs_loaded(pilot)
            await pilot.press("down", "down", "C")
            await until(pilot, lambda: isinstance(pilot.app.screen, LaunchScreen) and any(
                f.candidate_ids for f in pilot.app.screen.query("#setting-adapter").results(SettingField)
            ))
            await pilot.press(*"second-look", "ctrl+s")
            await until(pilot, lambda: isinstance(pilot.app.screen, ReviewDialog))

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)


class TestRunScreen:
    @staticmethod
    async def open_run(pilot) -> None:
        await runs_loaded(pilot)
        pilot.app.open_run(1)
        await until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.run is not None)

    def test_charts(self, snap_compare, seeded_db):
        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=self.open_run)

    def test_samples(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await self.open_run(pilot)
            await pilot.press("2")

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)


class TestEvalResults:
    """An eval opens on its result panel: the runs are listed newest first, so the completed
    eval (run 2) is four rows down."""

    @staticmethod
    async def open_eval(pilot) -> None:
        await runs_loaded(pilot)
        await pilot.press("down", "down", "down", "down", "enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and "0.250" in pilot.app.screen.query_one(ResultPanel).text)

    def test_finished_eval(self, snap_compare, seeded_db):
        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=self.open_eval)

    def test_finished_rollout(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await runs_loaded(pilot)
            await pilot.press("down", "down", "enter")
            await until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and "0.625" in pilot.app.screen.query_one(ResultPanel).text)

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)


class TestCompareScreen:
    @staticmethod
    async def open_compare(pilot) -> None:
        await runs_loaded(pilot)
        pilot.app.compare([1, 3])
        await until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen) and pilot.app.screen.query(MetricChart))

    def test_curves(self, snap_compare, seeded_db):
        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=self.open_compare)

    def test_spec_diff(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await self.open_compare(pilot)
            await pilot.press("2")

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)

    def test_outcomes(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await runs_loaded(pilot)
            pilot.app.compare([1, 2])
            await until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen) and pilot.app.screen.query(MetricChart))
            await pilot.press("4")

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)


class TestHelpScreen:
    def test_help(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await runs_loaded(pilot)
            await pilot.press("f1")

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)


@pytest.fixture
def sweeps_db(seeded_db):
    """The seeded runs and two 3-seed SFT sweeps (runs 7-12)."""
    store = RunStore(seeded_db)
    seed_sweeps(store)
    store.close()
    return seeded_db


async def sweeps_loaded(pilot) -> None:
    await until(pilot, lambda: len(pilot.app.screen.query_one(RunsTable).run_ids) == 12)


class TestRunsColumns:
    def test_chosen_columns(self, snap_compare, sweeps_db):
        """Hide Kind, Model and Started; show the learning rate and seed settings, sorted by
        the learning rate (s moves the sort to the next column)."""
        from engine.core.columns import SETTING_NAMES

        fixed = [key for key in DEFAULT_KEYS if key != "id"]
        settings = [len(fixed) + SETTING_NAMES.index(name) for name in ("seed", "learning_rate")]

        async def run_before(pilot):
            await sweeps_loaded(pilot)
            await pilot.press("o")
            await until(pilot, lambda: isinstance(pilot.app.screen, ColumnsDialog))
            position = 0
            for index in sorted([fixed.index("kind"), fixed.index("model"), fixed.index("started"), *settings]):
                await pilot.press(*["down"] * (index - position), "space")
                position = index
            await pilot.press("ctrl+s")
            await until(pilot, lambda: "setting:seed" in pilot.app.screen.query_one(RunsTable).keys)
            await sweeps_loaded(pilot)
            pilot.app.screen.sort_by("setting:learning_rate")
            await until(pilot, lambda: pilot.app.screen.query_one(RunsTable).run_ids[0] == 10)

        assert snap_compare(app_for(sweeps_db), terminal_size=SIZE, run_before=run_before)


class TestRunsGrouping:
    def test_three_seed_sweeps_as_groups(self, snap_compare, sweeps_db):
        async def run_before(pilot):
            await sweeps_loaded(pilot)
            await pilot.press("g")
            await until(pilot, lambda: isinstance(pilot.app.screen, GroupingDialog))
            await pilot.press("down", "enter")
            await until(pilot, lambda: len(pilot.app.screen.query_one(GroupsTable).groups) == 3)

        assert snap_compare(app_for(sweeps_db), terminal_size=SIZE, run_before=run_before)

    def test_expanded_group(self, snap_compare, sweeps_db):
        async def run_before(pilot):
            await sweeps_loaded(pilot)
            await pilot.press("g")
            await until(pilot, lambda: isinstance(pilot.app.screen, GroupingDialog))
            await pilot.press("down", "enter")
            await until(pilot, lambda: len(pilot.app.screen.query_one(GroupsTable).groups) == 3)
            await pilot.press("enter")
            await until(pilot, lambda: pilot.app.screen.query_one(RunsTable).run_ids == [9, 8, 7])

        assert snap_compare(app_for(sweeps_db), terminal_size=SIZE, run_before=run_before)


class TestParamVsMetric:
    def test_learning_rate_against_accuracy(self, snap_compare, sweeps_db):
        """The six sweep runs (the top rows) selected with space, then v."""

        async def run_before(pilot):
            await sweeps_loaded(pilot)
            for _ in range(6):
                await pilot.press("space", "down")
            await pilot.press("v")
            await until(pilot, lambda: isinstance(pilot.app.screen, ParamMetricScreen)
                        and pilot.app.screen.query_one("#pm-points", DataTable).row_count == 6)

        assert snap_compare(app_for(sweeps_db), terminal_size=SIZE, run_before=run_before)


class TestSelection:
    def test_a_filter_drops_hidden_runs_from_the_selection(self, snap_compare, seeded_db):
        """Runs 2 and 1 selected, then a search for 'eval' hides run 1: one run stays selected."""

        async def run_before(pilot):
            await runs_loaded(pilot)
            await pilot.press("down", "down", "down", "down", "space", "down", "space", "slash", *"eval", "escape")
            await until(pilot, lambda: pilot.app.screen.query_one(RunsTable).run_ids == [5, 2])

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)
