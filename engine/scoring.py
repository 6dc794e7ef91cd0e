"""Task-independent scoring: read the number in <answer></answer> and check it against a target."""

from __future__ import annotations

import math
import re

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# A decimal number: optional sign, digits with optional comma thousands groups, optional
# fraction, optional exponent. Words such as 'nan' or 'inf' deliberately do not match.
_NUMBER = re.compile(
    r"[+-]?(?:\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
)


def parse_answer(text: str) -> float:
    """The number inside the first <answer>...</answer>, NaN when there is no such tag pair or
    its content (spaces aside) is not a number."""
    match = _ANSWER.search(text)
    if match is None:
        return math.nan
    content = match.group(1).strip()
    if not _NUMBER.fullmatch(content):
        return math.nan
    return float(content.replace(",", ""))


def is_correct(answer: float, target: float) -> bool:
    """Within 5% of the target after rounding both to 3 decimals (the course's rule); a
    target that rounds to 0 can therefore never be matched."""
    if not (math.isfinite(answer) and math.isfinite(target)):
        return False
    a, t = round(answer, 3), round(target, 3)
    return abs(a - t) < 0.05 * abs(t)


def accuracy_summary(correct: list[bool], answers: list[float]) -> dict[str, float]:
    """'accuracy': share of correct answers; 'answer_rate': share that parsed to a finite number."""
    if len(correct) != len(answers):
        raise ValueError(f"{len(correct)} correctness flags for {len(answers)} answers")
    if not correct:
        return {"accuracy": 0.0, "answer_rate": 0.0}
    n = len(correct)
    return {
        "accuracy": sum(map(bool, correct)) / n,
        "answer_rate": sum(math.isfinite(a) for a in answers) / n,
    }
