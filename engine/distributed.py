"""Runs on several processes and machines, through `accelerate launch` (torch elastic underneath):
reasonlab grows no distributed system of its own.

The process that claims a run (`python -m engine start/resume RUN`, from the CLI, the app or a
pipeline) stays its one owner. When the run asks for more than one rank it starts
`accelerate launch ... -m engine rank RUN` and waits: the ranks do the work, rank 0 alone writes
the store, and the owner records the outcome rank 0 reports. Cancel signals the owner, which
forwards SIGTERM to accelerate, which forwards it to every rank; the ranks stop together at their
next step. The launcher is started so that it gets SIGTERM when the owner dies (even by kill -9),
so ranks never outlive their owner: liveness is the owner's, and the ranks follow it.

Other machines join with `python -m engine join`: they only start their share of the ranks, which
learn everything from rank 0 (see engine/rank.py), and never open the SQLite file.

The machines wait for each other at most the run's `join_timeout` (torch elastic's own static
rendezvous timeout); past it the run fails with one line naming the machine and its `join`
command. engine/launcher.py, which wraps `accelerate launch`, turns that timeout into an exit code.

This module stays torch-free: it runs in the owner, which only waits.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engine.core.errors import ReasonlabError, RunCancelled
from engine.launcher import NOT_JOINED

OUTCOME = "ranks_outcome.json"
"""Rank 0 writes how the ranks ended here; the owner reads it and marks the run."""
DEFAULT_PORT = 29500
MAIN_IP_ENV, MAIN_PORT_ENV = "REASONLAB_MAIN_IP", "REASONLAB_MAIN_PORT"
"""Where machine 0's rank 0 listens, for runs on several machines (`start --main-ip/--main-port`
set them); one machine uses 127.0.0.1 and a free port."""
PR_SET_PDEATHSIG = 1


class Ranks:
    """The processes of one run, as its handlers see them. This base is the one-process case:
    every item is this process's, gathering returns what it was given and nothing is exchanged.
    `engine.rank.AccelerateRanks` is the N-process case."""

    rank = 0
    world = 1
    is_main = True

    def rounds(self, items: Sequence[int], per_rank: int) -> Iterator[tuple[list[int], list[int]]]:
        """Cut `items` into rounds of `per_rank` items per rank; yield (this rank's share, the
        whole round). Each round starts at a stop point, so a cancel takes effect between rounds."""
        step = per_rank * self.world
        for start in range(0, len(items), step):
            self.stop_point()
            chunk = list(items[start : start + step])
            yield chunk[self.rank * per_rank : (self.rank + 1) * per_rank], chunk

    def share(self, items: Sequence[int]) -> list[int]:
        """This rank's part of one micro-batch: every world-th item, so lengths stay balanced."""
        return list(items[self.rank :: self.world])

    def gather(self, rows: list[Any]) -> list[Any]:
        """Every rank's rows, in rank order (rank 0 commits them)."""
        return rows

    def total(self, value: float) -> float:
        return value

    def per_rank(self, value: float) -> list[float]:
        """Every rank's `value`, in rank order."""
        return [value]

    def sum_gradients(self, params, loss: float) -> float:
        """Add up the ranks' gradients of `params` and their losses; returns the summed loss."""
        return loss

    def stop_point(self) -> None:
        """Where every rank agrees to stop together (cancel); one process stops at once instead."""


SINGLE_PROCESS = Ranks()


def wants_ranks(spec) -> bool:
    """A pipeline only orchestrates; its stages are launched on their own ranks."""
    return spec.kind != "pipeline" and spec.processes * spec.machines > 1


def run_ranks(ctx) -> None:
    """Run `ctx`'s run on its ranks and wait; raise RunCancelled or a one-line error as rank 0
    reports, so the caller marks the run as for a one-process run."""
    spec = ctx.spec
    outcome = ctx.run_dir / OUTCOME
    outcome.unlink(missing_ok=True)
    owner = ctx.run.owner
    rank_args = ["rank", str(ctx.run.id), "--db", str(ctx.store.path), "--owner", f"{owner.pid}:{owner.started!r}"]
    rank_args += ["--resume"] if ctx.resuming else []
    main_ip = os.environ.get(MAIN_IP_ENV) or "127.0.0.1"
    main_port = _port_from_env() or (free_port() if spec.machines == 1 else DEFAULT_PORT)
    command = accelerate_command(
        spec.processes, spec.machines, 0, main_ip, main_port, uses_cpu(spec.device), spec.join_timeout, rank_args
    )
    ctx.log.info("launching %d ranks on %d machine(s): %s", spec.processes * spec.machines, spec.machines, " ".join(command))
    sys.stdout.flush()
    launcher = subprocess.Popen(command, preexec_fn=_stop_with_parent, stdin=subprocess.DEVNULL)
    code, cancelled = _wait_forwarding_cancel(launcher, ctx.log)
    report = _read_outcome(outcome)
    if report is None and cancelled:
        raise RunCancelled()
    if report is None and code == NOT_JOINED and spec.machines > 1:
        raise ReasonlabError(not_joined(spec, main_ip, main_port))
    if report is None:
        raise ReasonlabError(
            f"The ranks exited with code {code} before reporting an outcome; see {ctx.run_dir / 'log.txt'}."
        )
    ctx.results.update(report.get("results", {}))
    if report["status"] == "cancelled":
        raise RunCancelled()
    if report["status"] != "completed":
        raise ReasonlabError(report.get("error") or f"The ranks failed (exit code {code}).")


def not_joined(spec, main_ip: str, main_port: int) -> str:
    """The run's failure when some machine never joined: which, and the command that joins it."""
    others = spec.machines - 1
    command = (
        f"python -m engine join --machines {spec.machines} --processes {spec.processes} "
        f"--machine-rank {1 if others == 1 else 'R'} --main-ip {main_ip} --main-port {main_port}"
    )
    if others == 1:
        return f"machine 1 of 2 did not join within {spec.join_timeout} s: start `{command}` on it, or lower --machines"
    return (
        f"machines 1 to {others} of {spec.machines} did not all join within {spec.join_timeout} s: start `{command}` "
        f"on each machine R that is not running it, or lower --machines"
    )


def join(
    *, processes: int, machines: int, machine_rank: int, main_ip: str, main_port: int, device: str, join_timeout: int
) -> int:
    """Start this machine's share of a run's ranks (`python -m engine join`). The run itself is
    started on the store's machine; its rank 0 tells these ranks what to run."""
    if not 0 < machine_rank < machines:
        raise ReasonlabError(f"--machine-rank must be between 1 and {machines - 1} (machine 0 starts the run itself).")
    command = accelerate_command(
        processes, machines, machine_rank, main_ip, main_port, uses_cpu(device), join_timeout, ["rank"]
    )
    launcher = subprocess.Popen(command, preexec_fn=_stop_with_parent, stdin=subprocess.DEVNULL)
    code, _ = _wait_forwarding_cancel(launcher, None)
    if code == NOT_JOINED:
        raise ReasonlabError(
            f"the run's machines did not all meet within {join_timeout} s at {main_ip}:{main_port}: start the run on "
            f"machine 0 (`python -m engine start RUN --main-ip {main_ip} --main-port {main_port}`) and join every "
            f"other machine, or check --main-ip and --main-port"
        )
    return code


def accelerate_command(
    processes: int, machines: int, machine_rank: int, main_ip: str, main_port: int, cpu: bool, join_timeout: int,
    rank_args: list[str],
) -> list[str]:
    """`accelerate launch` for `processes` ranks on each of `machines`, through engine.launcher.
    accelerate's `--cpu` starts a single process (its multi-CPU route is mpirun), so every launch
    goes through the torch elastic launcher (`--multi_gpu`); the ranks themselves choose gloo on
    the CPU (`rank --cpu`) or NCCL with one GPU each. The static rendezvous's `timeout` bounds
    how long the machines wait for each other (its TCPStore: machine 0 for the others' agents to
    connect, the others for machine 0 to answer)."""
    command = [
        sys.executable, "-m", "engine.launcher", "--multi_gpu",
        "--num_processes", str(processes * machines), "--num_machines", str(machines),
        "--machine_rank", str(machine_rank), "--main_process_ip", main_ip, "--main_process_port", str(main_port),
        "--rdzv_conf", f"timeout={join_timeout}",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", str(threads_per_rank(processes)),
        "--module", "engine", *rank_args,
    ]
    return command + (["--cpu"] if cpu else [])


def threads_per_rank(processes: int) -> int:
    """Torch threads per rank, so that N ranks on one machine don't oversubscribe its cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // processes)


def uses_cpu(device: str) -> bool:
    if device != "auto":
        return device == "cpu"
    import torch  # only here: whether this machine has a GPU for each rank

    return not torch.cuda.is_available()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_outcome(folder: Path, status: str, error: str | None, results: dict[str, Any]) -> None:
    """Rank 0's report to the owner, written whole by rename."""
    staging = folder / f".{OUTCOME}.tmp"
    staging.write_text(json.dumps({"status": status, "error": error, "results": results}), encoding="utf-8")
    staging.replace(folder / OUTCOME)


def _read_outcome(path: Path) -> dict[str, Any] | None:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and "status" in report else None


def _wait_forwarding_cancel(launcher: subprocess.Popen, log) -> tuple[int, bool]:
    """Wait for accelerate; a cancel (SIGTERM raised as RunCancelled, or Ctrl-C) is passed on
    to it, which passes it to every rank, and the wait goes on until they have saved.
    Returns the launcher's exit code and whether a cancel came."""
    cancelled = False
    while True:
        try:
            code = launcher.wait()
            break
        except (RunCancelled, KeyboardInterrupt):
            if not cancelled and log is not None:
                log.info("cancel: asking every rank to stop")
            cancelled = True
            launcher.send_signal(signal.SIGTERM)
    return code, cancelled


def _stop_with_parent() -> None:
    """In the launcher, before exec: get SIGTERM when the owner dies, so the ranks stop too."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the ranks notice a dead owner at their next stop point


def _port_from_env() -> int | None:
    text = os.environ.get(MAIN_PORT_ENV, "")
    return int(text) if text.isdigit() else None
