"""Lineage on the run screen (p opens a parent, o a child), the family view (f, enter opens a
member), a failed run's first screen and the wrapping log."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Label, OptionList, ProgressBar, RichLog, Static, TabbedContent

from engine.core.spec import RunSpec
from engine.core.store import RunStore
from tests.tui.conftest import wait_for
from tests.tui.seed import seed_families
from tui.screens.family import FamilyScreen
from tui.screens.run import RunScreen
from tui.screens.run_picker import RunPicker
from tui.widgets.runs_table import RunsTable


@pytest.fixture
def family_db(db_path: Path) -> Path:
    seed_families(db_path).close()
    return db_path


def opened(app, run_id: int) -> bool:
    """The run's page is on top and has shown its first read (so the test may end)."""
    return isinstance(app.screen, RunScreen) and app.screen.run_id == run_id and app.screen.run is not None


async def open_run_page(app, pilot, run_id: int) -> RunScreen:
    app.open_run(run_id)
    await wait_for(pilot, lambda: opened(app, run_id))
    return app.screen


def lineage_line(screen: RunScreen) -> str:
    return str(screen.query_one("#run-lineage", Label).render())


async def test_p_opens_the_one_parent_and_o_the_one_child(make_app, family_db):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_page(app, pilot, 12)
        await wait_for(pilot, lambda: "p parent: #11 pipe-small rft1 (adapter)" in lineage_line(screen))
        assert "o child" not in lineage_line(screen)
        await pilot.press("p")
        await wait_for(pilot, lambda: opened(app, 11))
        parent = app.screen
        await wait_for(pilot, lambda: "o child: #12 eval-pipe (adapter)" in lineage_line(parent))
        await pilot.press("o")
        await wait_for(pilot, lambda: app.screen is not parent and opened(app, 12))


async def test_several_parents_are_listed_with_how_each_is_linked(make_app, family_db):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_page(app, pilot, 11)
        await wait_for(pilot, lambda: "f pipeline #7 · p parents: #9 pipe-small rft0 (adapter) +2" in lineage_line(screen))
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, RunPicker))
        options = app.screen.query_one(OptionList)
        shown = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert shown == [
            "#9 pipe-small rft0 · rft · completed · adapter",
            "#10 pipe-small rollout1 · rollout · completed · data",
            "#7 pipe-small · pipeline · completed · pipeline",
        ]
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: opened(app, 10))


async def test_children_are_listed_and_the_details_name_every_relative(make_app, family_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_run_page(app, pilot, 1)
        await wait_for(pilot, lambda: "o children: 5" in lineage_line(screen))
        await pilot.press("4")
        facts = str(screen.query_one("#run-facts", Static).render())
        assert "From      -" in facts and "Used by   #3 rft-round1 (rft, adapter), #4 rollout-4 (rollout, adapter)" in facts
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, RunPicker))
        assert app.screen.query_one(OptionList).option_count == 5
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)


async def test_a_run_without_relatives_has_no_lineage_line_and_says_so(make_app, family_db):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_page(app, pilot, 2)
        await pilot.press("p")
        await wait_for(pilot, lambda: any("was built from no other run" in str(n.message) for n in app._notifications))
        assert not screen.query_one("#run-lineage", Label).display and app.screen is screen


async def test_f_shows_the_pipeline_in_order_and_enter_opens_a_stage(make_app, family_db):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_run_page(app, pilot, 9)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, FamilyScreen) and app.screen.family is not None)
        family = app.screen
        table = family.query_one(DataTable)
        assert [m.id for m in family.family.members] == [7, 8, 9, 10, 11]
        assert str(family.query_one("#family-title", Label).render()) == "Pipeline #7 pipe-small · 5 runs: 5 completed"
        assert table.cursor_row == 2  # on the run it was opened from
        assert [str(c) for c in table.get_row_at(3)] == [" 10", "pipe-small rollout1", "rollout", "completed", "2m30s", "Correct rate 0.38"]
        # The pipeline records rft1 (run 11) as its model: only that stage is marked.
        assert [str(table.get_row_at(i)[-1]) for i in (2, 4)] == ["Accuracy 0.44", "Accuracy 0.49 · model"]
        await pilot.press("down")
        await wait_for(pilot, lambda: table.cursor_row == 3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: opened(app, 10))


async def test_f_on_the_runs_screen_shows_the_sweep_of_the_run_under_the_cursor(make_app, family_db):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(RunsTable).run_ids) == 15)
        await pilot.press("f")  # the newest run, 15, is the sweep's failed run
        await wait_for(pilot, lambda: isinstance(app.screen, FamilyScreen) and app.screen.family is not None)
        family = app.screen
        assert str(family.query_one("#family-title", Label).render()) == "Sweep ab12cd · 3 runs: 2 completed, 1 failed"
        rows = [[str(c) for c in family.query_one(DataTable).get_row_at(i)] for i in range(3)]
        assert [row[-1] for row in rows] == ["Accuracy 0.4", "Accuracy 0.3", ""]
        assert rows[2][0] == "▸15"


async def test_a_run_in_no_family_says_so_plainly(make_app, family_db):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_run_page(app, pilot, 5)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, FamilyScreen) and app.screen.family is not None)
        empty = app.screen.query_one("#family-empty", Static)
        assert empty.display and not app.screen.query_one(DataTable).display
        assert "Run #5 has no family" in str(empty.render())


async def test_a_failed_run_opens_on_its_error_with_a_still_bar(make_app, family_db):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_page(app, pilot, 15)  # failed, with no progress recorded
        error = screen.query_one("#run-error", Static)
        await wait_for(pilot, lambda: error.display and error.region.height > 0)
        assert screen.query_one(TabbedContent).active == "log"
        assert str(error.render()) == "Error: The engine process was killed"
        assert 0 <= error.region.y < 24
        bar = screen.query_one(ProgressBar)
        assert bar.total is not None and bar.percentage == 0  # not the pulsing bar of an unknown total


async def test_a_completed_run_opens_on_its_charts(make_app, family_db):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_page(app, pilot, 1)
        assert screen.query_one(TabbedContent).active == "charts" and not screen.query_one("#run-error").display


async def test_long_log_lines_wrap_and_stay_plain_text(make_app, db_path):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="eval"))
    store.mark_finished(run.id, "completed")
    words = " ".join(f"word{i}" for i in range(40))
    (Path(run.run_dir) / "log.txt").write_text(f"{words}\n[bold]not markup[/bold]\n")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_page(app, pilot, run.id)
        await pilot.press("3")
        log = screen.query_one("#run-log", RichLog)
        await wait_for(pilot, lambda: len(log.lines) >= 4)
        texts = [strip.text.rstrip() for strip in log.lines]
        assert max(strip.cell_length for strip in log.lines) <= log.scrollable_content_region.width
        assert " ".join(texts[:-1]).split() == words.split()
        assert texts[-1] == "[bold]not markup[/bold]"


async def test_a_run_made_from_an_open_running_run_shows_up(make_app, db_path):
    from engine.core.processes import Owner

    store = RunStore(db_path)
    base = store.create_run(RunSpec(kind="sft"))
    store.claim_run(base.id, Owner.of_this_process(), {}, resume=False)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_page(app, pilot, base.id)
        assert not screen.query_one("#run-lineage", Label).display
        child = store.create_run(RunSpec(kind="eval", adapter=str(base.id)), parent_id=base.id)
        await wait_for(pilot, lambda: f"o child: #{child.id} eval-{child.id} (adapter)" in lineage_line(screen))
