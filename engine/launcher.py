"""`accelerate launch`, as the owner and `engine join` start it (`python -m engine.launcher ARGS`).

The one failure reasonlab explains itself, the machines not all meeting within the run's
`join_timeout`, ends here with exit code `NOT_JOINED` and no output: the process that started the
launcher knows which machines and which command to name (engine/distributed.py). A rank that
exits before the others (it crashed, or was killed) ends the launch with one line naming it.
torch elastic itself would end either with a traceback (and, for the first, C++ stack frames).
"""

from __future__ import annotations

import logging
import os
import sys

NOT_JOINED = 75
"""Exit code (EX_TEMPFAIL): the rendezvous timed out, some machine did not join."""
QUIET_CPP_LOG = "TORCH_CPP_LOG_LEVEL"


def main(argv: list[str]) -> int:
    # Set before torch loads, so that c10d's retry warnings do not print; the ranks are started
    # with the environment as it was given.
    given = os.environ.get(QUIET_CPP_LOG)
    os.environ[QUIET_CPP_LOG] = "FATAL"
    import torch.distributed as dist
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    _restore(given)
    # Its per-worker log lines would repeat what the one line below says.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    args = launch_command_parser().parse_args(argv)
    try:
        launch_command(args)
    except (dist.DistStoreError, dist.DistNetworkError) as exc:
        if not is_join_timeout(exc):
            raise
        return NOT_JOINED
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        print(f"rank {rank} {_exit_text(failure.exitcode)}; the launcher stopped the other ranks", file=sys.stderr)
        return 1
    return 0


def _exit_text(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


def is_join_timeout(exc: Exception) -> bool:
    """The master's store gave up waiting for the other machines' agents, or another machine's
    agent gave up reaching it."""
    return "timed out" in str(exc).lower()


def _restore(given: str | None) -> None:
    if given is None:
        os.environ.pop(QUIET_CPP_LOG, None)
    else:
        os.environ[QUIET_CPP_LOG] = given


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
