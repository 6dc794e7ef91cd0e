"""The run queue: N slots, each a file lock in the database's runs folder, and no daemon.

Every engine process that starts a run (`engine start`, which the app and sweeps launch
detached, and `engine KIND …` in the foreground) first waits for a slot. The process waiting for
a queued run takes a free slot only when no run ahead of it in the queue still has a waiting
process, so runs start in queue order. The operating system releases a file lock when its
process ends, however it ends (kill -9 included), so a crashed run never keeps its slot and
nothing has to clean up after it. The waiting processes are the queue: it keeps moving while the
app is closed, and a queued run whose process is gone holds up nobody.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from engine.core.errors import ReasonlabError
from engine.core.processes import Owner
from engine.core.store import RunStore

SLOTS_SETTING = "queue_slots"
MAX_SLOTS = 64
CORES_PER_SLOT = 8
POLL_SECONDS = 0.5
"""How often a waiting process looks at the queue: a start is at most this late."""


def default_slots(cores: int | None = None) -> int:
    """One slot per 8 cores, at least one. Torch gives each run every core for its matrix
    products, so on a small machine a second run only halves the speed of both; a model of
    SmolLM2's size gains little from more than 8 threads, so big machines run several."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, cores // CORES_PER_SLOT)


def slot_count(store: RunStore) -> int:
    """The database's slot count (`engine queue --slots N` sets it), else the machine's default.
    It is a setting of the database, not of a process, so every waiting process agrees on it."""
    stored = store.setting(SLOTS_SETTING)
    return int(stored) if stored and stored.isdigit() and int(stored) >= 1 else default_slots()


def set_slot_count(store: RunStore, count: int) -> None:
    if not 1 <= count <= MAX_SLOTS:
        raise ReasonlabError(f"Slots must be between 1 and {MAX_SLOTS} (got {count}).")
    store.set_setting(SLOTS_SETTING, str(count))


def slot_folder(store: RunStore) -> Path:
    return store.runs_root / ".slots"


@dataclass
class Slot:
    """A slot (numbered from 1) this process holds until `release` (or until it exits)."""

    index: int
    lock: FileLock

    def release(self) -> None:
        self.lock.release()


def try_slot(store: RunStore) -> Slot | None:
    """A free slot, taken at once, or None when all are busy."""
    folder = slot_folder(store)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(1, slot_count(store) + 1):
        # No soft-lock fallback: a marker file outlives a killed process and would block the slot.
        lock = FileLock(folder / f"slot-{index}.lock", timeout=0, fallback_to_soft=False)
        try:
            lock.acquire()
        except Timeout:
            continue
        except OSError as exc:
            raise ReasonlabError(
                f"Cannot lock queue slot file in {folder} ({exc}); put the database on a local disk."
            ) from None
        return Slot(index, lock)
    return None


def first_waiting_ahead(store: RunStore, run_id: int) -> int | None:
    """The first queued run ahead of `run_id` whose waiting process is alive, if any. It stops
    at the first one, so each of many waiting processes checks about one process per look."""
    for queued in store.queued_runs():
        if queued.id == run_id:
            return None
        if queued.waiter is not None and queued.waiter.is_alive():
            return queued.id
    return None


def wait_for_slot(
    store: RunStore,
    run_id: int,
    *,
    in_order: bool = True,
    on_wait: Callable[[str], None] = lambda message: None,
    prepare: Callable[[], None] = lambda: None,
) -> Slot | None:
    """Block until `run_id` may run in a slot, and return the slot, recorded on the run.

    `in_order` (starting a queued run): this process is recorded as the run's waiter, and the
    run starts only when no run ahead of it waits; None when the run left the queue meanwhile
    (cancelled). Otherwise (resuming) any free slot will do. `on_wait` hears once why the
    run waits. `prepare` runs once when this run is next to start but every slot is busy: the
    engine imports its model code then (seconds on a CPU), so the run starts the moment a slot
    frees. Only the next run does this, so the other waiting processes stay small."""
    if in_order:
        store.register_waiter(run_id, Owner.of_this_process())
    told = prepared = False
    while True:
        if in_order and store.get_run(run_id).status != "queued":
            return None
        ahead = first_waiting_ahead(store, run_id) if in_order else None
        slot = None if ahead is not None else try_slot(store)
        if slot is not None:
            store.record_slot(run_id, slot.index)
            return slot
        if not told:
            count = slot_count(store)
            reason = f"run {ahead} starts before it" if ahead is not None else f"all {count} slot(s) busy"
            on_wait(f"Run {run_id} waits for a slot ({reason}); `python -m engine queue` shows the queue.")
            told = True
        if ahead is None and not prepared:
            prepare()
            prepared = True
            continue
        time.sleep(POLL_SECONDS)
