"""Sweeps searched by optuna: its sampler (TPE) picks each next combination of the given
values through the ask-and-tell interface, and our own queue and runner run it.

The search keeps at most as many trials in flight as the queue has slots, so each new trial
is asked for after the sampler has heard the results it can; every trial is an ordinary run
tagged with the sweep. The search itself runs in the foreground: if it stops, runs already
queued still run, and no further ones are asked for."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from engine.core.errors import ReasonlabError, SpecError
from engine.core.processes import Launcher
from engine.core.queue import POLL_SECONDS, slot_count
from engine.core.spec import RunSpec
from engine.core.store import FINAL_STATUSES, RunStore
from engine.core.sweep import sweep_name, value_lists


def optuna_search(
    store: RunStore, kind: str, texts: dict[str, str], *, trials: int, metric: str, direction: str,
    seed: int, tags: list[str], console: Console,
) -> dict[str, Any]:
    """Run `trials` runs chosen by optuna's TPE sampler from the listed values; returns the
    run ids and the best run (None when no run finished with `metric`)."""
    try:
        import optuna
    except ImportError:
        raise ReasonlabError(
            "--search optuna needs optuna: `pip install 'reasonlab[search]'` (or `pip install optuna`)."
        ) from None

    if trials < 1:
        raise SpecError("trials", f"must be at least 1 (got {trials})")
    lists = value_lists(kind, texts)
    fixed = {name: values[0] for name, values in lists.items() if len(values) == 1}
    space = {name: values for name, values in lists.items() if len(values) > 1}
    for name, values in space.items():  # every value is checked before anything is queued
        for value in values:
            RunSpec(kind=kind, **fixed | {name: value})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    distributions = {name: optuna.distributions.CategoricalDistribution(values) for name, values in space.items()}
    launcher = Launcher(store.path.resolve())
    in_flight: dict[int, optuna.trial.Trial] = {}
    run_ids: list[int] = []
    try:
        while len(run_ids) < trials or in_flight:
            while len(run_ids) < trials and len(in_flight) < slot_count(store):
                trial = study.ask(distributions)
                values = fixed | trial.params
                name = sweep_name(values, list(space))
                spec = RunSpec(kind=kind, **values | ({"name": name} if name else {}))
                run = store.create_run(spec, parent_id=spec.parent_run_id(), tags=tags)
                launcher.start(store, run.id)
                in_flight[run.id] = trial
                run_ids.append(run.id)
            for run_id, trial in list(in_flight.items()):
                run = store.get_run(run_id)
                if run.status not in FINAL_STATUSES:
                    continue
                value = run.summary.get(metric) if run.status == "completed" else None
                if value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    why = run.error or f"it has no metric {metric!r} (it has: {', '.join(sorted(run.summary)) or 'none'})"
                    console.print(f"run {run_id} ({run.status}) is not counted: {why}", highlight=False, soft_wrap=True)
                else:
                    study.tell(trial, value)
                    console.print(f"run {run_id}: {metric} {value:.4g} ({run.label})", highlight=False, soft_wrap=True)
                del in_flight[run_id]
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        console.print("Search stopped; runs already queued still run (`python -m engine queue` shows them).")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(done, key=lambda t: t.value if direction == "maximize" else -t.value) if done else None
    return {
        "run_ids": run_ids,
        "best_run": run_ids[best.number] if best else None,
        "best_value": best.value if best else None,
        "best_params": best.params if best else None,
    }
