"""One setting (x) against one final metric (y) over a set of runs: a scatter with a line
through the mean at each x, and the table of points."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Select
from textual_plotext import PlotextPlot

from engine.core.columns import METRIC, SETTING, SETTING_NAMES, column_for, is_valid_key
from engine.core.grouping import stat_of
from engine.core.metrics import ACCURACY
from engine.core.metrics import title as metric_title
from engine.core.store import open_store
from engine.core.text import visible
from tui.data import format_value, nice_axis
from tui.screens.worker_errors import ReportsWorkerErrors
from tui.widgets.runs_table import fit

if TYPE_CHECKING:
    from tui.app import ReasonlabApp


RUN_WIDTH = 14
"""Characters of a run's id and name in the table of points (the chart needs the width)."""


@dataclass(frozen=True)
class PlotData:
    points: list[tuple[float, float]]
    """(x position, y) of each run that has both values."""
    means: list[tuple[float, float]]
    """(x position, mean y) at each distinct x, by x."""
    categories: list[str]
    """A text setting's values, at x positions 1, 2, …; empty when x is numeric."""


def plot_data(pairs: Sequence[tuple[Any, Any]]) -> PlotData:
    """Place (x, y) pairs on a chart: numbers as they are, text values at 1, 2, … in sorted
    order. Pairs without a numeric y are left out."""
    kept = [(x, y) for x, y in pairs if x is not None and stat_of([y]) is not None]
    numeric = all(_is_number(x) for x, _ in kept)
    categories = [] if numeric else sorted({str(x) for x, _ in kept})
    position = (lambda x: float(x)) if numeric else (lambda x: float(categories.index(str(x)) + 1))
    points = [(position(x), float(y)) for x, y in kept]
    by_x: dict[float, list[float]] = {}
    for x, y in points:
        by_x.setdefault(x, []).append(y)
    means = [(x, stat_of(ys).mean) for x, ys in sorted(by_x.items())]  # type: ignore[union-attr]
    return PlotData(points, means, categories)


def varying_settings(rows: Sequence[Sequence[Any]]) -> list[str]:
    """The settings (columns after id and label, in SETTING_NAMES order) whose value differs
    between the runs: numeric ones first, as they plot on a scale, and the seed last of those
    (seeds repeat a run rather than change it)."""
    columns = list(zip(*(row[2:] for row in rows))) if rows else []
    varying = [(name, values) for name, values in zip(SETTING_NAMES, columns) if len(set(values)) > 1]
    numeric = [name for name, values in varying if all(_is_number(v) for v in values if v is not None)]
    numeric.sort(key=lambda name: name == "seed")
    return numeric + [name for name, _ in varying if name not in numeric]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ParamChart(PlotextPlot):
    """The points, and a line through the mean at each x; redrawn on resize, as the ticks that
    fit depend on the size."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown: tuple[PlotData, str, str] | None = None

    def show(self, data: PlotData, x_name: str, y_title: str) -> None:
        self._shown = (data, x_name, y_title)
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self._shown is None:
            return
        data, x_name, y_title = self._shown
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"{y_title} by {x_name} · {len(data.points)} runs" if data.points else f"No run has both {x_name} and this metric")
        if data.points:
            colour = self.app.theme_variables.get("accent")
            line = self.app.theme_variables.get("primary")
            plt.scatter([x for x, _ in data.points], [y for _, y in data.points], marker="●",
                        **({"color": Color.parse(colour).rgb} if colour else {}))
            if len(data.means) > 1:
                plt.plot([x for x, _ in data.means], [y for _, y in data.means], marker="braille",
                         **({"color": Color.parse(line).rgb} if line else {}))
            self._axes(data, x_name)
        self.refresh()

    def _axes(self, data: PlotData, x_name: str) -> None:
        """Round ticks at least 12 columns and 1.5 rows apart (closer labels overlap and
        plotext drops some); text values at their positions."""
        plt, width, height = self.plt, self.size.width or 50, self.size.height or 14
        ys = [y for _, y in data.points]
        y = nice_axis(min(ys), max(ys), max(1, int((height - 6) / 1.5)))
        plt.ylim(y.low, y.high)
        plt.yticks(y.ticks, y.labels)
        if data.categories:
            plt.xlim(0.5, len(data.categories) + 0.5)
            plt.xticks(list(range(1, len(data.categories) + 1)), [visible(c) for c in data.categories])
        else:
            xs = [x for x, _ in data.points]
            x = nice_axis(min(xs), max(xs), max(1, (width - 10) // 12))
            plt.xlim(x.low, x.high)
            plt.xticks(x.ticks, x.labels)
        plt.xlabel(x_name)


class ParamMetricScreen(ReportsWorkerErrors):
    CSS_PATH = "param_metric.tcss"
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", tooltip="Back to the runs", id="plot.back")]

    class Choices(Message):
        """The settings that vary between the runs, and the metrics the database's runs logged."""

        def __init__(self, varying: list[str], metrics: list[str]) -> None:
            super().__init__()
            self.varying = varying
            self.metrics = metrics

    class Points(Message):
        def __init__(self, x: str, y: str, rows: list[tuple[Any, ...]]) -> None:
            super().__init__()
            self.x, self.y = x, y
            self.rows = rows

    app: ReasonlabApp

    def __init__(self, run_ids: list[int], what: str) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.what = what

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="pm-choices"):
            yield Select([], prompt="setting (x)", allow_blank=True, id="pm-x")
            yield Select([], prompt="final metric (y)", allow_blank=True, id="pm-y")
        with Horizontal(id="pm-body"):
            yield ParamChart(id="pm-chart")
            yield DataTable(cursor_type="row", id="pm-points")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"Setting vs metric · {self.what}"
        self._read_choices()

    @work(thread=True, exit_on_error=False, group="plot-read")
    def _read_choices(self) -> None:
        with open_store(self.app.db_path) as store:
            rows = store.column_values(self.run_ids, [SETTING + name for name in SETTING_NAMES])
            metrics = [m for m in store.logged_metric_names() if is_valid_key(METRIC + m)]
        self.post_message(self.Choices(varying_settings(rows), metrics))

    def on_param_metric_screen_choices(self, message: Choices) -> None:
        if self.closed:
            return
        varying = message.varying
        x_names = varying + [name for name in SETTING_NAMES if name not in varying]
        x_select = self.query_one("#pm-x", Select)
        x_select.set_options([(Text(f"{n} (varies)" if n in varying else n), SETTING + n) for n in x_names])
        y_select = self.query_one("#pm-y", Select)
        y_select.set_options([(Text(column_for(METRIC + m).title), METRIC + m) for m in message.metrics])
        x_select.value = SETTING + x_names[0]
        if message.metrics:
            y_select.value = METRIC + (ACCURACY if ACCURACY in message.metrics else message.metrics[0])
        x_select.focus()

    @on(Select.Changed)
    def _choice_changed(self) -> None:
        x, y = self.query_one("#pm-x", Select).value, self.query_one("#pm-y", Select).value
        if isinstance(x, str) and isinstance(y, str):
            self._read_points(x, y)

    @work(thread=True, exit_on_error=False, exclusive=True, group="plot-points")
    def _read_points(self, x: str, y: str) -> None:
        with open_store(self.app.db_path) as store:
            rows = store.column_values(self.run_ids, [x, y])
        self.post_message(self.Points(x, y, rows))

    def on_param_metric_screen_points(self, message: Points) -> None:
        if self.closed:
            return
        x_name, y_name = column_for(message.x).header, column_for(message.y).header
        rows = sorted(message.rows, key=lambda r: (r[2] is None, str(type(r[2])), r[2] if r[2] is not None else 0))
        table = self.query_one("#pm-points", DataTable)
        table.clear(columns=True)
        table.add_columns("Run", Text(x_name), Text(y_name))
        for run_id, label, x, y in rows:
            table.add_row(Text(fit(visible(f"#{run_id} {label}"), RUN_WIDTH)), Text(format_value(x)), Text(format_value(y)))
        self.query_one(ParamChart).show(plot_data([(x, y) for *_, x, y in rows]), x_name, metric_title(y_name))
