"""Sweeps: settings that take several values, expanded into a grid of run specs (or a seeded
random sample of it), and queued as runs tagged `sweep:<id>`. Each value is parsed by the spec's
own per-setting parser, and each combination is checked by `RunSpec` itself, so a sweep accepts
exactly what a run accepts. The CLI's `engine sweep` and the app's launch form both go through
`plan_sweep` and `queue_sweep`."""

from __future__ import annotations

import dataclasses
import math
import random
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from engine.core.errors import SpecError
from engine.core.spec import RunSpec, parse_text

if TYPE_CHECKING:
    from engine.core.store import RunStore

MAX_SWEEP_RUNS = 50
"""Each queued run waits in its own process (about 80 MB resident); past this, `--sample N` draws N."""
MAX_RANGE_VALUES = 10_000
"""A longer a..b range is refused before it is expanded (a sample draws from the grid without
listing it, but each range's values are listed)."""

RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


def parse_values(f: dataclasses.Field, text: str) -> list[Any]:
    """`1e-3, 2e-3` → [0.001, 0.002]; `0..2` → [0, 1, 2] for whole-number settings. Repeated
    values count once. A text setting takes `..` as text (a path such as `../q.json`)."""
    values: list[Any] = []
    for item in text.split(","):
        if not item.strip():
            raise SpecError(f.name, f"empty value in {text!r}; separate values with single commas")
        span = RANGE.match(item)
        if span and f.type in ("int", int):
            low, high = int(span[1]), int(span[2])
            if high < low:
                raise SpecError(f.name, f"range {item.strip()} runs backwards; write it low..high")
            if high - low >= MAX_RANGE_VALUES:
                raise SpecError(f.name, f"range {item.strip()} holds more than {MAX_RANGE_VALUES} values; narrow it")
            values.extend(range(low, high + 1))
        elif ".." in item and f.type in ("int", int, "float", float):
            raise SpecError(f.name, f"{item.strip()!r}: a..b ranges are for whole-number settings; list the values")
        else:
            values.append(parse_text(f, item))
    return list(dict.fromkeys(values))


def setting_values(kind: str, name: str, text: str) -> list[Any]:
    """One setting's values, each checked by the spec's rules for that setting (a SpecError
    names it). Numbers are only bounded, so the smallest and largest stand for a range."""
    by_name = {f.name: f for f in RunSpec.settings(kind)}
    if name not in by_name:
        raise SpecError(name, f"is not a setting of {kind} runs")
    values = parse_values(by_name[name], text)
    numeric = all(isinstance(value, (int, float)) for value in values)
    for value in {min(values), max(values)} if numeric else values:
        RunSpec(kind=kind, **{name: value})
    return values


def value_lists(kind: str, texts: dict[str, str]) -> dict[str, list[Any]]:
    """Each setting's list of values, parsed by the spec's own rules for that setting."""
    return {name: setting_values(kind, name, text) for name, text in texts.items()}


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep queues: its runs' specs, and what a review shows of them."""

    kind: str
    specs: tuple[RunSpec, ...]
    varying: dict[str, list[Any]]
    """The settings that take several values, with their values, slowest-varying first."""
    grid_size: int
    """Every combination; more than len(specs) when a sample was drawn."""

    @property
    def common(self) -> dict[str, Any]:
        """The settings given a value other than the default that every run shares."""
        first = self.specs[0].explicit_values()
        return {
            name: value for name, value in first.items()
            if all(name in spec.explicit and getattr(spec, name) == value for spec in self.specs)
        }


def grid_size(lists: dict[str, list[Any]]) -> int:
    return math.prod(len(values) for values in lists.values())


def plan_sweep(kind: str, texts: dict[str, str], sample: int | None = None, sample_seed: int = 0) -> SweepPlan:
    """The runs of a sweep: every combination of the given values (the first setting varies
    slowest), or `sample` of them drawn with `sample_seed`, kept in grid order. Each run's name
    is the given name followed by the values that vary (`lr learning_rate=0.002 seed=1`), so
    lists tell the runs apart. One value per setting plans a single run."""
    lists = value_lists(kind, texts)
    total = grid_size(lists)
    if sample is None:
        picked = range(total)
    elif not 1 <= sample <= total:
        raise SpecError("sample", f"must be between 1 and the grid's {total} combinations (got {sample})")
    else:
        picked = sorted(random.Random(sample_seed).sample(range(total), sample))
    if len(picked) > MAX_SWEEP_RUNS:
        raise SpecError("sample", too_many_runs(len(picked), "pass --sample N to draw N of them"))
    varying = {name: values for name, values in lists.items() if len(values) > 1}
    specs = []
    for index in picked:
        values = _combination(lists, index)
        name = sweep_name(values, list(varying))
        specs.append(RunSpec(kind=kind, **values | ({"name": name} if name else {})))
    return SweepPlan(kind, tuple(specs), varying, total)


def too_many_runs(count: int, remedy: str) -> str:
    """The one line that refuses a sweep of more than MAX_SWEEP_RUNS runs."""
    return f"the grid has {count} runs, more than {MAX_SWEEP_RUNS}; {remedy}"


def _combination(lists: dict[str, list[Any]], index: int) -> dict[str, Any]:
    """The `index`th combination in itertools.product order (the last setting varies fastest)."""
    values = {}
    for name in reversed(list(lists)):
        index, digit = divmod(index, len(lists[name]))
        values[name] = lists[name][digit]
    return {name: values[name] for name in lists}


def sweep_specs(kind: str, texts: dict[str, str], sample: int | None = None, sample_seed: int = 0) -> list[RunSpec]:
    """The specs `plan_sweep` plans."""
    return list(plan_sweep(kind, texts, sample, sample_seed).specs)


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


class RunStarter(Protocol):
    """What starts a queued run's engine process: `engine.core.processes.Launcher`, or the
    app's stand-in that starts it on the app's thread."""

    def start(self, store: RunStore, run_id: int) -> None: ...


def queue_sweep(store: RunStore, launcher: RunStarter, plan: SweepPlan, tags: list[str] | tuple[str, ...] = ()) -> tuple[str, list[int]]:
    """Create the plan's runs, tagged `sweep:<id>` (and `tags`), and start a waiting engine
    process for each, one at a time, so each run's place in the queue is recorded before the
    next one's process starts. Returns the sweep id and the run ids in queue order."""
    sweep_id = new_sweep_id()
    all_tags = [f"sweep:{sweep_id}", *tags]
    runs = [store.create_run(spec, parent_id=spec.parent_run_id(), tags=all_tags) for spec in plan.specs]
    for run in runs:
        launcher.start(store, run.id)
    return sweep_id, [run.id for run in runs]
