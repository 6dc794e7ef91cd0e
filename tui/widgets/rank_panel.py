"""How a run on several processes or machines is spread: its ranks, their threads and each
rank's latest throughput, e.g. `2 ranks × 1 thread · rank 0 41 tok/s · rank 1 39 tok/s`."""

from __future__ import annotations

from textual.widgets import Static

from engine.core.metrics import RANK_RATE_UNITS, THREADS, rank_of
from engine.core.store import Run


def ranks_text(run: Run) -> str | None:
    """The line for `run`, from the latest values in its summary; None for a one-process run."""
    ranks = run.spec.processes * run.spec.machines
    if ranks == 1:
        return None
    by_metric: dict[str, dict[int, float]] = {}
    for name, value in run.summary.items():
        found = rank_of(name)
        if found is not None:
            by_metric.setdefault(found[0], {})[found[1]] = value
    parts = [f"{ranks} ranks" + _threads(sorted(set(by_metric.get(THREADS, {}).values())))]
    for metric, unit in RANK_RATE_UNITS.items():
        for rank, rate in sorted(by_metric.get(metric, {}).items()):
            parts.append(f"rank {rank} {_rate(rate)} {unit}")
    return " · ".join(parts)


def _threads(counts: list[float]) -> str:
    """' × 1 thread', ' × 2–4 threads' where machines differ, '' before the ranks reported."""
    if not counts:
        return ""
    low, high = round(counts[0]), round(counts[-1])
    shown = f"{low}" if low == high else f"{low}–{high}"
    return f" × {shown} thread{'' if high == 1 else 's'}"


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


class RankPanel(Static):
    """Shown on the run page of a run with more than one rank only."""

    DEFAULT_CSS = """
    RankPanel {
        display: none;
        padding: 0 1;
        color: $text-muted;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(markup=False, **kwargs)

    def show(self, run: Run) -> None:
        text = ranks_text(run)
        self.display = text is not None
        if text is not None:
            self.update(text)
