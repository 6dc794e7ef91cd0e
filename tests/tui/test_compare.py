"""The compare screen."""

from __future__ import annotations

from tests.tui.conftest import wait_for
from textual.widgets import Checkbox, DataTable

from tui.screens.compare import CompareScreen
from tui.widgets.metric_chart import MetricChart


async def test_compare_two_runs(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.compare([1, 2])
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.query(MetricChart))
        screen = app.screen
        charts = {c.metric: c for c in screen.query(MetricChart)}
        assert list(charts) == ["loss", "lr", "accuracy", "answer_rate", "shifted_accuracy", "tokens_per_s"]
        assert list(charts["accuracy"].series) == ["#1 sft-baseline", "#2 eval-base"]
        diff = screen.query_one("#diff-table", DataTable)
        keys = [diff.get_row_at(i)[0] for i in range(diff.row_count)]
        assert "kind" in keys and "limit" in keys and "model" not in keys
        matrix = screen.query_one("#matrix-table", DataTable)
        assert matrix.row_count == 8
        screen.query_one("#matrix-differing", Checkbox).value = True
        await pilot.pause()
        # sft correct on {0,1,2,4,5}, eval on {0,3}: they differ on 1, 2, 3, 4, 5
        assert matrix.row_count == 5


async def test_the_summary_shows_what_each_run_scored_with(make_app, seeded_db):
    from engine.core.store import RunStore

    RunStore(seeded_db).add_environment(1, {"numerics": {"device": "cpu", "dtype": "bfloat16", "threads": 2}})
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.compare([1, 2])
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.query(MetricChart))
        table = app.screen.query_one("#summary-table", DataTable)
        rows = {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)[1:]] for i in range(table.row_count)}
        assert rows["scored with"] == ["cpu bfloat16, 2 threads, batch 32", "–"]
