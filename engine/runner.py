"""Executes one stored run: marks it running, dispatches on its kind, and always leaves it in a
final state — completed, failed with a one-line reason, or cancelled (Ctrl-C, SIGTERM)."""

from __future__ import annotations

import importlib
import logging
import os
import platform
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from engine.core.errors import ReasonlabError, RunCancelled
from engine.core.ids import is_run_id, parse_run_id
from engine.core.paired import NUMERICS
from engine.core.processes import Owner
from engine.core.spec import RunSpec
from engine.core.store import Run, RunStore
from engine.core.tracker import Tracker
from engine.distributed import SINGLE_PROCESS, Ranks, run_ranks, wants_ranks

# Handlers are imported only when a run of that kind executes, so listing runs stays torch-free.
HANDLERS = {
    "eval": "engine.evaluation:run_eval",
    "sft": "engine.training:run_sft",
    "rft": "engine.training:run_rft",
    "rollout": "engine.rollout:run_rollout",
    "pipeline": "engine.pipeline:run_pipeline",
    "grpo": "engine.grpo:run_grpo",
}
CANCEL_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # `engine cancel` and Ctrl-C
PACKAGES = ("torch", "transformers", "peft", "accelerate", "sqlite-utils", "reasonlab")


@dataclass
class RunContext:
    """What a run handler gets: its spec, the store, a tracker, its folder and a logger."""

    store: RunStore
    run: Run
    tracker: Tracker
    console: Console
    log: logging.Logger
    resuming: bool = False
    results: dict[str, Any] = field(default_factory=dict)
    ranks: Ranks = SINGLE_PROCESS

    @property
    def spec(self) -> RunSpec:
        return self.run.spec

    @property
    def run_dir(self) -> Path:
        """The run's folder, checked to lie inside the database's runs folder."""
        return self.store.run_folder(self.run)

    def run_artifact(self, value: str, kind: str, setting: str) -> Path:
        """`value` is a run id (whose `kind` artifact is used) or a path."""
        if is_run_id(value):
            parent = self.store.get_run(parse_run_id(value, setting))
            artifact = self.store.artifact(parent.id, kind)
            if artifact is None:
                raise ReasonlabError(
                    f"{setting}: run {parent.id} ({parent.kind}, {parent.status}) has no {kind} artifact; "
                    f"pick a completed run that produced one."
                )
            return Path(artifact["path"])
        path = Path(value).expanduser()
        if not path.exists():
            raise ReasonlabError(f"{setting}: {value} is neither a run id nor an existing path.")
        return path

    def load_model(self, *, adapter: str | None = None, trainable_adapter: bool = False):
        from engine.model import load_model, numerics

        adapter = self.spec.adapter if adapter is None else adapter
        adapter_path = self.run_artifact(adapter, "adapter", "adapter") if adapter else None
        self.log.info("loading model %s%s", self.spec.model, f" with adapter {adapter_path}" if adapter_path else "")
        loaded = load_model(
            self.spec.model, adapter=adapter_path, device=self.spec.device, dtype=self.spec.dtype,
            trainable_adapter=trainable_adapter,
            adapter_label=f"adapter #{adapter}" if adapter and is_run_id(adapter) else None,
        )
        self.store.add_environment(self.run.id, {NUMERICS: numerics(loaded)})
        return loaded

    def add_artifact(self, kind: str, path: Path) -> None:
        self.store.add_artifact(self.run.id, kind, path)
        self.log.info("artifact %s: %s", kind, path)

    @contextmanager
    def progress(self, description: str, total: int, completed: int = 0) -> Iterator["ProgressHandle"]:
        """A terminal progress bar with ETA that also reports progress to the store."""
        bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, disable=not self.console.is_terminal, transient=False,
        )
        with bar:
            task_id = bar.add_task(description, total=total, completed=completed)
            handle = ProgressHandle(bar, task_id, self.tracker, completed, total)
            self.tracker.progress(completed, total)
            yield handle
        self.tracker.flush()


@dataclass
class ProgressHandle:
    bar: Progress
    task_id: int
    tracker: Tracker
    done: int
    total: int

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.bar.update(self.task_id, completed=self.done)
        self.tracker.progress(self.done, self.total)


def execute(store: RunStore, run_id: int, *, resume: bool = False, console: Console | None = None) -> Run:
    """Claim a queued run (or, resuming, a cancelled or failed one) for this process, run it to a
    final state and return it. A run another live process holds is refused with one line."""
    console = console or Console(stderr=True)
    # Before the run is claimed: `engine cancel` may signal as soon as it sees it running.
    previous = {sig: signal.signal(sig, _raise_cancelled) for sig in CANCEL_SIGNALS}
    try:
        run = store.claim_run(run_id, Owner.of_this_process(), environment(), resume=resume)
    except BaseException:
        _restore_signals(previous)
        raise
    log, handler = _open_log(run, store.run_folder(run))
    tracker = Tracker(store, run_id)
    context = RunContext(store, run, tracker, console, log, resuming=resume)
    log.info("%s run %d (%s) %s", "resuming" if resume else "starting", run_id, run.kind, run.spec.to_json())
    try:
        if wants_ranks(run.spec):
            run_ranks(context)  # the ranks do the work; this process owns the run and waits
        else:
            _handler(run.kind)(context)
        tracker.flush()
        store.mark_finished(run_id, "completed")
        log.info("completed: %s", context.results)
    except (RunCancelled, KeyboardInterrupt):
        tracker.flush()
        store.mark_finished(run_id, "cancelled", "Cancelled by the user; `python -m engine resume %d` continues it." % run_id)
        log.info("cancelled")
    except ReasonlabError as exc:
        tracker.flush()
        store.mark_finished(run_id, "failed", str(exc))
        log.error("failed: %s", exc)
        raise
    except Exception as exc:
        tracker.flush()
        message = f"Internal error: {type(exc).__name__}: {exc}".splitlines()[0]
        store.mark_finished(run_id, "failed", f"{message} (traceback in {context.run_dir / 'log.txt'})")
        log.error("failed:\n%s", traceback.format_exc())
        raise
    finally:
        _restore_signals(previous)
        log.removeHandler(handler)
        handler.close()
    return store.get_run(run_id)


def _restore_signals(previous: dict) -> None:
    for sig, handler_before in previous.items():
        # A cancelled pipeline stage keeps signals ignored: its parent run is cancelling
        # too, and a repeated signal must not interrupt that either.
        if signal.getsignal(sig) is not signal.SIG_IGN or handler_before is not _raise_cancelled:
            signal.signal(sig, handler_before)
def prepare(kind: str) -> None:
    """Import the model code a `kind` run needs (seconds on a CPU), e.g. while it waits for a slot."""
    _handler(kind)
    importlib.import_module("engine.model")


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": _git_commit(),
        "argv": sys.argv,
    }


def _handler(kind: str):
    module, name = HANDLERS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def _raise_cancelled(signum, frame) -> None:
    """Cancel the run; a repeated signal is ignored, so it cannot interrupt the checkpoint save
    and final bookkeeping that the first one started (a second SIGTERM 20 ms later used to end
    in a RunCancelled traceback)."""
    for sig in CANCEL_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise RunCancelled()


def _open_log(run: Run, folder: Path) -> tuple[logging.Logger, logging.Handler]:
    """The run's log file, unless our stdout already goes there (a run started by the app)."""
    path = folder / "log.txt"
    log = logging.getLogger(f"reasonlab.run.{run.id}")
    log.setLevel(logging.INFO)
    log.propagate = False
    if _same_file(sys.stdout, path):
        handler: logging.Handler = logging.StreamHandler(sys.stdout)
    else:
        handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    return log, handler


def _same_file(stream, path: Path) -> bool:
    try:
        return path.exists() and os.path.samestat(os.fstat(stream.fileno()), path.stat())
    except (OSError, ValueError, AttributeError):
        return False


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
