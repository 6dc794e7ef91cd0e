"""The chart keys on the run and compare screens: smoothing, x axis, log y and the cursor."""

from __future__ import annotations

import numpy as np
from tests.tui.conftest import wait_for
from textual.app import App
from textual.widgets import Static

from tui.chart_math import ChartOptions, Series
from tui.screens.compare import CompareScreen
from tui.screens.run import RunScreen
from tui.widgets.metric_chart import MetricChart


def values_line(chart: MetricChart) -> str:
    return str(chart.query_one(".chart-values", Static).render())


def mode_line(screen) -> str:
    return str(screen.query_one(".chart-mode", Static).render())


async def open_run(app, pilot, run_id: int = 1) -> RunScreen:
    app.open_run(run_id)
    await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.query(MetricChart)
                   and all(c.drawn for c in app.screen.query(MetricChart)))
    return app.screen


async def test_run_screen_keys_smooth_switch_axes_and_log_y(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_run(app, pilot)
        loss = screen.query_one("#chart-loss", MetricChart)
        assert "smoothing off" in mode_line(screen) and loss.drawn[0].smoothed is None
        await pilot.press("s")
        assert "smoothing EMA 0.6" in mode_line(screen)
        smoothed = loss.drawn[0].smoothed
        assert smoothed is not None and smoothed[0] == loss.drawn[0].raw[0] and smoothed[-1] > loss.drawn[0].raw[-1]
        await pilot.press("a")  # samples seen: 2 epochs of sft with batch 32, no accumulation
        assert "x: samples seen" in mode_line(screen) and loss.drawn[0].x[-1] == 80 * 32
        await pilot.press("a")  # wall time: the seeded points are 9 s apart from the start
        assert loss.drawn[0].x[-1] == 720 and "wall time (min)" in str(loss.plot.render())
        await pilot.press("a")
        assert loss.drawn[0].x[-1] == 100  # the run's planned 80 steps
        await pilot.press("a", "l")
        lr = screen.query_one("#chart-lr", MetricChart)
        assert "log y on" in mode_line(screen)
        assert "step · log y · 1 ≤ 0 left out" in str(lr.plot.render())  # the cosine schedule ends at 0
        assert (lr.drawn[0].raw > 0).all()
        await pilot.press("l")
        assert "left out" not in str(lr.plot.render()) and len(lr.drawn[0].raw) == 17


async def test_cursor_shows_the_values_under_it(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_run(app, pilot)
        loss, accuracy = (screen.query_one(f"#chart-{m}", MetricChart) for m in ("loss", "accuracy"))
        assert values_line(loss).strip() == ""
        await pilot.press("left")  # onto the last point
        assert screen.chart_options.cursor == 80
        assert values_line(loss).startswith("step 80") and "0.4097" in values_line(loss)
        await pilot.press("left")  # loss is logged every 5 steps
        assert screen.chart_options.cursor == 75 and "0.4135" in values_line(loss)
        assert "step 75" in values_line(accuracy) and "0.7" in values_line(accuracy)  # nearest: step 80
        await pilot.press("left", "left")
        assert "0.575" in values_line(accuracy)  # step 65: step 60 is nearest
        await pilot.press("s")
        assert "(EMA " in values_line(loss)
        await pilot.press("2", "right")  # on another tab the arrows are not the cursor's
        assert screen.chart_options.cursor == 65


async def test_compare_overlays_runs_by_wall_time_with_a_legend(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.compare([1, 3])
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.query(MetricChart)
                       and all(c.drawn for c in app.screen.query(MetricChart)))
        screen = app.screen
        legend = str(screen.query_one("#compare-legend", Static).render())
        assert "#1 sft-baseline" in legend and "#3 rft-round1" in legend
        loss = next(c for c in screen.query(MetricChart) if c.metric == "loss")
        assert values_line(loss).split() == ["━", "0.4097", "━", "0.8048"]  # each run's last value
        await pilot.press("a", "a")
        assert "x: wall time" in mode_line(screen)
        assert [d.x[-1] for d in loss.drawn] == [720, 270]  # sft ran 80 steps, rft 30, 9 s each
        await pilot.press("left")
        assert values_line(loss).split()[:5] == ["12.0", "min", "━", "0.4097", "━"]
        assert values_line(loss).split()[5] == "-"  # rft had stopped by then
        await pilot.press("a")
        assert [d.x[-1] for d in loss.drawn] == [100, 25]  # rft failed at 30 of its 120 steps


class OneChart(App):
    def __init__(self, series: Series) -> None:
        super().__init__()
        self.series = series

    def compose(self):
        chart = MetricChart("loss")
        chart.series[""] = self.series
        yield chart


async def test_a_million_points_reach_plotext_thinned(monkeypatch):
    y = np.random.default_rng(1).normal(size=1_000_000)
    y[500_000] = 40.0  # one spike
    series = Series(steps=np.arange(1_000_000.0), values=y, times=np.full(1_000_000, np.nan))
    app = OneChart(series)
    async with app.run_test(size=(80, 20)) as pilot:
        await pilot.pause()
        chart = app.query_one(MetricChart)
        handed: list[np.ndarray] = []
        plot = chart.plot.plt.plot
        monkeypatch.setattr(chart.plot.plt, "plot", lambda xs, ys, **style: (handed.append(ys), plot(xs, ys, **style)))
        chart.replot()
        assert len(handed) == 1 and len(handed[0]) <= 2 * chart.plot_columns() + 4
        assert handed[0].max() == 40.0 and "40" in str(chart.plot.render())  # the spike sets the y axis


async def test_points_with_no_place_on_the_axis_are_counted_under_the_chart():
    series = Series.of([(1, 0.5, 100.0), (2, 0.4, 110.0), (3, 0.3, 120.0)])  # no batch size known
    app = OneChart(series)
    async with app.run_test(size=(80, 20)) as pilot:
        await pilot.pause()
        chart = app.query_one(MetricChart)
        chart.set_options(ChartOptions(x_axis="samples"))
        assert chart.drawn == [] and "samples seen · 3 left out" in str(chart.plot.render())
        chart.set_options(ChartOptions(x_axis="time", smoothing=True))
        assert chart.drawn[0].x.tolist() == [0, 10, 20] and "left out" not in str(chart.plot.render())
