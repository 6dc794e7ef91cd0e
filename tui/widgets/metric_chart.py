"""A line chart of one metric against steps, for one run or several overlaid."""

from __future__ import annotations

from textual.color import Color
from textual_plotext import PlotextPlot

from engine.core.metrics import title as metric_title
from tui.data import downsample

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

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(metric_title(self.metric))
        has_points = False
        for i, (label, points) in enumerate(self.series.items()):
            if not points:
                continue
            has_points = True
            shown = downsample(points, MAX_PLOTTED)
            style: dict = {"marker": "braille"}
            if label:
                style["label"] = label
            colour = self.app.theme_variables.get(SERIES_COLOURS[i % len(SERIES_COLOURS)])
            if colour:
                style["color"] = Color.parse(colour).rgb
            plt.plot([s for s, _ in shown], [v for _, v in shown], **style)
        if not has_points:
            plt.title(f"{metric_title(self.metric)} (no points yet)")
        self.refresh()
