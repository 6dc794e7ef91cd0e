"""A line chart of one metric against steps, for one run or several overlaid."""

from __future__ import annotations

from collections.abc import Sequence

from textual.color import Color
from textual_plotext import PlotextPlot

from engine.core.metrics import title as metric_title
from tui.data import chart_title, downsample, format_value, nice_axis

SERIES_COLOURS = ("primary", "accent", "success", "warning", "error", "secondary")
"""Theme variables that colour the series, in order."""

MAX_PLOTTED = 400
"""Points drawn per series; longer series are thinned (the chart is a few dozen cells wide)."""


class MetricChart(PlotextPlot):
    """Points are appended with `extend`; the chart redraws from the kept series."""

    def __init__(self, metric: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.metric = metric
        self.series: dict[str, list[tuple[int, float]]] = {}

    def on_mount(self) -> None:
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.replot())
        self.replot()

    def last_step(self, label: str = "") -> int:
        points = self.series.get(label)
        return points[-1][0] if points else -1

    def extend(self, points: list[tuple[int, float]], label: str = "") -> None:
        """Add points of series `label` (steps after the last one kept)."""
        last = self.last_step(label)
        new = [p for p in points if p[0] > last]
        if new or label not in self.series:
            self.series.setdefault(label, []).extend(new)
            self.replot()

    def on_resize(self) -> None:
        self.replot()  # how many ticks fit depends on the size

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        drawn = {label: downsample(points, MAX_PLOTTED) for label, points in self.series.items() if points}
        title = metric_title(self.metric)
        if len(self.series) <= 1:  # one run: its last and best value; several: each label has its last
            plt.title(chart_title(title, self.metric, [v for points in self.series.values() for _, v in points]))
        else:
            plt.title(title)
        for i, (label, shown) in enumerate(drawn.items()):
            style: dict = {"marker": "braille"}
            if label:
                style["label"] = f"{label} {format_value(self.series[label][-1][1])}"
            colour = self.app.theme_variables.get(SERIES_COLOURS[i % len(SERIES_COLOURS)])
            if colour:
                style["color"] = Color.parse(colour).rgb
            plt.plot([s for s, _ in shown], [v for _, v in shown], **style)
        if drawn:
            self._axes(list(drawn.values()))
        self.refresh()

    def _axes(self, series: list[Sequence[tuple[int, float]]]) -> None:
        """Round ticks, whole steps, and axis titles (plotext's own ticks are fractions). Ticks
        stay at least 6 columns and 1.5 rows apart: closer ones would share a cell and
        plotext would show either."""
        steps = [s for points in series for s, _ in points]
        values = [v for points in series for _, v in points]
        width, height = self.size.width or 60, self.size.height or 16
        plot_rows = height - 5  # less the title, the frame, the tick labels and the axis title
        x = nice_axis(min(steps), max(steps), max(1, (width - 10) // 6), integer=True)
        y = nice_axis(min(values), max(values), max(1, int((plot_rows - 1) / 1.5)))
        self.plt.xlim(x.low, x.high)
        self.plt.xticks(x.ticks, x.labels)
        self.plt.ylim(y.low, y.high)
        self.plt.yticks(y.ticks, y.labels)
        self.plt.xlabel("step")
