"""SVG snapshots of each screen at 80×24 on the seeded database (fixed times, UTC).

Regenerate after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import csv

import pytest
from textual.widgets import DataTable, Input, Label, Select

from engine.core.export import FILES
from engine.core.processes import Owner
from engine.core.spec import RunSpec
from engine.core.store import RunStore, open_store
from tests.tui.conftest import FAKE_ENGINE, wait_for
from tests.tui.seed import SHIFTED_QUESTIONS, add_eval_categories, add_shifted_samples, seed_families, seed_sweeps
from tui.app import ReasonlabApp
from tui.screens.compare import CompareScreen
from tui.screens.export_dialog import ExportDialog, default_folder
from tui.screens.family import FamilyScreen
from tui.screens.launch import LaunchScreen
from tui.screens.param_metric import ParamMetricScreen
from tui.screens.review import ReviewDialog
from tui.screens.run import RunScreen
from tui.screens.run_picker import RunPicker
from tui.screens.side_by_side import SideBySideDialog
from tui.screens.table_choices import ColumnsDialog, GroupingDialog
from tui.widgets.groups_table import GroupsTable
from tui.widgets.metric_chart import MetricChart
from tui.widgets.outcome_matrix import NOT_EVALUATED
from tui.widgets.result_panel import ResultPanel, breakdowns
from tui.widgets.runs_table import DEFAULT_KEYS, RunsTable
from tui.widgets.samples_view import SamplesView
from tui.widgets.setting_field import SettingField
from tui.widgets.state_checkbox import StateCheckbox

SIZE = (80, 24)


def app_for(db) -> ReasonlabApp:
    return ReasonlabApp(db, engine=FAKE_ENGINE)


async def until(pilot, predicate) -> None:
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
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor would make the snapshot depend on timing

    def test_eval_form(self, snap_compare, seeded_db):
        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=self.open_form)

    def test_invalid_value(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await self.open_form(pilot, "sft")
            pilot.app.screen.query_one("#input-learning_rate", Input).value = "2"
            await pilot.press("ctrl+s")
            await until(pilot, lambda: len(pilot.app.screen.query("Toast")) == 1)  # the refusal shows

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


class TestRanks:
    """A rollout on two ranks: the run page names its ranks, their threads and each rank's
    latest generation speed; a one-process run's page leaves the line out."""

    @staticmethod
    def seed_two_rank_rollout(db) -> int:
        from engine.core.metrics import SAMPLES_PER_S, THREADS, TOKENS_PER_S, per_rank_name
        from engine.core.spec import RunSpec
        from engine.core.store import RunStore
        from tests.tui.seed import T0

        store = RunStore(db)
        run = store.create_run(RunSpec(kind="rollout", name="two-ranks", num_samples=4, processes=2))
        points = [(0, per_rank_name(THREADS, r), 1, T0) for r in (0, 1)]
        for step, rates in ((4, (12.5, 80.0)), (8, (41.2, 38.7))):  # the page shows the latest
            points += [(step, per_rank_name(TOKENS_PER_S, r), rate, T0) for r, rate in enumerate(rates)]
        points += [(8, "success_rate", 0.5, T0), (8, "correct_rate", 0.25, T0), (8, TOKENS_PER_S, 79.9, T0)]
        store.log_metrics(run.id, points, progress=(8, 8))
        assert SAMPLES_PER_S not in store.get_run(run.id).summary
        store.update_run(run.id, status="completed", created_at=T0 + 8000, started_at=T0 + 8005, finished_at=T0 + 8100, pid=None)
        store.close()
        return run.id

    @staticmethod
    async def open_run(pilot, run_id: int) -> None:
        await until(pilot, lambda: len(pilot.app.screen.query_one(RunsTable).run_ids) == 7)
        pilot.app.open_run(run_id)
        await until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.run is not None)

    async def test_a_two_rank_run_shows_each_ranks_latest_speed_and_a_one_rank_run_no_line(self, seeded_db):
        from tui.widgets.rank_panel import RankPanel

        run_id = self.seed_two_rank_rollout(seeded_db)
        app = app_for(seeded_db)
        async with app.run_test(size=SIZE) as pilot:
            await self.open_run(pilot, run_id)
            panel = pilot.app.screen.query_one(RankPanel)
            assert panel.display
            assert str(panel.content) == "2 ranks × 1 thread · rank 0 41 tok/s · rank 1 39 tok/s"
            await pilot.press("escape")
            pilot.app.open_run(1)  # the seeded sft run: one process
            await until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.run is not None)
            assert not pilot.app.screen.query_one(RankPanel).display

    def test_machines_with_other_thread_counts_show_the_range(self):
        from engine.core.spec import RunSpec
        from engine.core.store import Run
        from tui.widgets.rank_panel import ranks_text

        def run(spec: RunSpec, summary: dict[str, float]) -> Run:  # only what the line reads
            return Run(**dict.fromkeys(Run.__dataclass_fields__) | {"spec": spec, "summary": summary})

        two_machines = RunSpec(kind="sft", processes=1, machines=2)
        summary = {"threads/rank=0": 2.0, "threads/rank=1": 4.0, "samples_per_s/rank=1": 3.5, "samples_per_s/rank=0": 12.0}
        assert ranks_text(run(two_machines, summary)) == "2 ranks × 2–4 threads · rank 0 12 samples/s · rank 1 3.5 samples/s"
        assert ranks_text(run(two_machines, {})) == "2 ranks"  # before the ranks report
        assert ranks_text(run(RunSpec(kind="sft"), summary)) is None

    def test_two_rank_rollout(self, snap_compare, seeded_db):
        run_id = self.seed_two_rank_rollout(seeded_db)

        async def run_before(pilot):
            await self.open_run(pilot, run_id)

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)


class TestSweepForm:
    """Several values in two sft fields, typed: the grid size shows above the form; ctrl+s
    reviews the sweep, with the estimate from the seeded sft run of the same size (2 epochs)."""

    @staticmethod
    async def fill_sweep(pilot) -> None:
        await TestLaunchScreen.open_form(pilot, "sft")
        for name, typed in (("seed", "..2"), ("learning_rate", ", 1e-3"), ("epochs", ["backspace", "2"])):
            pilot.app.screen.query_one(f"#input-{name}", Input).focus()
            await pilot.press("end", *typed)
        await until(pilot, lambda: pilot.app.screen.query_one("#launch-sweep").display)

    def test_sweep_values(self, snap_compare, seeded_db):
        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=self.fill_sweep)

    def test_sweep_review(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await self.fill_sweep(pilot)
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(pilot.app.screen, ReviewDialog))

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)


async def open_run_charts(pilot) -> None:
    await TestRunScreen.open_run(pilot)
    await until(pilot, lambda: all(c.drawn for c in pilot.app.screen.query(MetricChart)))


async def open_compare_charts(pilot) -> None:
    await TestCompareScreen.open_compare(pilot)
    await until(pilot, lambda: all(c.drawn for c in pilot.app.screen.query(MetricChart)))


class TestChartSmoothing:
    def test_smoothed_with_raw_behind(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await open_run_charts(pilot)
            await pilot.press("s")

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)

    def test_smoothed_on_log_y(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await open_run_charts(pilot)
            await pilot.press("s", "l")

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)


class TestQueueKeys:
    """Two more queued evals after the seeded pipeline: `[` on the newest moves it from #3 to #2."""

    def test_moved_up(self, snap_compare, seeded_db):
        from engine.core.spec import RunSpec
        from engine.core.store import RunStore

        store = RunStore(seeded_db)
        for n in range(2):
            store.create_run(RunSpec(kind="eval", name=f"waiting-{n}"))
        store.close()

        async def run_before(pilot):
            await until(pilot, lambda: len(pilot.app.screen.query_one(RunsTable).run_ids) == 8)
            await pilot.press("left_square_bracket")
            await until(pilot, lambda: pilot.app.screen.query_one(RunsTable).current_run.queue_position == 2)

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)


class TestChartXAxis:
    def test_compare_by_wall_time(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await open_compare_charts(pilot)
            await pilot.press("a", "a")

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)

    def test_compare_by_percent_of_run(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await open_compare_charts(pilot)
            await pilot.press("a", "a", "a")

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)


class TestChartCursor:
    def test_run_cursor(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await open_run_charts(pilot)
            await pilot.press("left", "left", "left")

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)

    def test_compare_cursor_past_a_run_end(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await open_compare_charts(pilot)
            await pilot.press("left", "left")

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
# -- issue 15: samples per step, outputs side by side, accuracy by category, export ----------


def samples_at(step: int, count: int, correct: int) -> list[dict]:
    return [
        {"step": step, "idx": i, "question": f"q{i}", "target": 1.0, "output": f"step {step} says <answer>1</answer>",
         "answer": 1.0 if i < correct else 2.0, "correct": i < correct}
        for i in range(count)
    ]


class TestSampleSteps:
    """The seeded sft run evaluated at steps 40 and 80; the samples tab opens on the latest."""

    @staticmethod
    async def open_samples(pilot) -> None:
        await TestRunScreen.open_run(pilot)
        await pilot.press("2")
        await until(pilot, lambda: pilot.app.screen.query_one("#samples-step", Select).display)

    def test_picker_lists_the_steps(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await self.open_samples(pilot)
            pilot.app.screen.query_one("#samples-step", Select).focus()
            await pilot.press("enter")

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)

    def test_an_older_step(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await self.open_samples(pilot)
            pilot.app.screen.query_one("#samples-table", DataTable).focus()
            await pilot.press("left_square_bracket")
            await until(pilot, lambda: "2 correct" in str(pilot.app.screen.query_one("#samples-count", Label).content))

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)

    async def test_follows_new_steps_unless_an_older_one_is_picked(self, make_app, db_path):
        store = RunStore(db_path)
        run = store.create_run(RunSpec(kind="sft"))
        store.claim_run(run.id, Owner.of_this_process(), {}, resume=False)
        store.add_samples(run.id, samples_at(10, 3, 1))
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            app.open_run(run.id)
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run is not None)
            await pilot.press("2")
            picker = app.screen.query_one("#samples-step", Select)
            table = app.screen.query_one("#samples-table", DataTable)
            count = app.screen.query_one("#samples-count", Label)
            assert not picker.display and "step 10: 3 samples, 1 correct" in str(count.content)
            store.add_samples(run.id, samples_at(20, 4, 2))
            await wait_for(pilot, lambda: picker.value == 20 and table.row_count == 4)
            assert picker.display and "4 samples, 2 correct" in str(count.content)
            table.focus()
            await pilot.press("left_square_bracket")  # pick step 10: it stays while steps arrive
            await wait_for(pilot, lambda: picker.value == 10 and table.row_count == 3)
            store.add_samples(run.id, samples_at(30, 5, 5))
            view = app.screen.query_one(SamplesView)
            await wait_for(pilot, lambda: view.steps == [10, 20, 30])
            await pilot.pause(0.5)  # two more polls
            assert picker.value == 10 and table.row_count == 3
            await pilot.press("right_square_bracket", "right_square_bracket")  # the latest again: follow
            await wait_for(pilot, lambda: picker.value == 30 and table.row_count == 5)
            store.add_samples(run.id, samples_at(40, 6, 0))
            await wait_for(pilot, lambda: picker.value == 40 and table.row_count == 6)
            assert "6 samples, 0 correct" in str(count.content)


class TestSplits:
    """A training run scores valid and shifted: its samples tab picks the split, and compare
    pairs runs question by question on each (run 1, the sft, against run 2, an eval of valid)."""

    @staticmethod
    async def pick_shifted(pilot) -> None:
        await runs_loaded(pilot)
        pilot.app.open_run(1)
        await until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.run is not None)
        await pilot.press("2")
        await until(pilot, lambda: pilot.app.screen.query_one("#samples-split", Select).display)
        pilot.app.screen.query_one("#samples-split", Select).focus()
        await pilot.press("enter", "down", "enter")
        await until(pilot, lambda: "6 samples, 2 correct" in str(pilot.app.screen.query_one("#samples-count", Label).content))

    @pytest.fixture
    def split_db(self, seeded_db):
        add_shifted_samples(seeded_db)
        return seeded_db

    def test_shifted_samples(self, snap_compare, split_db):
        assert snap_compare(app_for(split_db), terminal_size=SIZE, run_before=self.pick_shifted)

    async def test_the_picked_split_shows_its_own_steps_and_questions(self, make_app, split_db):
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await self.pick_shifted(pilot)
            table = app.screen.query_one("#samples-table", DataTable)
            assert [table.get_row_at(i)[1].plain for i in range(table.row_count)] == SHIFTED_QUESTIONS
            assert app.screen.query_one(SamplesView).steps == [40, 80]
            table.focus()
            await pilot.press("left_square_bracket")  # shifted's earlier evaluation: none right
            await until(pilot, lambda: "6 samples, 0 correct" in str(app.screen.query_one("#samples-count", Label).content))
            assert app.screen.query_one("#samples-split", Select).value == "shifted"

    @staticmethod
    async def open_summary(pilot) -> None:
        await runs_loaded(pilot)
        pilot.app.compare([1, 2])
        await until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen)
                    and any(t.row_count for t in pilot.app.screen.query("#summary-table").results(DataTable)))
        await pilot.press("3")

    def test_paired_summary(self, snap_compare, split_db):
        assert snap_compare(app_for(split_db), terminal_size=SIZE, run_before=self.open_summary)

    async def test_summary_pairs_each_split_and_outcomes_name_it(self, make_app, split_db):
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await self.open_summary(pilot)
            table = app.screen.query_one("#summary-table", DataTable)
            rows = {str(table.get_row_at(i)[0]): table.get_row_at(i)[1:] for i in range(table.row_count)}
            # sft right on valid's {0, 1, 2, 4, 5}, the eval on {0, 3}: 1 gained, 4 lost
            assert rows["valid: gained / lost against #1 (p)"] == ["–", "1 / 4 (p 0.38)"]
            assert not any(name.startswith("shifted") for name in rows)  # the eval scored valid only
            await pilot.press("4")
            matrix = app.screen.query_one("#matrix-table", DataTable)
            await until(pilot, lambda: matrix.row_count == 8 + 6)
            assert [matrix.get_row_at(i)[0].plain for i in (0, 8)] == ["valid", "shifted"]
            matrix.focus()
            await pilot.press(*["down"] * 8, "enter")  # the side by side opens shifted's question
            await until(pilot, lambda: isinstance(app.screen, SideBySideDialog))
            assert app.screen.question == SHIFTED_QUESTIONS[0] and len(app.screen.runs[0].samples) == 1


class TestSideBySide:
    """Compare the sft run, the eval and the rollout (which stored no samples)."""

    @staticmethod
    async def open_outcomes(pilot, runs=(1, 2, 4)) -> None:
        await runs_loaded(pilot)
        pilot.app.compare(list(runs))
        await until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen)
                    and any(t.row_count for t in pilot.app.screen.query("#matrix-table").results(DataTable)))
        await pilot.press("4")
        pilot.app.screen.query_one("#matrix-table", DataTable).focus()

    def test_filter_unchecked(self, snap_compare, seeded_db):
        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=self.open_outcomes)

    def test_filter_checked(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await self.open_outcomes(pilot)
            await pilot.press("shift+tab", "space")
            await until(pilot, lambda: pilot.app.screen.query_one("#matrix-table", DataTable).row_count == 5)

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)

    def test_outputs_of_one_question(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await self.open_outcomes(pilot)
            await pilot.press("down", "enter")
            await until(pilot, lambda: isinstance(pilot.app.screen, SideBySideDialog))

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)

    async def test_differs_ignores_runs_that_never_evaluated(self, make_app, seeded_db):
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await self.open_outcomes(pilot)
            table = app.screen.query_one("#matrix-table", DataTable)
            box = app.screen.query_one("#matrix-differing", StateCheckbox)
            assert table.row_count == 8 and table.get_row_at(0)[3].plain == NOT_EVALUATED
            assert not box.value and box.BUTTON_INNER == " "
            await pilot.press("shift+tab", "space")
            # sft correct on {0,1,2,4,5}, eval on {0,3}, the rollout on none: 1, 2, 3, 4, 5 differ
            await wait_for(pilot, lambda: table.row_count == 5)
            assert box.value and box.BUTTON_INNER == "✓"
            await pilot.press("escape")
            await self.open_outcomes(pilot, runs=(1, 4))
            table = app.screen.query_one("#matrix-table", DataTable)
            await pilot.press("shift+tab", "space")
            await wait_for(pilot, lambda: "0 of 8" in str(app.screen.query_one("#matrix-count", Label).content))
            assert table.row_count == 0

    async def test_dialog_shows_each_run_as_plain_text(self, make_app, db_path):
        store = RunStore(db_path)
        hostile = "[bold red]boom[/] \x1b[31m"
        for correct in (True, False):
            run = store.create_run(RunSpec(kind="eval"))
            store.add_samples(run.id, [{"idx": 0, "question": "q [b]1[/b]", "target": 3.0, "output": f"{hostile} {correct}",
                                        "answer": 3.0 if correct else None, "correct": correct}])
            store.mark_finished(run.id, "completed")
        lonely = store.create_run(RunSpec(kind="eval"))
        store.mark_finished(lonely.id, "completed")
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: len(app.screen.query_one(RunsTable).run_ids) == 3)
            app.compare([1, 2, 3])
            await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen)
                           and any(t.row_count == 1 for t in app.screen.query("#matrix-table").results(DataTable)))
            await pilot.press("4")
            app.screen.query_one("#matrix-table", DataTable).focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, SideBySideDialog))
            shown = [str(w.content) for w in app.screen.query("Label, Static")]
            assert "q [b]1[/b]" in shown and "Target 3 · esc closes" in shown
            assert "[bold red]boom[/] \\x1b[31m True" in shown and "[bold red]boom[/] \\x1b[31m False" in shown
            assert "step 0 · ✓ answer 3" in shown and "step 0 · ✗ no answer parsed" in shown
            assert shown.count("not evaluated") == 1
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))


class TestResultCategories:
    """The seeded eval with accuracy by family, value range and phrasing logged."""

    def test_breakdown_under_the_figures(self, snap_compare, seeded_db):
        with open_store(seeded_db) as store:
            add_eval_categories(store)
        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=TestEvalResults.open_eval)

    async def test_panel_lists_each_category(self, make_app, seeded_db):
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await TestEvalResults.open_eval(pilot)
            panel = app.screen.query_one(ResultPanel)
            assert "by" not in panel.text  # nothing logged by category: no breakdown
            with open_store(seeded_db) as store:
                add_eval_categories(store)
            app.screen.poll()
            await wait_for(pilot, lambda: "Accuracy by family" in panel.text)
            assert panel.text.endswith(
                "Accuracy by family: length 0.95 · mass 0.41 · time 0.60\n"
                "Accuracy by phrasing: held-out 0.38 · train 0.81\n"
                "Accuracy by values: 1-10 0.90 · 11-99 0.50"
            )

    def test_breakdowns_group_by_metric_then_category(self):
        summary = {
            "shifted_accuracy/family=mass": 0.25, "accuracy": 0.5, "accuracy/family=time": 0.75,
            "accuracy/family=length": 1.0, "tokens_per_s": 9.0,
        }
        assert [(b.metric, b.group, b.values) for b in breakdowns(summary)] == [
            ("accuracy", "family", [("length", 1.0), ("time", 0.75)]),
            ("shifted_accuracy", "family", [("mass", 0.25)]),
        ]
        assert breakdowns(summary)[1].line == "Accuracy on shifted by family: mass 0.25"


class TestExportFromApp:
    @staticmethod
    async def open_dialog(pilot, *keys: str) -> None:
        await runs_loaded(pilot)
        await pilot.press(*keys, "e")
        await until(pilot, lambda: isinstance(pilot.app.screen, ExportDialog))

    def test_dialog(self, snap_compare, seeded_db):
        async def run_before(pilot):
            await self.open_dialog(pilot, "space", "down", "space")
            await pilot.press("ctrl+u", *"exports/first")

        assert snap_compare(app_for(seeded_db), terminal_size=SIZE, run_before=run_before)

    async def test_selected_runs_go_where_typed(self, make_app, seeded_db):
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            # newest first: the pipeline (#6), the cancelled eval (#5), the rollout (#4)
            await self.open_dialog(pilot, "down", "space", "down", "space")
            await pilot.press("ctrl+u", *"out/exp", "enter")
            folder = seeded_db.parent / "out" / "exp"
            await wait_for(pilot, lambda: not isinstance(app.screen, ExportDialog), timeout=60)
            note = f"Exported 2 runs (2 metric points, 0 samples) to {folder.resolve()}."
            await wait_for(pilot, lambda: any(str(n.message) == note for n in app._notifications))
            assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
            with open(folder / "runs.csv", newline="") as f:
                assert sorted(int(r["run_id"]) for r in csv.DictReader(f)) == [4, 5]
            with open(folder / "metrics.csv", newline="") as f:
                assert {(r["run_id"], r["name"]) for r in csv.DictReader(f)} == {("4", "success_rate"), ("4", "correct_rate")}

    async def test_default_folder_beside_the_database(self, make_app, seeded_db):
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await self.open_dialog(pilot, "down", "down", "down", "down", "down")  # the sft run
            await pilot.press("enter")
            folder = default_folder(seeded_db)
            assert folder.parent == seeded_db.parent.resolve() and folder.name.startswith("export-")
            await wait_for(pilot, lambda: not isinstance(app.screen, ExportDialog), timeout=60)
            with open(folder / "samples.csv", newline="") as f:
                rows = list(csv.DictReader(f))
            assert len(rows) == 16 and {r["step"] for r in rows} == {"40", "80"}

    async def test_a_bad_folder_is_one_line_and_writes_nothing(self, make_app, seeded_db):
        (seeded_db.parent / "a-file").write_text("not a folder")
        before = sorted(p.name for p in seeded_db.parent.iterdir())
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await self.open_dialog(pilot)
            error = app.screen.query_one("#export-error", Label)
            await pilot.press("ctrl+u", "enter")
            await wait_for(pilot, lambda: str(error.content) == "Type the folder to export to.")
            await pilot.press(*"a-file/inside", "enter")
            await wait_for(pilot, lambda: "is a file, not a folder; type another folder." in str(error.content))
            assert "\n" not in str(error.content) and isinstance(app.screen, ExportDialog)
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, ExportDialog))
        assert sorted(p.name for p in seeded_db.parent.iterdir()) == before
