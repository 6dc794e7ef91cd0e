"""The chart maths: smoothing, x axes, log scale, downsampling and the cursor's lookups."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine.core.spec import RunSpec
from tui.chart_math import (
    ChartOptions,
    RunScale,
    Series,
    compact_count,
    cursor_target,
    ema,
    format_x,
    log_axis,
    minmax_downsample,
    nearest_index,
    samples_per_step,
    time_unit,
    x_axis,
    x_title,
    x_values,
)


def tensorboard_ema(values, weight):
    """TensorBoard's loop, point by point: the reference the vectorised EMA must match."""
    last, out = 0.0, []
    for i, v in enumerate(values):
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight ** (i + 1)))
    return out


@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=3000),
    st.sampled_from([0.0, 0.3, 0.6, 0.9, 0.99, 0.999]),
)
def test_ema_matches_tensorboard_point_by_point(values, weight):
    got = ema(np.array(values), weight)
    want = tensorboard_ema(values, weight) if weight else values
    scale = max(1.0, max(abs(v) for v in values))
    assert np.allclose(got, want, rtol=1e-9, atol=1e-9 * scale)


def test_ema_is_debiased_so_a_constant_stays_put():
    assert np.allclose(ema(np.full(5000, 3.0), 0.6), 3.0)
    assert ema(np.array([]), 0.6).size == 0


def scale(**kwargs) -> RunScale:
    return RunScale(**kwargs)


def test_x_values_by_axis():
    series = Series.of([(0, 1.0, 100.0), (10, 2.0, 160.0), (20, 3.0, 220.0)], scale(started_at=90.0, samples_per_step=32, final_step=40))
    assert x_values(series, "step").tolist() == [0, 10, 20]
    assert x_values(series, "samples").tolist() == [0, 320, 640]
    assert x_values(series, "time").tolist() == [10, 70, 130]  # seconds since the run started
    assert x_values(series, "percent").tolist() == [0, 25, 50]  # of the planned 40 steps


def test_x_values_fall_back_to_the_series_itself():
    series = Series.of([(5, 1.0, 100.0), (10, 2.0, 130.0)])
    assert x_values(series, "time").tolist() == [0, 30]  # no start: from the first point
    assert x_values(series, "percent").tolist() == [50, 100]  # no plan: the last step logged
    assert np.isnan(x_values(series, "samples")).all()  # no samples per step known
    assert np.isnan(x_values(Series.of([(1, 2.0)]), "time")).all()  # no time logged


def test_samples_per_step_is_the_effective_batch():
    assert samples_per_step(RunSpec(kind="sft", batch_size=16, grad_accum=4, processes=2)) == 64
    assert samples_per_step(RunSpec(kind="grpo", questions_per_step=8, group_size=4)) == 32
    assert samples_per_step(RunSpec(kind="rollout", num_samples=5)) == 5
    assert samples_per_step(RunSpec(kind="pipeline")) is None


def test_x_axis_ticks_and_titles():
    assert x_axis(0, 80, 4, "step").ticks == [0, 20, 40, 60, 80]
    minutes = x_axis(0, 720, 4, "time")  # 12 minutes: ticks every few minutes, in seconds
    assert minutes.labels == ["0", "5", "10"] and minutes.ticks == [0, 300, 600]
    assert x_title("time", 720) == "wall time (min)" and x_title("time", 60) == "wall time (s)"
    assert time_unit(4 * 3600) == (3600.0, "h")
    assert format_x(40, "step", 80) == "step 40" and format_x(720, "time", 720) == "12.0 min"
    assert format_x(12_800, "samples", 0) == "12.8k samples" and format_x(25, "percent", 100) == "25%"
    assert compact_count(1_500_000) == "1.5M" and compact_count(950) == "950"


def test_log_axis_puts_ticks_on_decades_or_round_values():
    decades = log_axis(-5, 0.2, 6)
    assert decades.ticks == [-5, -4, -3, -2, -1, 0] and decades.labels[0] == "1e-05" and decades.labels[-1] == "1"
    narrow = log_axis(math.log10(0.3), math.log10(0.7), 4)  # under a decade: round values
    assert narrow.labels == ["0.3", "0.4", "0.5", "0.6", "0.7"]
    assert np.allclose(narrow.ticks, np.log10([0.3, 0.4, 0.5, 0.6, 0.7]))


def test_downsampling_keeps_the_extremes_and_the_ends():
    rng = np.random.default_rng(0)
    y = rng.normal(size=1_000_003)
    y[123_456], y[654_321] = 50.0, -50.0  # spikes a naive stride would miss
    x = np.arange(len(y), dtype=float)
    xs, ys = minmax_downsample(x, y, 300)
    assert len(xs) <= 2 * 300 + 4
    assert ys.max() == 50.0 and ys.min() == -50.0
    assert xs[0] == 0 and xs[-1] == len(y) - 1 and (np.diff(xs) > 0).all()
    assert (y[xs.astype(int)] == ys).all()  # real points, not averages


@given(st.lists(st.floats(-1e9, 1e9), max_size=500), st.integers(1, 60))
def test_downsampling_is_bounded_and_keeps_min_and_max(values, buckets):
    y = np.array(values, dtype=float)
    x = np.arange(len(y), dtype=float)
    xs, ys = minmax_downsample(x, y, buckets)
    assert len(xs) <= max(len(y), 2 * buckets + 4) and len(xs) <= len(y)
    if len(y):
        assert ys.max() == y.max() and ys.min() == y.min() and xs[-1] == x[-1]


def test_nearest_index():
    xs = np.array([0.0, 5.0, 10.0, 20.0])
    assert [nearest_index(xs, x) for x in (-3, 2, 3, 14, 16, 99)] == [0, 0, 1, 2, 3, 3]
    assert nearest_index(np.array([]), 1.0) is None


def test_cursor_steps_through_points_at_least_a_column_apart():
    sparse, dense = np.arange(0.0, 81, 20), np.arange(0.0, 81, 5)
    assert cursor_target([sparse, dense], None, -1, 3) == 80  # first press: the last point
    assert cursor_target([sparse, dense], 40, 1, 3) == 45
    assert cursor_target([sparse, dense], 40, -1, 3) == 35
    assert cursor_target([sparse, dense], 40, 1, 12) == 55 and cursor_target([sparse], 40, 1, 12) == 60
    assert cursor_target([sparse, dense], 80, 1, 3) == 80 and cursor_target([dense], 0, -1, 3) == 0
    assert cursor_target([np.array([])], None, 1, 3) is None


def test_options_cycle_the_x_axis_and_hide_the_cursor():
    options = ChartOptions(cursor=3.0)
    seen = [options.x_axis]
    for _ in range(4):
        options = options.next_x_axis()
        seen.append(options.x_axis)
    assert seen == ["step", "samples", "time", "percent", "step"] and options.cursor is None
    assert "EMA 0.6" in ChartOptions(smoothing=True).describe() and "log y on" in ChartOptions(log_y=True).describe()


def test_series_from_points_with_and_without_times():
    series = Series.of([(1, 2.0, 10.0), (2, 3.0, None)])
    assert series.steps.tolist() == [1, 2] and series.times[0] == 10 and np.isnan(series.times[1])
    assert len(Series.of([])) == 0 and Series.of([]).last_step == -1


def test_a_growing_series_smooths_only_its_new_points_and_matches_all_at_once():
    values = np.random.default_rng(2).normal(size=3000)
    series = Series.of([(i, v) for i, v in enumerate(values[:7])])
    series.smoothed()
    series.extend([(i, v) for i, v in enumerate(values[7:2500], start=7)])
    series.smoothed()
    series.extend([(i, v) for i, v in enumerate(values[2500:], start=2500)])
    assert np.allclose(series.smoothed(), tensorboard_ema(values, 0.6), rtol=1e-9, atol=1e-12)
