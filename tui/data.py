"""Pure helpers for the screens: formatting, spec diffs and outcome matrices.

Nothing here touches the database or Textual, so it is unit-tested on its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CHARTS_BY_KIND: dict[str, tuple[str, ...]] = {
    "eval": ("accuracy", "answer_rate", "tokens_per_s"),
    "rollout": ("success_rate", "correct_rate", "tokens_per_s"),
    "sft": ("loss", "lr", "accuracy"),
    "rft": ("loss", "lr", "accuracy"),
    "pipeline": ("loss", "lr", "accuracy"),
    "grpo": ("reward_mean", "accuracy", "kl", "clip_ratio", "completion_length_mean"),
}
"""The metrics charted on a run's page, by kind."""

METRIC_TITLES = {
    "loss": "Loss",
    "lr": "Learning rate",
    "accuracy": "Accuracy",
    "answer_rate": "Answer rate",
    "grad_norm": "Gradient norm",
    "samples_per_s": "Samples / s",
    "tokens_per_s": "Tokens / s",
    "questions_done": "Questions done",
    "success_rate": "Success rate",
    "correct_rate": "Correct rate",
}

STATUS_THEME_COLOURS = {
    "queued": "foreground-muted",
    "running": "primary",
    "completed": "success",
    "failed": "error",
    "cancelled": "warning",
}
"""Theme variable that colours each status."""


def metric_title(name: str) -> str:
    return METRIC_TITLES.get(name, name.replace("_", " ").capitalize())


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


def eta_seconds(done: int | None, total: int | None, elapsed: float | None) -> float | None:
    """Time left, assuming the rate so far holds; None when it cannot be estimated."""
    if not done or not total or elapsed is None or done >= total:
        return None
    return elapsed * (total - done) / done


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


@dataclass(frozen=True)
class Outcome:
    """How a run did on one question: `correct` of `samples` generations were right."""

    correct: int
    samples: int

    @property
    def symbol(self) -> str:
        if self.correct == self.samples:
            return "✓"
        if self.correct == 0:
            return "✗"
        return f"{self.correct}/{self.samples}"


def outcomes(samples: Iterable[Mapping[str, Any]]) -> dict[str, Outcome]:
    """Per question text, how many of its samples were correct."""
    counts: dict[str, list[int]] = {}
    for row in samples:
        c = counts.setdefault(row["question"], [0, 0])
        c[0] += int(row["correct"])
        c[1] += 1
    return {q: Outcome(c, n) for q, (c, n) in counts.items()}


def outcome_matrix(
    per_run: Sequence[Mapping[str, Outcome]], only_differing: bool = False
) -> list[tuple[str, list[Outcome | None]]]:
    """Rows of (question, outcome per run), questions in first-seen order. A run that never saw a
    question has None. `only_differing` keeps questions whose symbols are not all the same."""
    questions: dict[str, None] = {}
    for run in per_run:
        questions.update(dict.fromkeys(run))
    rows = []
    for question in questions:
        cells = [run.get(question) for run in per_run]
        symbols = {c.symbol if c else None for c in cells}
        if only_differing and len(symbols) == 1:
            continue
        rows.append((question, cells))
    return rows


def downsample(points: Sequence[tuple[int, float]], limit: int) -> Sequence[tuple[int, float]]:
    """At most about `limit` evenly spaced points, always keeping the last one."""
    if len(points) <= limit:
        return points
    stride = -(-len(points) // limit)
    kept = list(points[::stride])
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return kept
