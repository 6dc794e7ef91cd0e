"""One rank of a run launched through `accelerate launch` (`python -m engine rank`).

Rank 0 reads the run from the store and sends it to the other ranks; every later read of the
store is made by rank 0 and its answer sent to all (`CollectiveStore`), so ranks on other machines
never open the SQLite file. Rank 0 alone writes: samples and metrics the ranks gathered to it,
artifacts, checkpoints, and finally the outcome its owner (engine/distributed.py) records.

What ranks exchange is JSON in byte tensors, never pickles (torch's `*_object` collectives and
accelerate's `gather_object` unpickle what they receive).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import traceback
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from rich.console import Console

from engine.core.errors import ReasonlabError, RunCancelled
from engine.core.metrics import THREADS, per_rank_name
from engine.core.processes import Owner
from engine.core.spec import RunSpec
from engine.core.store import Run, RunStore
from engine.core.tracker import Tracker
from engine.distributed import Ranks, threads_per_rank, write_outcome
from engine.runner import RunContext, _handler, _open_log


class AccelerateRanks(Ranks):
    """The ranks of an accelerate launch: rank, world size, and the few exchanges handlers need."""

    def __init__(self, state, owner: Owner | None):
        self.state = state
        self.rank = state.process_index
        self.world = state.num_processes
        self.is_main = state.is_main_process
        self.device = state.device
        self.owner = owner
        self.stop_requested = False

    def request_stop(self, signum=None, frame=None) -> None:
        """The SIGTERM/SIGINT handler: stop at the next stop point, together with every rank."""
        self.stop_requested = True

    def stop_point(self) -> None:
        owner_gone = self.is_main and self.owner is not None and not self.owner.is_alive()
        flag = torch.tensor([float(self.stop_requested or owner_gone)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item():
            raise RunCancelled()

    def gather(self, rows: list[Any]) -> list[Any]:
        return [row for part in self.exchange(rows) for row in part]

    def total(self, value: float) -> float:
        summed = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(summed)
        return summed.item()

    def per_rank(self, value: float) -> list[float]:
        return [float(v) for v in self.exchange(value)]

    def sum_gradients(self, params, loss: float) -> float:
        """One all-reduce of every gradient and the loss in one flat buffer, as DDP's reducer
        would do with a single bucket; a rank whose share of the batch was empty adds zeros."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads] + [torch.tensor([loss], device=grads[0].device)])
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads):
            p.grad = flat[offset : offset + g.numel()].view_as(g).to(g.dtype)
            offset += g.numel()
        return flat[-1].item()

    def exchange(self, value: Any) -> list[Any]:
        """Every rank's JSON-able `value`, in rank order, on every rank."""
        data = torch.tensor(list(json.dumps(value).encode()), dtype=torch.uint8, device=self.device)
        sizes = [torch.zeros(1, dtype=torch.int64, device=self.device) for _ in range(self.world)]
        dist.all_gather(sizes, torch.tensor([len(data)], dtype=torch.int64, device=self.device))
        width = max(int(s.item()) for s in sizes)
        parts = [torch.zeros(width, dtype=torch.uint8, device=self.device) for _ in range(self.world)]
        dist.all_gather(parts, torch.cat([data, data.new_zeros(width - len(data))]))
        return [json.loads(bytes(p[: int(s.item())].tolist())) for p, s in zip(parts, sizes)]

    def from_main(self, value: Any) -> Any:
        """Rank 0's `value` on every rank."""
        return self.exchange(value if self.is_main else None)[0]


READS = {
    "get_run": (lambda run: _run_to_json(run), lambda data: _run_from_json(data)),
    "artifact": (lambda row: row, lambda row: row),
    "done_indices": (sorted, set),
    "samples": (lambda rows: rows, lambda rows: rows),
}
WRITES = ("add_samples", "log_metrics", "add_artifact", "set_progress", "add_environment")


class CollectiveStore:
    """The store as ranks see it. A read is collective: rank 0 reads and every rank gets its
    answer, so every rank must make the same reads in the same order, as the same handler code
    does. Writes reach the store from rank 0 only; other ranks' writes are dropped, because what
    they produced was gathered to rank 0, which writes it."""

    def __init__(self, store: RunStore | None, ranks: AccelerateRanks, log: logging.Logger):
        self._store = store
        self._ranks = ranks
        self.log = log

    def _add_samples(self, run_id: int, rows: list[dict], split: str) -> None:
        """Commit gathered rows, and log which (question, sample) pairs each commit held, so
        that a run's log shows every question committed exactly once across its attempts."""
        self._store.add_samples(run_id, rows, split=split)
        if rows:
            self.log.info("committed %s", json.dumps([[r["step"], r["idx"], r.get("sample", 0)] for r in rows]))

    def __getattr__(self, name: str):
        if name in READS:
            encode, decode = READS[name]

            def read(*args, **kwargs):
                answer = encode(getattr(self._store, name)(*args, **kwargs)) if self._ranks.is_main else None
                return decode(self._ranks.from_main(answer))

            return read
        if name == "add_samples" and self._ranks.is_main:
            return self._add_samples
        if name in WRITES:
            return getattr(self._store, name) if self._ranks.is_main else (lambda *args, **kwargs: None)
        raise AttributeError(f"ranks do not use the store's {name}")


@dataclass
class RankContext(RunContext):
    """A run context on one rank: the run folder comes from rank 0 (a shared filesystem path),
    models load onto this rank's device."""

    folder: Path | None = None

    @property
    def run_dir(self) -> Path:
        return self.folder


def rank_main(run_id: int | None, db: str | None, owner_text: str | None, resume: bool, cpu: bool) -> int:
    """Run this rank of a launched run; rank 0 writes the outcome for the owner. Exit code 1 only
    for a crash (so torch elastic reports it) or a refused start."""
    from accelerate import PartialState

    if "LOCAL_WORLD_SIZE" not in os.environ:  # set by torch elastic on every rank it starts
        print(
            "error: `python -m engine rank` is what a multi-process launch runs on each rank; start the run "
            "with `python -m engine <kind> --processes N` (or `join` on another machine).",
            file=sys.stderr,
        )
        return 2
    state = PartialState(cpu=cpu)
    torch.set_num_threads(threads_per_rank(int(os.environ["LOCAL_WORLD_SIZE"])))
    owner = _parse_owner(owner_text)
    ranks = AccelerateRanks(state, owner)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, ranks.request_stop)
    store = RunStore(db) if ranks.is_main else None
    header = ranks.from_main(_header(store, run_id, owner, resume) if ranks.is_main else None)
    if "error" in header:
        if ranks.is_main:
            print(f"error: {header['error']}", file=sys.stderr)
        return 1
    run = _run_from_json(header["run"])
    folder = Path(header["folder"])
    log, handler = _rank_log(run, folder, ranks)
    shared = CollectiveStore(store, ranks, log)
    tracker = Tracker(shared, run.id)
    console = Console(stderr=True, quiet=not ranks.is_main)
    ctx = RankContext(shared, run, tracker, console, log, resuming=header["resume"], ranks=ranks, folder=folder)
    log.info("rank %d of %d on %s (%d torch threads)", ranks.rank, ranks.world, ranks.device, torch.get_num_threads())
    # What the app's run page shows beside each rank's throughput (machines may differ in cores).
    threads = ranks.per_rank(torch.get_num_threads())
    tracker.log(0, **{per_rank_name(THREADS, r): count for r, count in enumerate(threads)})
    status, error, crashed = "completed", None, False
    try:
        _handler(run.kind)(ctx)
    except (RunCancelled, KeyboardInterrupt):
        status = "cancelled"
    except ReasonlabError as exc:
        status, error = "failed", str(exc)
    except Exception as exc:
        status, crashed = "failed", True
        error = f"Internal error on rank {ranks.rank}: {type(exc).__name__}: {exc}".splitlines()[0]
        log.error("failed:\n%s", traceback.format_exc())
    tracker.flush()
    log.info("rank %d: %s%s", ranks.rank, status, f" ({error})" if error else "")
    if ranks.is_main:
        write_outcome(folder, status, error, _plain(ctx.results))
    log.removeHandler(handler)
    handler.close()
    # A cancel or a one-line error reaches the owner in the outcome; only a crash makes the
    # launcher print its failure report.
    return 1 if crashed else 0


def _header(store: RunStore, run_id: int | None, owner: Owner | None, resume: bool) -> dict[str, Any]:
    """What rank 0 tells every rank before the work: the run, its folder, whether it resumes.
    A run not claimed by the owner that launched these ranks is refused."""
    try:
        if run_id is None:
            raise ReasonlabError("rank 0 must be started by its run's owner (`python -m engine start RUN`).")
        run = store.get_run(run_id)
        if run.status != "running" or owner is None or run.owner != owner:
            raise ReasonlabError(
                f"Run {run_id} is {run.status} and not claimed by the process that launched these ranks; "
                f"start it with `python -m engine start {run_id}`."
            )
        return {"run": _run_to_json(run), "folder": str(store.run_folder(run)), "resume": resume}
    except ReasonlabError as exc:
        return {"error": str(exc)}


def _rank_log(run: Run, folder: Path, ranks: AccelerateRanks) -> tuple[logging.Logger, logging.Handler]:
    """Rank 0 logs to the run's log; the other ranks to their stderr (the launcher's output)."""
    if ranks.is_main:
        return _open_log(run, folder)
    log = logging.getLogger(f"reasonlab.run.{run.id}.rank{ranks.rank}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s rank {ranks.rank} %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    return log, handler


def _parse_owner(text: str | None) -> Owner | None:
    if not text:
        return None
    pid, started = text.split(":", 1)
    return Owner(int(pid), float(started))


def _run_to_json(run: Run) -> dict[str, Any]:
    data = {f.name: getattr(run, f.name) for f in fields(run)}
    return data | {"spec": {"kind": run.kind} | run.spec.explicit_values(), "tags": list(run.tags)}


def _run_from_json(data: dict[str, Any]) -> Run:
    return Run(**data | {"spec": RunSpec.from_dict(data["spec"]), "tags": tuple(data["tags"])})


def _plain(results: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in results.items() if isinstance(v, (int, float, str, bool)) or v is None}
