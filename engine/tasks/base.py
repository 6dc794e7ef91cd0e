"""What a task is: a dataset, prompt formats, an answer parser and a correctness checker.

The engine's loops (evaluation, training, rollouts) only talk to this interface, so another
task plugs in by adding a module and registering it in `engine.tasks.TASKS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Example:
    question: str
    answer: float
    reasoning: str | None = None


class ChatTokenizer(Protocol):
    def apply_chat_template(self, messages: list[dict[str, str]], **kwargs) -> str: ...


class Task(Protocol):
    name: str

    def dataset_path(self, dataset: str) -> Path:
        """The file behind a dataset setting ('train', 'valid' or a path), for error messages."""

    def load(self, dataset: str) -> list[Example]:
        """'train', 'valid' or a path to a JSON list of [question, answer(, reasoning)]."""

    def prompt(self, question: str, mode: str, tokenizer: ChatTokenizer) -> str:
        """The text the model continues. 'direct': the question then ' <answer>', no chat
        template. 'cot': the chat template with instructions and worked examples."""

    def completion(self, example: Example, mode: str) -> str:
        """The training target that follows `prompt(...)`: '{answer}</answer>' for direct,
        the reasoning (which ends with the answer in tags) for cot."""

    def parse(self, output: str, mode: str) -> float:
        """The answer in a generated continuation, NaN when there is none."""

    def is_correct(self, answer: float, target: float) -> bool: ...
