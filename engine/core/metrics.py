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
SHIFTED_ACCURACY = "shifted_accuracy"
SHIFTED_ANSWER_RATE = "shifted_answer_rate"
STEPS_ACCURACY = "steps_accuracy"
SHIFTED_STEPS_ACCURACY = "shifted_steps_accuracy"
SELECTION_ACCURACY = "selection_accuracy"
SELECTION_ANSWER_RATE = "selection_answer_rate"
SELECTION_STEPS_ACCURACY = "selection_steps_accuracy"
MODEL_RUN = "model_run"
SAMPLES_PER_S = "samples_per_s"
TOKENS_PER_S = "tokens_per_s"
QUESTIONS_DONE = "questions_done"
SUCCESS_RATE = "success_rate"
CORRECT_RATE = "correct_rate"
RFT_ROWS = "rft_rows"
TRAIN_EXAMPLES = "train_examples"
ADAPTER_MB = "adapter_mb"
PARAMETERS = "parameters"
REWARD_MEAN = "reward_mean"
REWARD_STD = "reward_std"
FRAC_REWARD_ZERO_STD = "frac_reward_zero_std"
COMPLETION_LENGTH_MEAN = "completion_length_mean"
COMPLETION_LENGTH_MAX = "completion_length_max"
TRUNCATED_RATIO = "truncated_ratio"
TRAINED_FRACTION = "trained_fraction"
CLIP_RATIO = "clip_ratio"
KL = "kl"
ENTROPY = "entropy"
STEP_TIME = "step_time"
THREADS = "threads"

TITLES = {
    LOSS: "Loss",
    LR: "Learning rate",
    ACCURACY: "Accuracy",
    ANSWER_RATE: "Answer rate",
    SHIFTED_ACCURACY: "Accuracy on shifted",
    SHIFTED_ANSWER_RATE: "Answer rate on shifted",
    STEPS_ACCURACY: "Accuracy, every step exact",
    SHIFTED_STEPS_ACCURACY: "Accuracy on shifted, every step exact",
    SELECTION_ACCURACY: "Accuracy on selection",
    SELECTION_ANSWER_RATE: "Answer rate on selection",
    SELECTION_STEPS_ACCURACY: "Accuracy on selection, every step exact",
    MODEL_RUN: "Stage run chosen as the pipeline's model",
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
    REWARD_MEAN: "Reward (mean)",
    REWARD_STD: "Reward std within groups",
    FRAC_REWARD_ZERO_STD: "Groups with equal rewards",
    COMPLETION_LENGTH_MEAN: "Completion length (mean)",
    COMPLETION_LENGTH_MAX: "Completion length (max)",
    TRUNCATED_RATIO: "Truncated completions",
    TRAINED_FRACTION: "Completions trained on",
    CLIP_RATIO: "Clipped tokens",
    KL: "KL to the reference",
    ENTROPY: "Entropy",
    STEP_TIME: "Step time (s)",
    THREADS: "Torch threads",
}
"""Every metric a run may log, in the order the app lists them."""

CHARTS_BY_KIND: dict[str, tuple[str, ...]] = {
    "eval": (ACCURACY, ANSWER_RATE, TOKENS_PER_S),
    "rollout": (SUCCESS_RATE, CORRECT_RATE, TOKENS_PER_S),
    "sft": (LOSS, LR, ACCURACY, SHIFTED_ACCURACY),
    "rft": (LOSS, LR, ACCURACY, SHIFTED_ACCURACY),
    "pipeline": (LOSS, LR, ACCURACY, SHIFTED_ACCURACY),
    "grpo": (REWARD_MEAN, ACCURACY, SHIFTED_ACCURACY, KL, CLIP_RATIO, COMPLETION_LENGTH_MEAN),
}
"""The metrics charted on a run's page, by kind."""


HIGHER_IS_BETTER = frozenset({ACCURACY, ANSWER_RATE, SHIFTED_ACCURACY, SHIFTED_ANSWER_RATE, STEPS_ACCURACY, SHIFTED_STEPS_ACCURACY, SELECTION_ACCURACY, SELECTION_ANSWER_RATE, SELECTION_STEPS_ACCURACY, SAMPLES_PER_S, TOKENS_PER_S, SUCCESS_RATE, CORRECT_RATE, REWARD_MEAN})
LOWER_IS_BETTER = frozenset({LOSS, GRAD_NORM})
"""Which way a metric improves; the others (learning rate, counts, sizes) have no best value."""


RANK = "rank"
"""The category of a run's per-rank series (runs on several processes or machines):
`tokens_per_s/rank=1` is rank 1's own generation speed, `samples_per_s/rank=1` its own share of
the training batches per second, `threads/rank=1` the torch threads it computes with."""


RANK_RATE_UNITS = {TOKENS_PER_S: "tok/s", SAMPLES_PER_S: "samples/s"}
"""The throughputs logged per rank (rollouts: generation; sft, rft: training), with the unit the
app shows them in."""


def per_rank_name(name: str, rank: int) -> str:
    return f"{name}/{RANK}={rank}"


def rank_of(name: str) -> tuple[str, int] | None:
    """(base metric, rank) of a per-rank series name; None for any other name."""
    base, _, category = name.partition("/")
    key, _, value = category.partition("=")
    return (base, int(value)) if key == RANK and value.isdigit() else None


def base_name(name: str) -> str:
    """The declared metric a name belongs to: `accuracy/family=length` -> `accuracy`."""
    return name.split("/", 1)[0]


def category(name: str) -> tuple[str, str] | None:
    """The (category, value) a breakdown is about: `accuracy/family=length` -> ('family',
    'length'); None for a metric over all questions."""
    _, _, breakdown = name.partition("/")
    if not breakdown:
        return None
    group, _, value = breakdown.partition("=")
    return group, value


def is_declared(name: str) -> bool:
    return base_name(name) in TITLES


def title(name: str) -> str:
    base, _, category = name.partition("/")
    text = TITLES.get(base, base.replace("_", " ").capitalize())
    return f"{text} ({category})" if category else text
