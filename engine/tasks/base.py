"""What a task is: a dataset, prompt formats, an answer parser and a correctness checker.

The engine's loops (evaluation, training, rollouts) only talk to this interface, so another
task plugs in by adding a module and registering it in `engine.tasks.TASKS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from engine.core.errors import SpecError


@dataclass(frozen=True)
class Example:
    question: str
    answer: float
    reasoning: str | None = None


class ChatTokenizer(Protocol):
    def apply_chat_template(self, messages: list[dict[str, str]], **kwargs) -> str: ...


class Task(Protocol):
    name: str
    # Splits that only ever score a model ('valid' first): training, rollouts and worked
    # examples never see their questions. Training runs score valid and the reported ones at
    # every interval, and the selection split (if the task has one) at their end.
    held_out_splits: tuple[str, ...]
    selection_split: str | None

    def dataset_path(self, dataset: str) -> Path:
        """The file behind a dataset setting ('train', 'valid' or a path), for error messages."""

    def load(self, dataset: str) -> list[Example]:
        """'train', a held-out split, named splits joined by '+' or a path to a JSON list of
        [question, answer(, reasoning)]."""

    def prompt(self, question: str, mode: str, tokenizer: ChatTokenizer) -> str:
        """The text the model continues. 'direct': the question then ' <answer>', no chat
        template. 'cot': the chat template with instructions and worked examples."""

    def completion(self, example: Example, mode: str) -> str:
        """The training target that follows `prompt(...)`: '{answer}</answer>' for direct,
        the reasoning (which ends with the answer in tags) for cot."""

    def parse(self, output: str, mode: str) -> float:
        """The answer in a generated continuation, NaN when there is none."""

    def is_correct(self, answer: float, target: float) -> bool: ...

    # Optional: `category(example) -> dict[str, str]`, e.g. {'family': 'length', 'values':
    # '11-99'}; evaluation then reports 'accuracy/family=length' and so on (engine.evaluation).
    # A Protocol cannot mark a method optional, so it is described here and looked up with
    # getattr.

    # Optional: `calculator: bool`, true when the task's cot chains call the calculator
    # (engine.tasks.calculator); generation then evaluates each call (engine.tool_generation).

    # Optional: `reward(example, output) -> float`, what online RL (the grpo kind) maximises for a
    # cot completion. A task without it is rewarded by its checker; see `task_reward`.

    # Optional: `steps_exact(output) -> bool`, whether every worked step of a cot completion is
    # exact; None (or absent) when the reasoning format's steps cannot be checked. The 'steps'
    # reward (engine.core.spec) uses it: a checker with a tolerance passes answers reached by a
    # wrong step.


def task_reward(task: Task, example: Example, output: str, mode: str, reward: str = "answer") -> float:
    """The task's own `reward` when it defines one, else its checker: 1.0 correct, 0.0 not. With
    reward 'steps', 0.0 unless every step of the output is exact as well."""
    exact = step_checker(task, reward)
    if exact is not None and not exact(output):
        return 0.0
    if hasattr(task, "reward"):
        return float(task.reward(example, output))
    return float(task.is_correct(task.parse(output, mode), example.answer))


def step_checker(task: Task, reward: str) -> Callable[[str], bool] | None:
    """What reward 'steps' checks besides the answer: the task's `steps_exact` (a spec error when
    its reasoning format has none); None for reward 'answer', which checks the answer alone."""
    if reward == "answer":
        return None
    check = getattr(task, "steps_exact", None)
    if check is None:
        raise SpecError(
            "reward", f"'steps' needs a reasoning format whose steps task {task.name!r} can check; use --reward answer."
        )
    return check


def answers(task: Task, output: str, mode: str) -> bool:
    """Whether `output` holds an answer the task can parse (what a format reward pays for)."""
    return not math.isnan(task.parse(output, mode))
