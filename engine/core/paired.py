"""Two runs compared question by question on each split both scored: the questions one got
right and the other wrong, and whether that difference could be chance (exact McNemar test).

Why paired: two runs scored on the same 200 questions differ by a few points of accuracy from
noise alone, while most questions come out the same for both. Counting only the questions on
which they disagree (gained, lost) tests the difference far more sharply than two accuracies
side by side; every comparison in the README rests on these counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from math import comb
from typing import Any

from engine.core.dataset_files import HELD_OUT_SPLITS
from engine.core.store import Run, RunStore

NUMERICS = "numerics"
"""The run environment's record of the device, dtype and threads it scored with (engine.model.numerics)."""

Key = tuple[str, str]
"""(split, question text): a question as two runs both see it."""


@dataclass(frozen=True)
class PairedSplit:
    """One split's questions that both runs scored in their final evaluations."""

    split: str
    questions: int
    right_a: int
    right_b: int
    gained: int
    """Right in b, wrong in a."""
    lost: int
    """Right in a, wrong in b."""

    @property
    def p_value(self) -> float:
        return mcnemar_p(self.gained, self.lost)

    def as_json(self) -> dict[str, Any]:
        return {
            "split": self.split, "questions": self.questions,
            "accuracy_a": self.right_a / self.questions, "accuracy_b": self.right_b / self.questions,
            "gained": self.gained, "lost": self.lost, "p_value": self.p_value,
        }


def mcnemar_p(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value: under no difference, each disagreeing question is a fair
    coin between gained and lost."""
    n, k = gained + lost, min(gained, lost)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, j) for j in range(k + 1)) / 2**n)


@dataclass(frozen=True)
class Outcome:
    """How a run did on one question: `correct` of `samples` generations were right."""

    correct: int
    samples: int

    @property
    def right(self) -> bool:
        """What a paired test counts: more than half the samples correct (the one sample of
        greedy scoring, or a majority of several)."""
        return 2 * self.correct > self.samples

    @property
    def symbol(self) -> str:
        if self.correct == self.samples:
            return "✓"
        if self.correct == 0:
            return "✗"
        return f"{self.correct}/{self.samples}"


def outcomes(samples: Iterable[Mapping[str, Any]]) -> dict[Key, Outcome]:
    """Per (split, question), how many of its samples were correct."""
    counts: dict[Key, list[int]] = {}
    for row in samples:
        c = counts.setdefault((row["split"], row["question"]), [0, 0])
        c[0] += int(bool(row["correct"]))
        c[1] += 1
    return {key: Outcome(correct, total) for key, (correct, total) in counts.items()}


def paired_splits(a: Mapping[Key, Outcome], b: Mapping[Key, Outcome]) -> list[PairedSplit]:
    """Per split (valid, shifted, then any other by name), the questions both scored; splits
    with none in common are left out."""
    splits: dict[str, list[Key]] = {}
    for key in a:
        if key in b:
            splits.setdefault(key[0], []).append(key)
    return [
        PairedSplit(
            split, len(keys), sum(a[k].right for k in keys), sum(b[k].right for k in keys),
            gained=sum(b[k].right and not a[k].right for k in keys),
            lost=sum(a[k].right and not b[k].right for k in keys),
        )
        for split, keys in sorted(splits.items(), key=lambda item: split_order(item[0]))
    ]


def split_order(split: str) -> tuple[int, str]:
    """The held-out splits first, in their own order, then the rest by name."""
    return (HELD_OUT_SPLITS.index(split) if split in HELD_OUT_SPLITS else len(HELD_OUT_SPLITS), split)


def compare_runs(store: RunStore, run_a: int, run_b: int) -> list[PairedSplit]:
    """Two stored runs' final evaluations, paired question by question on each common split."""
    return paired_splits(outcomes(store.final_samples(run_a)), outcomes(store.final_samples(run_b)))


def scoring_conditions(run: Run) -> str:
    """How the run computed its outputs, beyond its weights: 'cpu bfloat16, 2 threads, batch 32'
    ('' when its environment recorded none: runs from before this was kept). Why it matters to a
    paired test: in bf16 these alone change some greedy chains (README, "Scoring numerics")."""
    recorded = run.environment.get(NUMERICS)
    if not isinstance(recorded, dict):
        return ""
    parts = [f"{recorded.get('device')} {recorded.get('dtype')}"]
    if "threads" in recorded:
        parts.append(f"{recorded['threads']} thread{'s' if recorded['threads'] != 1 else ''}")
    if run.spec.batch_size:
        parts.append(f"batch {run.spec.batch_size}")
    return ", ".join(parts)


def numerics_note(a: Run, b: Run) -> str:
    """One line for a paired test whose two runs scored under different conditions ('' when
    they match or either is unknown): some of the questions may differ by numerics alone."""
    first, second = scoring_conditions(a), scoring_conditions(b)
    if not first or not second or first == second:
        return ""
    return (
        f"note: run {a.id} scored with {first}, run {b.id} with {second}; these alone change some "
        "greedy chains (rarely an answer), so a few of the questions gained or lost may be numerics, not the models."
    )
