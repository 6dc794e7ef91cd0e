"""A line chart of one metric, for one run or several overlaid, with the keys that change how
every chart on a screen is drawn (smoothing, x axis, log y, a cursor)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.containers import Vertical
from textual.widgets import Static, TabbedContent
from textual_plotext import PlotextPlot

from engine.core.metrics import title as metric_title
from tui.chart_math import (
    ChartOptions,
    RunScale,
    Series,
    cursor_target,
    format_x,
    log_axis,
    minmax_downsample,
    nearest_index,
    x_axis,
    x_title,
    x_values,
)
from tui.data import chart_title, format_value, nice_axis

SERIES_COLOURS = ("primary", "accent", "success", "warning", "error", "secondary")
"""Theme variables that colour the series, in order."""

RAW_UNDER_SMOOTHED = 0.6
"""How far a smoothed curve's raw points are blended into the background (0: as bright)."""

Y_LABELS_WIDTH = 8
"""Columns plotext keeps left of the plot for the y tick labels (about)."""

SWATCH = "━ "


def series_colour(app, index: int) -> Color:
    return Color.parse(app.theme_variables.get(SERIES_COLOURS[index % len(SERIES_COLOURS)]) or "white")


def legend(app, labels: list[str]) -> Text:
    """Each series' colour and label on one line, kept outside the plots so no curve is hidden."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, label in enumerate(labels):
        text.append(SWATCH, style=series_colour(app, i).hex)
        text.append(label + "  ")
    return text


def chart_bindings(screen: str) -> list[Binding]:
    """The chart keys, with ids under the screen's own prefix; the arrows are priority keys
    offered only while the charts show (elsewhere they go to the focused widget)."""
    return [
        Binding("s", "chart_smoothing", "Smooth", show=False, id=f"{screen}.chart-smoothing",
                tooltip="Smooth the curves (EMA as in TensorBoard); the raw points stay faint behind"),
        Binding("a", "chart_x_axis", "X axis", show=False, id=f"{screen}.chart-x-axis",
                tooltip="Put the curves against steps, samples seen, wall time or % of the run"),
        Binding("l", "chart_log_y", "Log y", show=False, id=f"{screen}.chart-log-y",
                tooltip="Log scale on y (points at or below zero are left out and counted)"),
        Binding("left", "chart_cursor(-1)", "Cursor left", show=False, priority=True, id=f"{screen}.chart-cursor-left",
                tooltip="Move the cursor left; each chart shows its values there below it"),
        Binding("right", "chart_cursor(1)", "Cursor right", show=False, priority=True, id=f"{screen}.chart-cursor-right",
                tooltip="Move the cursor right"),
    ]


@dataclass(frozen=True)
class Drawn:
    """One series as last drawn: x sorted, raw and (when smoothing) smoothed values."""

    label: str
    colour: Color
    x: np.ndarray
    raw: np.ndarray
    smoothed: np.ndarray | None


class MetricChart(Vertical):
    """Points are appended with `extend`; the chart redraws from the kept series."""

    def __init__(self, metric: str, options: ChartOptions = ChartOptions(), **kwargs) -> None:
        super().__init__(**kwargs)
        self.metric = metric
        self.series: dict[str, Series] = {}
        self.options = options
        self.drawn: list[Drawn] = []

    def compose(self) -> ComposeResult:
        yield PlotextPlot(classes="chart-plot")
        yield Static("", markup=False, classes="chart-values")

    @property
    def plot(self) -> PlotextPlot:
        return self.query_one(PlotextPlot)

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.replot())
        self.replot()

    def last_step(self, label: str = "") -> int:
        series = self.series.get(label)
        return series.last_step if series is not None else -1

    def extend(self, points, label: str = "", scale: RunScale | None = None) -> None:
        """Add points of series `label`: a `Series` or (step, value[, time]) tuples; only steps
        after the last one kept are added."""
        new = points if isinstance(points, Series) else Series.of(points)
        series = self.series.setdefault(label, Series(scale=scale or new.scale))
        if scale is not None:
            series.scale = scale
        after = new.steps > series.last_step
        if after.any():
            series.steps = np.concatenate([series.steps, new.steps[after]])
            series.values = np.concatenate([series.values, new.values[after]])
            series.times = np.concatenate([series.times, new.times[after]])
            self.replot()
        elif len(series) == 0:
            self.replot()

    def set_options(self, options: ChartOptions) -> None:
        self.options = options
        self.replot()

    def on_resize(self) -> None:
        self.replot()  # how many ticks fit depends on the size

    def plot_columns(self) -> int:
        """Cells across the plotted area (less the y tick labels)."""
        return max(10, (self.plot.size.width or 60) - Y_LABELS_WIDTH)

    def replot(self) -> None:
        if not self.is_mounted:
            return
        plt = self.plot.plt
        plt.clear_data()
        plt.clear_figure()
        options = self.options
        single = next(iter(self.series.values()), None) if len(self.series) <= 1 else None
        title = metric_title(self.metric)
        plt.title(chart_title(title, self.metric, single.values) if single is not None else title)
        self.drawn, notes = self._prepare()
        buckets = self.plot_columns()  # a low and a high point per cell: plotext's time grows with points
        background = Color.parse(self.app.theme_variables.get("surface") or "black")
        to_y = np.log10 if options.log_y else (lambda v: v)
        faint = {d.label: d.colour.blend(background, RAW_UNDER_SMOOTHED) for d in self.drawn if d.smoothed is not None}
        layers = [(d, d.raw, faint.get(d.label, d.colour)) for d in self.drawn]  # smoothed ones over all raw ones
        layers += [(d, d.smoothed, d.colour) for d in self.drawn if d.smoothed is not None]
        for drawn, values, colour in layers:
            xs, ys = minmax_downsample(drawn.x, values, buckets)  # log10 keeps lows and highs: thin first
            plt.plot(xs, to_y(ys), marker="braille", color=colour.rgb)
        if self.drawn:
            self._axes()
        if self.drawn or notes:
            high = max((float(d.x[-1]) for d in self.drawn), default=0.0)
            plt.xlabel(" · ".join([x_title(options.x_axis, high), *(["log y"] if options.log_y else []), *notes]))
        self.query_one(".chart-values", Static).update(self._values_line())
        self.plot.refresh()

    def _prepare(self) -> tuple[list[Drawn], list[str]]:
        """Each series on the chosen x axis, sorted, less the points it cannot place; and
        notes of how many were left out, shown with the axis title."""
        options, drawn, notes = self.options, [], []
        unplaced = below_zero = 0
        for i, (label, series) in enumerate(self.series.items()):
            if not len(series):
                continue
            x, y = x_values(series, options.x_axis), series.values
            smoothed = series.smoothed() if options.smoothing else None  # in step order, all points
            keep = np.isfinite(x)
            unplaced += int(len(keep) - np.count_nonzero(keep))
            if options.log_y:
                above = (y > 0) & (smoothed > 0) if smoothed is not None else y > 0
                below_zero += int(np.count_nonzero(keep & ~above))
                keep &= above
            if not keep.all():
                x, y = x[keep], y[keep]
                smoothed = smoothed[keep] if smoothed is not None else None
            if len(x) > 1 and (np.diff(x) < 0).any():  # wall time of a resumed run's replayed steps
                order = np.argsort(x, kind="stable")
                x, y = x[order], y[order]
                smoothed = smoothed[order] if smoothed is not None else None
            if len(x):
                drawn.append(Drawn(label, series_colour(self.app, i), x, y, smoothed))
        if below_zero:
            notes.append(f"{below_zero} ≤ 0 left out")
        if unplaced:
            notes.append(f"{unplaced} left out")  # no batch size or no time known
        return drawn, notes

    def _values_line(self) -> Text:
        """Under the plot: the values at the cursor, else each run's last value when several
        are overlaid."""
        text = Text(no_wrap=True, overflow="ellipsis")
        cursor = self.options.cursor
        if cursor is not None and self.drawn:
            high = max(float(d.x[-1]) for d in self.drawn)
            text.append(format_x(cursor, self.options.x_axis, high) + "  ")
        for d in self.drawn if cursor is not None or len(self.series) > 1 else []:
            text.append(SWATCH, style=d.colour.hex)
            text.append(self._value_at(d, cursor) + "  ")
        return text

    @staticmethod
    def _value_at(d: Drawn, cursor: float | None) -> str:
        """The raw value at the point nearest the cursor (the smoothed one after it); '-'
        where the cursor is outside the series."""
        if cursor is None:
            i = len(d.x) - 1
        elif d.x[0] <= cursor <= d.x[-1]:
            i = nearest_index(d.x, cursor)
        else:
            return "-"
        shown = format_value(float(d.raw[i]))
        return shown if d.smoothed is None else f"{shown} (EMA {format_value(float(d.smoothed[i]))})"

    def _axes(self) -> None:
        """Round ticks, whole steps, and axis titles (plotext's own ticks are fractions). Ticks
        stay at least 6 columns and 1.5 rows apart: closer ones would share a cell and
        plotext would show either."""
        options = self.options
        xs = [d.x for d in self.drawn]
        low, high = min(float(x[0]) for x in xs), max(float(x[-1]) for x in xs)
        values = [v for d in self.drawn for v in (d.raw, d.smoothed) if v is not None]
        y_low, y_high = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
        width, height = self.plot.size.width or 60, self.plot.size.height or 16
        plot_rows = height - 5  # less the title, the frame, the tick labels and the axis title
        x = x_axis(low, high, max(1, (width - 10) // 6), options.x_axis)
        y_count = max(1, int((plot_rows - 1) / 1.5))
        if options.log_y:
            y = log_axis(np.log10(y_low), np.log10(y_high), y_count)
        else:
            y = nice_axis(y_low, y_high, y_count)
        self.plot.plt.xlim(x.low, x.high)
        self.plot.plt.xticks(x.ticks, x.labels)
        self.plot.plt.ylim(y.low, y.high)
        self.plot.plt.yticks(y.ticks, y.labels)
        if options.cursor is not None and x.low <= options.cursor <= x.high:
            muted = Color.parse(self.app.theme_variables.get("foreground-muted") or "grey")
            self.plot.plt.vline(options.cursor, color=muted.rgb)


class ChartKeys:
    """The chart keys of a screen (mixed into it before its Screen base): one `ChartOptions`
    for all its charts, shown on its `.chart-mode` line. `CHARTS_TAB` names the tab they are on."""

    CHARTS_TAB = ""
    chart_options = ChartOptions()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action.startswith("chart_"):
            tabs = self.query(TabbedContent)
            return bool(tabs) and tabs.first().active == self.CHARTS_TAB
        return super().check_action(action, parameters)

    def show_chart_mode(self) -> None:
        self.query_one(".chart-mode", Static).update(self.chart_options.describe())

    def _set_chart_options(self, options: ChartOptions) -> None:
        self.chart_options = options
        for chart in self.query(MetricChart):
            chart.set_options(options)
        self.show_chart_mode()

    def action_chart_smoothing(self) -> None:
        self._set_chart_options(replace(self.chart_options, smoothing=not self.chart_options.smoothing))

    def action_chart_x_axis(self) -> None:
        self._set_chart_options(self.chart_options.next_x_axis())

    def action_chart_log_y(self) -> None:
        self._set_chart_options(replace(self.chart_options, log_y=not self.chart_options.log_y))

    def action_chart_cursor(self, direction: int) -> None:
        charts = list(self.query(MetricChart))
        xs = [d.x for chart in charts for d in chart.drawn]
        if not xs:
            return
        span = max(float(x[-1]) for x in xs) - min(float(x[0]) for x in xs)
        stride = span / charts[0].plot_columns() if span else 1.0  # one cell
        cursor = cursor_target(xs, self.chart_options.cursor, direction, stride)
        self._set_chart_options(replace(self.chart_options, cursor=cursor))
