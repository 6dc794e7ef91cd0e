"""Evaluation: generate answers for a list of examples, parse and score them.

Metric names: 'accuracy' and 'answer_rate' over all questions; 'steps_accuracy', the share
right with every worked step exact, for reasoning whose steps the task can check; and, for a task
with categories, 'accuracy/<category>=<value>' over the questions in each one, e.g.
'accuracy/family=length' or 'accuracy/values=11-99'. Training runs score the held-out splits
other than valid under the split's name as a prefix: 'shifted_accuracy',
'shifted_accuracy/family=mass'.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine.context import refuse_long_prompts
from engine.datasets import row_name, window
from engine.core.metrics import STEPS_ACCURACY
from engine.distributed import SINGLE_PROCESS, Ranks
from engine.generation import Completion, Sampling, generate
from engine.scoring import accuracy_summary
from engine.tasks import get_task
from engine.tasks.base import Example, Task
from engine.tool_generation import generation_for


@dataclass
class EvalResult:
    rows: list[dict] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0

    @property
    def metrics(self) -> dict[str, float]:
        summary = accuracy_summary([r["correct"] for r in self.rows], [r["answer"] for r in self.rows])
        summary["tokens_per_s"] = self.tokens / self.seconds if self.seconds else 0.0
        return summary


def evaluate(
    loaded,
    task: Task,
    examples: list[Example],
    *,
    mode: str,
    sampling: Sampling,
    batch_size: int,
    indices: list[int] | None = None,
    on_rows: Callable[[list[dict]], None] | None = None,
    ranks: Ranks = SINGLE_PROCESS,
) -> EvalResult:
    """Score `examples` greedily or sampled; `on_rows` receives each batch's sample rows as soon
    as they are scored, so a live view sees every batch land. With several ranks each scores its
    share of every batch and the rows of all are gathered (every rank gets them)."""
    indices = indices if indices is not None else list(range(len(examples)))
    result = EvalResult()
    for mine, _ in ranks.rounds(range(len(examples)), batch_size):
        part = [examples[p] for p in mine]
        prompts = [task.prompt(ex.question, mode, loaded.tokenizer) for ex in part]
        began = time.perf_counter()
        completions = generation_for(task, generate)(
            loaded.model, loaded.tokenizer, prompts, sampling, batch_size=batch_size, keys=[indices[p] for p in mine]
        ) if part else []
        result.seconds += time.perf_counter() - began
        rows = [scored_sample(task, mode, indices[p], examples[p], c) for p, (c,) in zip(mine, completions)]
        result.tokens += ranks.total(sum(c.tokens for (c,) in completions))
        rows = ranks.gather(rows)
        result.rows.extend(rows)
        if on_rows:
            on_rows(rows)
    return result


def category_accuracy(task: Task, examples: Sequence[Example], correct: Sequence[bool]) -> dict[str, float]:
    """'accuracy/<category>=<value>' for each category value among `examples` (none for a
    task without categories), so one accuracy becomes e.g. length 0.95, mass 0.41."""
    categorize = getattr(task, "category", None)
    if categorize is None:
        return {}
    seen: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for example, ok in zip(examples, correct, strict=True):
        for name, value in categorize(example).items():
            key = f"accuracy/{name}={value}"
            seen[key] += 1
            right[key] += bool(ok)
    return {key: right[key] / seen[key] for key in sorted(seen)}


def steps_accuracy(task: Task, mode: str, rows: Sequence[dict]) -> dict[str, float]:
    """'steps_accuracy': the share of `rows` whose answer is right and whose every step is exact,
    when the task can check the steps of its cot chains (else nothing). Why beside accuracy: the
    checker allows 5%, and half of a trained model's right answers on shifted rested on a wrong
    step (README, "Checking every step")."""
    exact = getattr(task, "steps_exact", None)
    if exact is None or mode != "cot" or not rows:
        return {}
    return {STEPS_ACCURACY: sum(bool(r["correct"]) and exact(r["output"]) for r in rows) / len(rows)}


def scored_sample(task: Task, mode: str, idx: int, example: Example, completion: Completion, *, sample: int = 0, step: int = 0) -> dict:
    """A samples-table row: the generated text, its parsed answer and whether it is correct."""
    answer = task.parse(completion.text, mode)
    return {
        "step": step, "idx": idx, "sample": sample, "question": example.question, "target": example.answer,
        "output": completion.text, "answer": answer, "correct": task.is_correct(answer, example.answer),
    }


def run_eval(ctx) -> None:
    """The `eval` run kind. Resumable: questions whose samples are stored are not redone."""
    spec = ctx.spec
    task = get_task(spec.task, spec.reasoning)
    examples = window(task.load(spec.dataset), spec.offset, spec.limit, repr(spec.dataset))
    done = ctx.store.done_indices(ctx.run.id)
    todo = [i for i in range(len(examples)) if i not in done]
    loaded = ctx.load_model()
    path = task.dataset_path(spec.dataset)
    refuse_long_prompts(
        loaded, task, [ex.question for ex in examples], spec.mode, spec.max_new_tokens,
        lambda i: row_name(path, spec.offset + i), spec.model,
    )
    sampling = Sampling(spec.max_new_tokens, spec.temperature, spec.top_p, spec.seed)
    with ctx.progress(f"eval {spec.mode}", total=len(examples), completed=len(done)) as bar:

        def store_rows(rows: list[dict]) -> None:
            ctx.store.add_samples(ctx.run.id, rows, split=spec.dataset)
            bar.advance(len(rows))

        result = evaluate(
            loaded, task, [examples[i] for i in todo], mode=spec.mode, sampling=sampling,
            batch_size=spec.batch_size, indices=todo, on_rows=store_rows, ranks=ctx.ranks,
        )
    rows = ctx.store.samples(ctx.run.id)
    correct = [bool(r["correct"]) for r in rows]
    metrics = accuracy_summary(correct, [_nan(r["answer"]) for r in rows])
    metrics |= steps_accuracy(task, spec.mode, rows)
    metrics |= category_accuracy(task, [examples[r["idx"]] for r in rows], correct)
    metrics["tokens_per_s"] = result.metrics["tokens_per_s"]
    ctx.tracker.log(0, **metrics)
    ctx.results.update(metrics, questions=len(rows))


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
