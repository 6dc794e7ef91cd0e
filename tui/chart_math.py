"""The maths behind a metric chart, free of widgets: what x a point sits at, smoothing, the log
scale, thinning a long series to what a terminal can show, and the cursor's lookups.

Series are numpy arrays so a run of a million points still draws at once."""

from __future__ import annotations

import math
from itertools import chain
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engine.core.spec import RunSpec
from tui.data import Axis, format_value, nice_axis

SMOOTHING_WEIGHT = 0.6
"""The EMA weight when smoothing is on: TensorBoard's default, so curves look as they do there."""

X_AXES = ("step", "samples", "time", "percent")
"""What the x axis can count, in the order its key cycles through them."""

X_AXIS_NAMES = {"step": "step", "samples": "samples seen", "time": "wall time", "percent": "% of run"}

STEP_PROGRESS_KINDS = frozenset({"sft", "rft", "grpo", "rollout"})
"""Kinds whose progress total is their final step (training steps, questions rolled out)."""

TIME_UNITS = ((3 * 3600, 3600.0, "h"), (120, 60.0, "min"), (0, 1.0, "s"))
"""(longest span in seconds from which to use it, seconds per unit, name)."""


def samples_per_step(spec: RunSpec) -> int | None:
    """Training samples one step stands for, so runs with different batch sizes line up on
    'samples seen'. A step is the same on any number of ranks (they split each micro-batch).
    None where a step counts no fixed number of samples (a pipeline's steps are its stages)."""
    if spec.kind in ("sft", "rft"):
        return spec.batch_size * spec.grad_accum
    if spec.kind == "grpo":
        return spec.questions_per_step * spec.group_size
    if spec.kind == "rollout":
        return spec.num_samples  # its step counts questions done, each sampled k times
    if spec.kind == "eval":
        return 1  # its step counts questions
    return None


@dataclass(frozen=True)
class RunScale:
    """What turns one run's steps into the other x axes."""

    started_at: float | None = None
    samples_per_step: int | None = None
    final_step: int | None = None
    """The run's planned last step; None: its last logged one."""

    @classmethod
    def of(cls, run: Any) -> RunScale:
        final = run.progress_total if run.kind in STEP_PROGRESS_KINDS and run.progress_total else None
        return cls(run.started_at, samples_per_step(run.spec), final)


@dataclass
class Series:
    """One curve's points as columns: steps, values and the time each was logged."""

    steps: np.ndarray = field(default_factory=lambda: np.empty(0))
    values: np.ndarray = field(default_factory=lambda: np.empty(0))
    times: np.ndarray = field(default_factory=lambda: np.empty(0))
    scale: RunScale = field(default_factory=RunScale)
    _smoothed: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    @classmethod
    def of(cls, points, scale: RunScale | None = None) -> Series:
        """From (step, value) or (step, value, time) tuples (a missing time is NaN)."""
        series = cls(scale=scale or RunScale())
        series.extend(points)
        return series

    def extend(self, points) -> None:
        if not len(points):
            return
        width = len(points[0])
        try:  # np.fromiter: twice as fast as np.array on a list of tuples
            columns = np.fromiter(chain.from_iterable(points), float, len(points) * width)
        except TypeError:  # a time that was never written (NULL)
            columns = np.array(points, dtype=float)
        columns = columns.reshape(len(points), width)
        times = columns[:, 2] if columns.shape[1] > 2 else np.full(len(columns), np.nan)
        self.steps = np.concatenate([self.steps, columns[:, 0]])
        self.values = np.concatenate([self.values, columns[:, 1]])
        self.times = np.concatenate([self.times, times])

    def __len__(self) -> int:
        return len(self.steps)

    def smoothed(self) -> np.ndarray:
        """The EMA of the values, extended as points arrive rather than redone on each draw."""
        done = len(self._smoothed)
        if done < len(self.values):
            before = self._smoothed[-1] * (1 - SMOOTHING_WEIGHT**done) if done else 0.0  # back to biased
            fresh = ema(self.values[done:], SMOOTHING_WEIGHT, before, done)
            self._smoothed = np.concatenate([self._smoothed, fresh])
        return self._smoothed[: len(self.values)]

    @property
    def last_step(self) -> int:
        return int(self.steps[-1]) if len(self.steps) else -1


@dataclass(frozen=True)
class ChartOptions:
    """How every chart on a screen is drawn; the screen's keys change it."""

    smoothing: bool = False
    x_axis: str = "step"
    log_y: bool = False
    cursor: float | None = None
    """Where the cursor stands, in x-axis units (seconds for wall time); None: hidden."""

    def next_x_axis(self) -> ChartOptions:
        following = X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]
        return replace(self, x_axis=following, cursor=None)

    def describe(self) -> str:
        """The mode line: each setting with the key that changes it."""
        return (
            f"s smoothing {'EMA ' + format_value(SMOOTHING_WEIGHT) if self.smoothing else 'off'}"
            f" · a x: {X_AXIS_NAMES[self.x_axis]} · l log y {'on' if self.log_y else 'off'} · ←/→ cursor"
        )


def ema(values: np.ndarray, weight: float = SMOOTHING_WEIGHT, before: float = 0.0, seen: int = 0) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average debiased by 1 - weight^(i+1), so
    the first points are not pulled towards zero. `before` is the (biased) average after the
    `seen` points before these, so a growing series is smoothed a piece at a time. Vectorised
    in blocks (weight^-k must stay finite inside one): a million points take milliseconds."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0 or weight <= 0:
        return values.copy()
    block = min(n, max(1, int(200 / -math.log10(weight))))
    pad = -n % block
    grid = np.concatenate([values, np.zeros(pad)]).reshape(-1, block)
    offsets = np.arange(block)
    local = np.cumsum(grid * weight ** -offsets, axis=1)
    local *= weight**offsets * (1 - weight)  # each block's average from zero
    carry = np.empty(len(grid))  # the average just before each block
    carry[0] = before
    decay = weight**block
    for b in range(1, len(grid)):
        carry[b] = carry[b - 1] * decay + local[b - 1, -1]
    local += carry[:, None] * weight ** (offsets + 1)
    smoothed = local.reshape(-1)[:n]
    biased = max(0, min(n, int(-16 / math.log10(weight)) + 1 - seen))  # past these, 1 - weight^i is 1.0
    smoothed[:biased] /= 1 - weight ** np.arange(seen + 1, seen + biased + 1)
    return smoothed


def x_values(series: Series, axis: str) -> np.ndarray:
    """Where each point sits on `axis`: its step, samples seen, seconds since the run started
    (or since its first point) or percent of the run. Points with no place (no time logged, a
    run whose steps count no samples) come out NaN."""
    steps = series.steps
    scale = series.scale
    if axis == "step":
        return steps
    if axis == "samples":
        per = scale.samples_per_step
        return steps * per if per is not None else np.full(len(steps), np.nan)
    if axis == "time":
        start = scale.started_at
        if start is None:
            finite = series.times[np.isfinite(series.times)]
            start = finite[0] if len(finite) else math.nan
        return series.times - start
    if axis == "percent":
        final = scale.final_step or (steps.max() if len(steps) else 0)
        return steps / final * 100 if final else np.zeros(len(steps))
    raise ValueError(f"unknown x axis {axis!r}")


def time_unit(span_seconds: float) -> tuple[float, str]:
    """The unit wall-time ticks read in: seconds, minutes or hours, by how long the span is."""
    return next((size, name) for least, size, name in TIME_UNITS if span_seconds >= least)


def x_axis(low: float, high: float, count: int, axis: str) -> Axis:
    """The x axis's round ticks: whole steps and samples, wall time in a readable unit."""
    if axis == "time":
        size, _ = time_unit(high)
        scaled = nice_axis(low / size, high / size, count)
        return Axis(scaled.low * size, scaled.high * size, [t * size for t in scaled.ticks], scaled.labels)
    return nice_axis(low, high, count, integer=axis in ("step", "samples"))


def x_title(axis: str, high: float) -> str:
    if axis == "time":
        return f"wall time ({time_unit(high)[1]})"
    return X_AXIS_NAMES[axis]


def format_x(x: float, axis: str, high: float) -> str:
    """The cursor's x: 'step 40', '12.8k samples', '3.5 min', '40%'."""
    if axis == "step":
        return f"step {x:.0f}"
    if axis == "samples":
        return f"{compact_count(x)} samples"
    if axis == "time":
        size, name = time_unit(high)
        return f"{x / size:.1f} {name}"
    return f"{x:.0f}%"


def compact_count(x: float) -> str:
    """A count in three significant digits: 950, 12.8k, 1.5M."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:.3g}M"
    return f"{x / 1e3:.3g}k" if abs(x) >= 1e4 else f"{x:.0f}"


def log_axis(low: float, high: float, count: int) -> Axis:
    """A y axis in log10 units (`low`, `high` are already log10): ticks at whole decades when
    the span has room for them, else round values inside it, labelled in the data's units."""
    if high - low >= 1:
        stride = max(1, math.ceil((math.floor(high) - math.ceil(low) + 1) / max(count, 1)))
        decades = list(range(math.ceil(low), math.floor(high) + 1, stride))
        return Axis(low, high, [float(d) for d in decades], [format_value(10.0**d) for d in decades])
    linear = nice_axis(10.0**low, 10.0**high, count)
    ticks = [(math.log10(t), label) for t, label in zip(linear.ticks, linear.labels) if t > 0]
    if low == high:
        return Axis(low - 0.05, high + 0.05, [t for t, _ in ticks], [label for _, label in ticks])
    return Axis(low, high, [t for t, _ in ticks], [label for _, label in ticks])


def minmax_downsample(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most about 2 × `buckets` + 2 points that draw like all of them: split the series into
    `buckets` runs of consecutive points and keep each run's lowest and highest point, in
    order, plus the first and the last point. A spike in a million points still shows."""
    n = len(x)
    buckets = max(1, buckets)
    if n <= 2 * buckets + 2:
        return x, y
    per = -(-n // buckets)
    whole = n // per * per
    rows = y[:whole].reshape(-1, per)
    starts = np.arange(0, whole, per)
    lows, highs = starts + rows.argmin(axis=1), starts + rows.argmax(axis=1)
    keep = [np.array([0, n - 1]), lows, highs]
    if whole < n:
        tail = y[whole:]
        keep.append(np.array([whole + tail.argmin(), whole + tail.argmax()]))
    index = np.unique(np.concatenate(keep))
    return x[index], y[index]


def nearest_index(xs: np.ndarray, x: float) -> int | None:
    """The index of the point of sorted `xs` closest to `x`; None when there are none."""
    if not len(xs):
        return None
    i = int(np.searchsorted(xs, x))
    if i == 0:
        return 0
    if i == len(xs):
        return len(xs) - 1
    return i if xs[i] - x < x - xs[i - 1] else i - 1


def cursor_target(xs_per_series: list[np.ndarray], current: float | None, direction: int, stride: float) -> float | None:
    """Where the cursor goes on left (-1) or right (+1): the nearest point at least `stride`
    (one column) away, so it steps through sparse points one by one and through dense ones a
    column at a time. Its first move puts it on the last point. None when nothing is drawn."""
    present = [xs for xs in xs_per_series if len(xs)]
    if not present:
        return None
    first, last = min(float(xs[0]) for xs in present), max(float(xs[-1]) for xs in present)
    if current is None:
        return last
    if direction > 0:
        target = current + stride
        after = [float(xs[i]) for xs in present if (i := int(np.searchsorted(xs, target - 1e-9 * abs(target)))) < len(xs)]
        return min(after) if after else max(current, last)
    target = current - stride
    before = [float(xs[i - 1]) for xs in present if (i := int(np.searchsorted(xs, target + 1e-9 * abs(target), "right"))) > 0]
    return max(before) if before else min(current, first)
