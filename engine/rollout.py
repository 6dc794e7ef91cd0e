"""The `rollout` run kind: sample k reasoning chains per training question and keep the
correct ones as RFT data (with --reward steps, only those whose every step is exact too).

Every sample is stored. Each batch of questions is committed in one transaction, so a run
killed at any moment (even kill -9) loses at most that batch: resuming skips the questions whose
samples are stored, and the store ignores a row it already holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from engine.context import refuse_long_prompts
from engine.core.metrics import TOKENS_PER_S, per_rank_name
from engine.datasets import row_name, save_examples
from engine.evaluation import scored_sample
from engine.generation import Sampling, generate
from engine.tasks import get_task
from engine.tasks.base import Example, step_checker
from engine.tool_generation import generation_for
from engine.training import training_questions

STEP = 0  # rollout samples all live at step 0; idx = question index, sample = j
# What a rollout keeps as RFT rows, by its reward setting (`correct_examples`).
KEPT = {"answer": "correct samples", "steps": "correct samples with every step exact"}


def questions_per_batch(spec) -> int:
    """Questions per generation batch and per commit: as many as fill `batch_size` sequences of
    k samples each, at least one."""
    return max(1, spec.batch_size // spec.num_samples)


def run_rollout(ctx) -> None:
    spec = ctx.spec
    task = get_task(spec.task, spec.reasoning)
    step_checker(task, spec.reward)  # refuse a task that cannot check steps before sampling anything
    questions = training_questions(task, spec.dataset, spec.limit, spec.offset)
    done = ctx.store.done_indices(ctx.run.id, STEP)
    todo = [i for i in range(len(questions)) if i not in done]
    tally = Tally.of(ctx.store.samples(ctx.run.id, step=STEP))
    loaded = ctx.load_model()
    path = task.dataset_path(spec.dataset)
    refuse_long_prompts(
        loaded, task, [ex.question for ex in questions], spec.mode, spec.max_new_tokens,
        lambda i: row_name(path, spec.offset + i), spec.model,
    )
    k = spec.num_samples
    sampling = Sampling(spec.max_new_tokens, spec.temperature, spec.top_p, spec.seed)
    per_batch = questions_per_batch(spec)
    ctx.log.info("rollout: %d questions (%d already done), k=%d, %d questions per batch", len(questions), len(done), k, per_batch)
    with ctx.progress(f"rollout k={k}", total=len(questions), completed=len(done)) as bar:
        # With several ranks, each samples its share of a round and rank 0 commits them all.
        for batch, whole_round in ctx.ranks.rounds(todo, per_batch):
            prompts = [task.prompt(questions[i].question, spec.mode, loaded.tokenizer) for i in batch]
            began = time.perf_counter()
            # Keyed by question index: a resumed run samples what an uninterrupted one would have.
            completions = generation_for(task, generate)(
                loaded.model, loaded.tokenizer, prompts, sampling, num_return_sequences=k,
                batch_size=spec.batch_size, keys=batch,
            ) if batch else []
            seconds = time.perf_counter() - began
            rows = ctx.ranks.gather([
                scored_sample(task, spec.mode, i, questions[i], completion, sample=j, step=STEP)
                for i, samples in zip(batch, completions)
                for j, completion in enumerate(samples)
            ])
            ctx.store.add_samples(ctx.run.id, rows, split=spec.dataset)
            tokens = sum(c.tokens for samples in completions for c in samples)
            tally.add(rows, ctx.ranks.total(tokens), seconds)
            ctx.tracker.log(tally.questions, **tally.metrics())
            if ctx.ranks.world > 1:  # each rank's own generation speed, a per-category series
                rates = ctx.ranks.per_rank(tokens / seconds if seconds else 0.0)
                ctx.tracker.log(tally.questions, **{per_rank_name(TOKENS_PER_S, r): rate for r, rate in enumerate(rates)})
            bar.advance(len(whole_round))
    examples = correct_examples(ctx.store, ctx.run)
    path = ctx.run_dir / "rft.json"
    if ctx.ranks.is_main:
        save_examples(path, examples)
    ctx.add_artifact("rft_data", path)
    ctx.tracker.log(tally.questions, **tally.metrics(), rft_rows=len(examples))
    ctx.results.update(tally.metrics(), rft_rows=len(examples))
    if not examples:
        ctx.log.warning("no %s; RFT cannot use this run", KEPT[spec.reward])
        ctx.console.print(f"[yellow]warning:[/yellow] no {KEPT[spec.reward]}; RFT cannot use this run.", highlight=False)


def correct_examples(store, run) -> list[Example]:
    """A rollout run's correct samples as RFT rows [question, answer, reasoning], in question
    order, without repeating the same text for the same question. With the run's reward
    'steps', only those whose every step is exact: the checker's 5% lets a wrong step through."""
    exact = step_checker(get_task(run.spec.task, run.spec.reasoning), run.spec.reward)
    seen: set[tuple[str, str]] = set()
    examples = []
    for row in store.samples(run.id, step=STEP, correct=True):
        key = (row["question"], row["output"].strip())
        if key not in seen and (exact is None or exact(key[1])):
            seen.add(key)
            examples.append(Example(row["question"], row["target"], row["output"].strip()))
    return examples


@dataclass
class Tally:
    """Rollout metrics over the whole run, a resumed one included."""

    questions: int = 0
    solved: int = 0
    samples: int = 0
    correct: int = 0
    tokens: int = 0
    seconds: float = 0.0

    @classmethod
    def of(cls, rows: list[dict]) -> "Tally":
        tally = cls()
        tally.add(rows, 0, 0.0)
        return tally

    def add(self, rows: list[dict], tokens: int, seconds: float) -> None:
        by_question: dict[int, bool] = {}
        for r in rows:
            by_question[r["idx"]] = by_question.get(r["idx"], False) or bool(r["correct"])
        self.questions += len(by_question)
        self.solved += sum(by_question.values())
        self.samples += len(rows)
        self.correct += sum(bool(r["correct"]) for r in rows)
        self.tokens += tokens
        self.seconds += seconds

    def metrics(self) -> dict[str, float]:
        return {
            "questions_done": self.questions,
            "success_rate": self.solved / self.questions if self.questions else 0.0,
            "correct_rate": self.correct / self.samples if self.samples else 0.0,
            "tokens_per_s": self.tokens / self.seconds if self.seconds else 0.0,
        }
