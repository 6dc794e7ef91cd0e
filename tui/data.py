"""Pure helpers for the screens: formatting, spec diffs, outcome matrices, chart axes and a
run's headline results.

Nothing here touches the database or Textual (only rich text), so it is unit-tested on its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.text import Text

from engine.core.metrics import HIGHER_IS_BETTER, LOWER_IS_BETTER, base_name
from engine.core.paired import Key, Outcome
from engine.core.spec import DEFAULT_REASONING
from engine.core.text import visible

STATUS_THEME_COLOURS = {
    "queued": "foreground-muted",
    "running": "primary",
    "completed": "success",
    "failed": "error",
    "cancelled": "warning",
}
"""Theme variable that colours each status."""


def plain(text: str) -> Text:
    """A user string (a name, tag, path, error or model output) as literal text: never read as
    markup, its control characters shown as escapes, its line breaks kept."""
    return Text("\n".join(visible(line) for line in text.split("\n")))


def format_duration(seconds: float | None) -> str:
    """Compact duration: 45s, 3m05s, 2h07m, 3d04h."""
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_timestamp(ts: float | None) -> str:
    """Local date and time to the minute (month-day), empty when unknown."""
    if ts is None:
        return ""
    return time.strftime("%m-%d %H:%M", time.localtime(ts))


def format_value(value: Any) -> str:
    """A metric or setting value, short: floats to 4 significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) < 1e-3 or abs(value) >= 1e5:
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def format_bytes(size: int | None) -> str:
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def eta_seconds(done: int | None, total: int | None, elapsed: float | None, since_done: int = 0) -> float | None:
    """Time left, assuming the rate since progress stood at `since_done` (`elapsed` seconds
    ago) holds; None when it cannot be estimated yet."""
    if done is None or not total or elapsed is None or done <= since_done or done >= total:
        return None
    return elapsed * (total - done) / (done - since_done)


def parse_tags(text: str) -> list[str]:
    """Tags typed as 'a, b c' -> ['a', 'b', 'c'] (commas or spaces, duplicates dropped)."""
    seen: dict[str, None] = {}
    for tag in text.replace(",", " ").split():
        seen.setdefault(tag, None)
    return list(seen)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def spec_diff(specs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Any]]]:
    """The flattened keys whose values differ between specs, with each spec's value (None
    where a spec lacks the key), in sorted key order."""
    flats = [flatten(s) for s in specs]
    keys = sorted(set().union(*flats)) if flats else []
    rows = []
    for key in keys:
        values = [f.get(key) for f in flats]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, values))
    return rows


def outcome_matrix(
    per_run: Sequence[Mapping[Key, Outcome]], only_differing: bool = False
) -> list[tuple[Key, list[Outcome | None]]]:
    """Rows of ((split, question), outcome per run), questions in first-seen order. A run that
    never saw a question has None. `only_differing` keeps questions on which the runs that evaluated them
    disagree: a run that never saw a question does not make it differ."""
    questions: dict[Key, None] = {}
    for run in per_run:
        questions.update(dict.fromkeys(run))
    rows = []
    for question in questions:
        cells = [run.get(question) for run in per_run]
        symbols = {c.symbol for c in cells if c is not None}
        if only_differing and len(symbols) < 2:
            continue
        rows.append((question, cells))
    return rows


RESULT_KINDS = ("eval", "rollout")
"""Kinds whose page opens on their results (a few numbers) rather than on curves."""


@dataclass(frozen=True)
class ResultFigure:
    """One headline number of a run: `value` is digits only ('-' while unknown)."""

    title: str
    value: str
    caption: str


def result_figures(
    kind: str, summary: Mapping[str, float], samples: int, correct: int, finished: bool,
    reasoning: str = DEFAULT_REASONING,
) -> list[ResultFigure]:
    """The headline numbers of an eval (accuracy, answer rate, tokens/s) or a rollout (success
    rate, correct rate, tokens/s). `samples` and `correct` count the stored samples, so an
    eval still running shows its accuracy so far; empty for other kinds. An eval whose chains
    call the calculator says so, so its accuracy is not read as pure reasoning's."""
    if kind == "eval":
        accuracy = summary.get("accuracy")
        if accuracy is not None:
            tool = ", with the calculator" if reasoning == "calculator" else ""
            first = ResultFigure("Accuracy", _rate(accuracy), f"{correct} of {samples} correct{tool}")
        elif samples:
            first = ResultFigure("Accuracy so far", _rate(correct / samples), f"{correct} of {samples} correct")
        else:
            first = ResultFigure("Accuracy", "-", "no answers yet")
        answer_rate = summary.get("answer_rate")
        answered = f"{round(answer_rate * samples)} of {samples} answered" if answer_rate is not None else ""
        second = _figure("Answer rate", answer_rate, _rate, answered, finished)
    elif kind == "rollout":
        questions = summary.get("questions_done")
        first = _figure(
            "Success rate", summary.get("success_rate"), _rate,
            f"of {questions:.0f} questions solved" if questions is not None else "questions solved", finished,
        )
        counted = f"{correct} of {samples} samples correct" if samples else "samples correct"
        second = _figure("Correct rate", summary.get("correct_rate"), _rate, counted, finished)
    else:
        return []
    speed = _figure("Tokens / s", summary.get("tokens_per_s"), _speed, "generated", finished)
    return [first, second, speed]


def _figure(title: str, value: float | None, shown, caption: str, finished: bool) -> ResultFigure:
    if value is None:
        return ResultFigure(title, "-", "not logged" if finished else "when it finishes")
    return ResultFigure(title, shown(value), caption)


def _rate(value: float) -> str:
    return f"{value:.3f}"


def _speed(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def progress_count(done: int | None, total: int | None, noun: str = "questions") -> str:
    """'40 / 200 questions', or what is known of it."""
    if total:
        return f"{done or 0} / {total} {noun}"
    return f"{done} {noun}" if done else f"no {noun} done yet"


@dataclass(frozen=True)
class Axis:
    low: float
    high: float
    ticks: list[float]
    labels: list[str]


def nice_step(span: float, count: int, *, integer: bool = False) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k step that cuts `span` into at most `count` intervals
    (a whole number when `integer`)."""
    raw = span / max(count, 1)
    if integer and raw <= 1:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    steps = (m * magnitude for m in (1, 2, 2.5, 5, 10))
    return next(s for s in steps if raw <= s * (1 + 1e-9) and not (integer and not _is_whole(s)))


def nice_axis(low: float, high: float, count: int = 5, *, integer: bool = False) -> Axis:
    """An axis over [low, high] with round ticks inside it (whole numbers on an `integer` axis
    such as steps). The ends stay at the data, so no space is lost past the last point. Equal
    ends are padded, so a single point sits in the middle of a short axis around it instead
    of on one from -1 to 1, with one tick: its value."""
    if low == high:
        pad = 0.5 if integer else (abs(low) * 0.1 or 0.1)
        return Axis(low - pad, high + pad, [low], [format_value(low)])
    step = nice_step(high - low, count, integer=integer)
    first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    ticks = [_clean(k * step) for k in range(first, last + 1)]
    return Axis(low, high, ticks, tick_labels(ticks, step))


def _clean(value: float) -> float:
    """A tick without float noise (0.30000000000000004 -> 0.3) or a negative zero."""
    return round(value, 12) + 0.0


def tick_labels(ticks: Sequence[float], step: float) -> list[str]:
    """Tick labels with as many digits as the `step` between ticks needs: 0, 20, 40; 0.25,
    0.30; 0.0002; 1.2e-05; 250k; 1.5M."""
    if not ticks:
        return []
    biggest = max(abs(t) for t in ticks)
    scale, suffix = next(((s, x) for s, x, least in ((1e6, "M", 1e6), (1e3, "k", 1e4)) if biggest >= least), (1.0, ""))
    decimals = next(d for d in range(13) if _is_whole(step / scale * 10**d))
    if decimals <= 4:
        return [f"{t / scale:.{decimals}f}{suffix}" if t else "0" for t in ticks]
    magnitude = math.floor(math.log10(step))
    mantissa_digits = next(d for d in range(13) if _is_whole(step / 10.0**magnitude * 10**d)) + 1
    digits = math.floor(math.log10(biggest)) - magnitude + mantissa_digits
    return [f"{t:.{max(1, digits)}g}" for t in ticks]


def _is_whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-6 * abs(x)


def best_value(metric: str, values: Sequence[float]) -> float | None:
    """The best of a metric's values (lowest loss, highest accuracy); None for a metric that
    has no better direction, such as the learning rate."""
    base = base_name(metric)
    if not len(values) or base not in HIGHER_IS_BETTER | LOWER_IS_BETTER:
        return None
    return float(np.max(values) if base in HIGHER_IS_BETTER else np.min(values))  # fast on a million


def chart_title(title: str, metric: str, values: Sequence[float]) -> str:
    """A chart's header: the metric, its last value and, when it differs, its best one."""
    if not len(values):
        return f"{title} (no points yet)"
    last, best = float(values[-1]), best_value(metric, values)
    text = f"{title} · {'last ' if len(values) > 1 else ''}{format_value(last)}"
    if best is not None and len(values) > 1:
        text += " (best)" if best == last else f" · best {format_value(best)}"
    return text
