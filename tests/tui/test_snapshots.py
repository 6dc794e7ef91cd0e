"""SVG snapshots of each screen at 80×24 on the seeded database (fixed times, UTC).

Regenerate after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import pytest
from tests.tui.conftest import FAKE_ENGINE
from tests.tui.seed import seed_families
from textual.widgets import Input

from tui.app import ReasonlabApp
from tui.screens.compare import CompareScreen
from tui.screens.family import FamilyScreen
from tui.screens.launch import LaunchScreen
from tui.screens.review import ReviewDialog
from tui.screens.run import RunScreen
from tui.screens.run_picker import RunPicker
from tui.widgets.metric_chart import MetricChart
from tui.widgets.result_panel import ResultPanel
from tui.widgets.runs_table import RunsTable
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
def family_db(db_path):
    """The seeded runs, then a pipeline with its stages (7-11), an eval of its adapter (12) and
    a sweep (13-15); the runs list shows them newest first."""
    seed_families(db_path).close()
    return db_path


async def family_runs_loaded(pilot) -> None:
    await until(pilot, lambda: len(pilot.app.screen.query_one(RunsTable).run_ids) == 15)


async def open_row(pilot, row: int) -> None:
    """Open the run `row` rows below the newest (run 15 - row)."""
    await family_runs_loaded(pilot)
    await pilot.press(*["down"] * row, "enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.run is not None
                and pilot.app.screen.run_id == 15 - row)


class TestLineage:
    """Run 11, the pipeline's last RFT stage: its pipeline, its adapter and data runs, and the
    eval built from it on one line; p lists its three parents."""

    def test_lineage_line(self, snap_compare, family_db):
        async def run_before(pilot):
            await open_row(pilot, 4)
            await until(pilot, lambda: pilot.app.screen.query_one("#run-lineage").display)

        assert snap_compare(app_for(family_db), terminal_size=SIZE, run_before=run_before)

    def test_parents_listed(self, snap_compare, family_db):
        async def run_before(pilot):
            await open_row(pilot, 4)
            await until(pilot, lambda: pilot.app.screen.query_one("#run-lineage").display)
            await pilot.press("p")
            await until(pilot, lambda: isinstance(pilot.app.screen, RunPicker))

        assert snap_compare(app_for(family_db), terminal_size=SIZE, run_before=run_before)


class TestFamilyView:
    def test_pipeline_from_a_stage(self, snap_compare, family_db):
        async def run_before(pilot):
            await open_row(pilot, 6)  # run 9, the reference RFT stage
            await pilot.press("f")
            await until(pilot, lambda: isinstance(pilot.app.screen, FamilyScreen) and pilot.app.screen.family)

        assert snap_compare(app_for(family_db), terminal_size=SIZE, run_before=run_before)

    def test_sweep_from_the_runs_screen(self, snap_compare, family_db):
        async def run_before(pilot):
            await family_runs_loaded(pilot)
            await pilot.press("down", "f")
            await until(pilot, lambda: isinstance(pilot.app.screen, FamilyScreen) and pilot.app.screen.family)

        assert snap_compare(app_for(family_db), terminal_size=SIZE, run_before=run_before)


class TestFailedRun:
    def test_opens_on_its_error(self, snap_compare, family_db):
        """Run 3 (rft, failed with 'CUDA out of memory') opens on the log tab, error first."""

        async def run_before(pilot):
            await open_row(pilot, 12)
            await until(pilot, lambda: pilot.app.screen.query_one("#run-error").display)

        assert snap_compare(app_for(family_db), terminal_size=SIZE, run_before=run_before)
