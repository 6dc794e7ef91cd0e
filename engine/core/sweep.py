"""Sweeps: settings that take several values, expanded into a grid of run specs (or a seeded
random sample of it). Each value is parsed by the spec's own per-setting parser, and each
combination is checked by `RunSpec` itself, so a sweep accepts exactly what a run accepts."""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
import secrets
from typing import Any

from engine.core.errors import SpecError
from engine.core.spec import RunSpec, parse_text

MAX_SWEEP_RUNS = 50
"""Each queued run waits in its own process (about 80 MB resident); past this, `--sample N` draws N."""

RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


def parse_values(f: dataclasses.Field, text: str) -> list[Any]:
    """`1e-3, 2e-3` → [0.001, 0.002]; `0..2` → [0, 1, 2] for whole-number settings. Repeated
    values count once."""
    values: list[Any] = []
    for item in text.split(","):
        if not item.strip():
            raise SpecError(f.name, f"empty value in {text!r}; separate values with single commas")
        span = RANGE.match(item)
        if span and f.type in ("int", int):
            low, high = int(span[1]), int(span[2])
            if high < low:
                raise SpecError(f.name, f"range {item.strip()} runs backwards; write it low..high")
            values.extend(range(low, high + 1))
        elif ".." in item:
            raise SpecError(f.name, f"{item.strip()!r}: a..b ranges are for whole-number settings; list the values")
        else:
            values.append(parse_text(f, item))
    return list(dict.fromkeys(values))


def value_lists(kind: str, texts: dict[str, str]) -> dict[str, list[Any]]:
    """Each setting's list of values, parsed by the spec's own rules for that setting."""
    by_name = {f.name: f for f in RunSpec.settings(kind)}
    lists = {}
    for name, text in texts.items():
        if name not in by_name:
            raise SpecError(name, f"is not a setting of {kind} runs")
        lists[name] = parse_values(by_name[name], text)
    return lists


def sweep_specs(kind: str, texts: dict[str, str], sample: int | None = None, sample_seed: int = 0) -> list[RunSpec]:
    """The specs of a sweep: every combination of the given values (the first setting varies
    slowest), or `sample` of them drawn with `sample_seed`, kept in grid order. Each run's name
    is the given name followed by the values that vary (`lr learning_rate=0.002 seed=1`), so
    lists tell the runs apart."""
    lists = value_lists(kind, texts)
    combinations = [dict(zip(lists, values)) for values in itertools.product(*lists.values())]
    if sample is not None:
        if not 1 <= sample <= len(combinations):
            raise SpecError(
                "sample", f"must be between 1 and the grid's {len(combinations)} combinations (got {sample})"
            )
        picked = sorted(random.Random(sample_seed).sample(range(len(combinations)), sample))
        combinations = [combinations[i] for i in picked]
    if len(combinations) > MAX_SWEEP_RUNS:
        raise SpecError(
            "sample", f"the grid has {len(combinations)} runs, more than {MAX_SWEEP_RUNS}; pass --sample N to draw N of them"
        )
    varying = [name for name, values in lists.items() if len(values) > 1]
    specs = []
    for values in combinations:
        name = sweep_name(values, varying)
        specs.append(RunSpec(kind=kind, **values | ({"name": name} if name else {})))
    return specs


def sweep_name(values: dict[str, Any], varying: list[str]) -> str:
    """A sweep run's name: the given name, then the values that vary across the sweep."""
    shown = [
        f"{key}={values[key]:g}" if isinstance(values[key], float) else f"{key}={values[key]}"
        for key in varying if key != "name"
    ]
    return " ".join([values.get("name", ""), *shown]).strip()


def new_sweep_id() -> str:
    """A short id for the tag `sweep:<id>` that groups a sweep's runs."""
    return secrets.token_hex(3)
