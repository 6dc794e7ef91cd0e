"""Metric names: the engine writes them, the store keeps them, the app charts them.

Every name a run logs is declared here once, with the title people see. The tracker refuses a
name that is not declared, so the engine cannot write a metric the app does not know.
Per-category breakdowns are logged as `<metric>/<category>=<value>` (e.g.
`accuracy/family=length`) and take the title of their base metric.
"""

from __future__ import annotations

LOSS = "loss"
LR = "lr"
GRAD_NORM = "grad_norm"
ACCURACY = "accuracy"
ANSWER_RATE = "answer_rate"
SAMPLES_PER_S = "samples_per_s"
TOKENS_PER_S = "tokens_per_s"
QUESTIONS_DONE = "questions_done"
SUCCESS_RATE = "success_rate"
CORRECT_RATE = "correct_rate"
RFT_ROWS = "rft_rows"
TRAIN_EXAMPLES = "train_examples"
ADAPTER_MB = "adapter_mb"
PARAMETERS = "parameters"

TITLES = {
    LOSS: "Loss",
    LR: "Learning rate",
    ACCURACY: "Accuracy",
    ANSWER_RATE: "Answer rate",
    GRAD_NORM: "Gradient norm",
    SAMPLES_PER_S: "Samples / s",
    TOKENS_PER_S: "Tokens / s",
    QUESTIONS_DONE: "Questions done",
    SUCCESS_RATE: "Success rate",
    CORRECT_RATE: "Correct rate",
    RFT_ROWS: "RFT rows",
    TRAIN_EXAMPLES: "Training examples",
    ADAPTER_MB: "Adapter size (MB)",
    PARAMETERS: "Parameters",
}
"""Every metric a run may log, in the order the app lists them."""

CHARTS_BY_KIND: dict[str, tuple[str, ...]] = {
    "eval": (ACCURACY, ANSWER_RATE, TOKENS_PER_S),
    "rollout": (SUCCESS_RATE, CORRECT_RATE, TOKENS_PER_S),
    "sft": (LOSS, LR, ACCURACY),
    "rft": (LOSS, LR, ACCURACY),
    "pipeline": (LOSS, LR, ACCURACY),
}
"""The metrics charted on a run's page, by kind."""


HIGHER_IS_BETTER = frozenset({ACCURACY, ANSWER_RATE, SAMPLES_PER_S, TOKENS_PER_S, SUCCESS_RATE, CORRECT_RATE})
LOWER_IS_BETTER = frozenset({LOSS, GRAD_NORM})
"""Which way a metric improves; the others (learning rate, counts, sizes) have no best value."""


def base_name(name: str) -> str:
    """The declared metric a name belongs to: `accuracy/family=length` -> `accuracy`."""
    return name.split("/", 1)[0]


def is_declared(name: str) -> bool:
    return base_name(name) in TITLES


def title(name: str) -> str:
    base, _, category = name.partition("/")
    text = TITLES.get(base, base.replace("_", " ").capitalize())
    return f"{text} ({category})" if category else text
