"""LoRA fine-tuning for the `sft` and `rft` run kinds.

Both use one loop; they differ only in their examples and prompt format. SFT trains on direct
answers ("question <answer>" then "6000</answer>"), RFT on the cot prompt followed by reasoning
that ends in the answer tag. The loss covers the completion and EOS, never the prompt.

CPU cost: every cot prompt starts with the same ~200 tokens (system prompt, worked examples).
Each micro-batch runs that shared prefix once, with batch size 1, repeats its KV cache across
the batch and runs only the rest of each example: the same gradients for ~4x fewer tokens.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.checkpoint import ADAPTER, has_checkpoint, load_state, save_adapter, save_checkpoint
from engine.context import refuse_long_prompts, refuse_long_rows
from engine.core.dataset_files import dataset_parts
from engine.core.errors import DataError, ReasonlabError, RunCancelled
from engine.core.ids import is_run_id, parse_run_id
from engine.datasets import row_name, window
from engine.distributed import SINGLE_PROCESS, Ranks
from engine.evaluation import EvalResult, category_accuracy, evaluate, steps_accuracy
from engine.generation import MIN_SHARED_PREFIX, Sampling, common_prefix_length
from engine.core.metrics import SAMPLES_PER_S, per_rank_name
from engine.core.spec import default_max_new_tokens
from engine.tasks import get_task
from engine.tasks.base import Example, Task

MODE = {"sft": "direct", "rft": "cot"}  # the prompt format each kind trains and evaluates in
BUCKET_BATCHES = 8  # batches formed from one length-sorted window, so padding stays small
MAX_GRAD_NORM = 1.0
COURSE_MAX_PARAMETERS = 380_000_000
COURSE_MAX_ADAPTER_MB = 20.0
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def run_sft(ctx) -> None:
    spec = ctx.spec
    task = get_task(spec.task, spec.reasoning)
    path = task.dataset_path(spec.dataset)
    train(ctx, task, training_questions(task, spec.dataset, spec.limit, spec.offset), lambda i: row_name(path, spec.offset + i))


def run_rft(ctx) -> None:
    spec = ctx.spec
    task = get_task(spec.task, spec.reasoning)
    examples, describe = rft_examples(ctx, task)
    rows = window(examples, spec.offset, spec.limit, f"--data {spec.data}")
    train(ctx, task, rows, lambda i: describe(spec.offset + i))


# -- data ---------------------------------------------------------------------------------


def training_questions(task: Task, dataset: str, limit: int, offset: int = 0) -> list[Example]:
    """Training (or rollout) questions: `limit` of them after the first `offset`. The held-out
    splits are refused, they are for scoring only."""
    if held_out := [part for part in dataset_parts(dataset) if part in task.held_out_splits]:
        what = repr(dataset) if held_out == [dataset] else f"{dataset!r} joins {held_out[0]!r}, which"
        raise ReasonlabError(f"dataset: {what} is held out for evaluation; train and roll out on 'train' or a file.")
    examples = window(task.load(dataset), offset, limit, repr(dataset))
    refuse_held_out_questions(task, examples)
    return examples


def rft_examples(ctx, task: Task) -> tuple[list[Example], Callable[[int], str]]:
    """RFT rows from `spec.data` (a rollout run's correct samples or a JSON file), and how
    errors name row i."""
    from engine.rollout import KEPT, correct_examples

    data = ctx.spec.data
    if not data:
        raise ReasonlabError("data: rft needs --data: a rollout run id or a JSON file of [question, answer, reasoning] rows.")
    if not is_run_id(data):
        path = ctx.run_artifact(data, "rft_data", "data")
        return task.load(str(path)), lambda i: row_name(path, i)
    source = ctx.store.get_run(parse_run_id(data, "data"))
    if source.kind != "rollout":
        raise ReasonlabError(f"data: run {source.id} is a {source.kind} run, not a rollout; pass a rollout run id or a JSON file.")
    if source.spec.mode != "cot":
        raise ReasonlabError(f"data: rollout run {source.id} sampled {source.spec.mode} answers; RFT trains on cot reasoning.")
    examples = correct_examples(ctx.store, source)
    if not examples:
        raise ReasonlabError(
            f"data: rollout run {source.id} has no {KEPT[source.spec.reward]}; roll out from a trained adapter "
            "(--adapter), with more samples (--num-samples), or pass a JSON file."
        )
    return examples, lambda i: f"Rollout run {source.id}'s correct sample {i}"


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    prompt_len: int  # tokens before the completion; they get no loss

    @property
    def completion_len(self) -> int:
        return len(self.ids) - self.prompt_len


def encode(tokenizer, task: Task, examples: list[Example], mode: str) -> list[Encoded]:
    """Prompt and completion are tokenized apart, exactly as generation sees them."""
    prompts = tokenizer([task.prompt(ex.question, mode, tokenizer) for ex in examples], add_special_tokens=False)
    completions = tokenizer(
        [task.completion(ex, mode) + tokenizer.eos_token for ex in examples], add_special_tokens=False
    )
    return [Encoded(p + c, len(p)) for p, c in zip(prompts["input_ids"], completions["input_ids"])]


def shared_prefix_length(encoded: list[Encoded]) -> int:
    """Tokens every example starts with, stopping before any example's last prompt token (so
    every loss target lies after the prefix); 0 when too short to be worth sharing."""
    n = min(common_prefix_length([e.ids for e in encoded]), min(e.prompt_len for e in encoded) - 1)
    return n if n >= MIN_SHARED_PREFIX else 0


def training_plan(lengths: list[int], batch_size: int, grad_accum: int, epochs: int, seed: int) -> list[list[list[int]]]:
    """Optimiser steps, each a list of micro-batches of example indices. A pure function of its
    arguments, so a resumed run replays the same order from its step. Batches are cut from
    length-sorted windows of a shuffled epoch (little padding), then shuffled themselves."""
    steps: list[list[list[int]]] = []
    for epoch in range(epochs):
        rng = random.Random(f"{seed}:{epoch}")
        order = list(range(len(lengths)))
        rng.shuffle(order)
        window = batch_size * BUCKET_BATCHES
        batches = []
        for start in range(0, len(order), window):
            part = sorted(order[start : start + window], key=lambda i: lengths[i])
            batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
        rng.shuffle(batches)
        steps += [batches[i : i + grad_accum] for i in range(0, len(batches), grad_accum)]
    return steps


# -- the loop -----------------------------------------------------------------------------


def completion_logits(model, rows: list[Encoded], prefix_len: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits that predict each completion token of `rows`, and those tokens, flattened row
    by row (row b contributes its `completion_len` tokens in order). Rows are right-padded;
    causal attention means real tokens never see the padding, so no attention mask is needed."""
    device = next(model.parameters()).device
    width = max(len(r.ids) for r in rows) - prefix_len
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    scored = torch.zeros((len(rows), width), dtype=torch.bool)  # positions holding a target token
    for b, r in enumerate(rows):
        ids[b, : len(r.ids) - prefix_len] = torch.tensor(r.ids[prefix_len:])
        scored[b, r.prompt_len - prefix_len : len(r.ids) - prefix_len] = True
    ids, scored = ids.to(device), scored.to(device)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cache = None
    with lora_products_in_base_dtype(base):
        if prefix_len:
            from transformers import DynamicCache

            cache = DynamicCache()
            prefix = torch.tensor([rows[0].ids[:prefix_len]], device=device)
            base.get_decoder()(input_ids=prefix, cache=cache, use_cache=True)
            cache.batch_repeat_interleave(len(rows))
        hidden = base.get_decoder()(input_ids=ids, cache=cache, use_cache=cache is not None).last_hidden_state
        # The hidden state at position t predicts token t + 1: project only where that is a target.
        logits = base.get_output_embeddings()(hidden[:, :-1][scored[:, 1:]])
    return logits.float(), ids[:, 1:][scored[:, 1:]]


@contextlib.contextmanager
def lora_products_in_base_dtype(base):
    """On a bf16 base (which holds peft's LoRA layers in place of its linear ones) the LoRA layers
    multiply in bf16 too (autocast), while their weights, gradients and AdamW state stay fp32.
    Left to itself peft casts each LoRA layer's input to its fp32 weights' dtype, and backward
    keeps those fp32 copies: a quarter of a cot step's saved tensors, and a slower step
    (bench/bf16_training.py measures both). An fp32 base runs as is."""
    base_dtype = base.get_input_embeddings().weight.dtype
    if base_dtype == torch.float32:
        yield
        return
    from peft.helpers import disable_input_dtype_casting

    with torch.autocast(base.device.type, dtype=base_dtype), disable_input_dtype_casting(base):
        yield


def batch_loss(model, rows: list[Encoded], prefix_len: int, pad_id: int) -> torch.Tensor:
    """Summed cross-entropy over the completion tokens of `rows`."""
    logits, targets = completion_logits(model, rows, prefix_len, pad_id)
    return F.cross_entropy(logits, targets, reduction="sum")


def optimizer_step(
    model, params, optimizer, scheduler, encoded, micro_batches, prefix_len, pad_id, ranks: Ranks = SINGLE_PROCESS
) -> tuple[float, float]:
    """One optimiser step over its micro-batches; returns (mean token loss, grad norm). With
    several ranks each takes its share of every micro-batch and the gradients are summed, so the
    step is the one-process step whatever the number of ranks."""
    tokens = sum(encoded[i].completion_len for batch in micro_batches for i in batch)
    total = 0.0
    for batch in micro_batches:
        share = ranks.share(batch)
        if share:
            loss = batch_loss(model, [encoded[i] for i in share], prefix_len, pad_id) / tokens
            loss.backward()
            total += loss.item()
    total = ranks.sum_gradients(params, total)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM).item()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total, grad_norm


def load_trainable(ctx, checkpoint_dir: Path):
    """The model with a trainable LoRA adapter: the checkpoint's when resuming, else the
    spec's starting adapter, else a fresh one."""
    spec = ctx.spec
    if ctx.resuming and has_checkpoint(checkpoint_dir):
        return ctx.load_model(adapter=str(checkpoint_dir / ADAPTER), trainable_adapter=True)
    if spec.adapter:
        return ctx.load_model(trainable_adapter=True)
    loaded = ctx.load_model(adapter="")
    loaded.model = new_adapter(loaded.model, spec)
    # Saved in adapter_config.json, so loading the adapter onto another model is refused.
    loaded.model.peft_config["default"].base_model_name_or_path = spec.model
    return loaded


def new_adapter(model, spec):
    """`model` with a fresh LoRA adapter of the spec's rank and alpha on every linear layer."""
    from peft import LoraConfig, get_peft_model

    from engine.model import quiet_peft_checkpointing_warning

    config = LoraConfig(
        r=spec.lora_rank, lora_alpha=spec.lora_alpha, lora_dropout=0.0,
        target_modules="all-linear", bias="none", task_type="CAUSAL_LM",
    )
    # On a bf16 base (dtype auto on a bf16 CPU or GPU, or bfloat16) the LoRA weights, their
    # gradients and AdamW's state stay fp32 (the products run in bf16: lora_products_in_base_dtype).
    # bench/bf16_training.py compares this with autocast over fp32 weights: both track fp32's
    # loss within bf16's noise; this one holds the base weights once in bf16 instead of recasting
    # them at every forward, and keeps the least for backward.
    with quiet_peft_checkpointing_warning():
        return get_peft_model(model, config, autocast_adapter_dtype=True)


def make_optimizer(spec, params, total_steps: int):
    """AdamW and the spec's learning-rate schedule over `total_steps` optimiser steps."""
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=0.0)
    scheduler = get_scheduler(
        SCHEDULERS[spec.lr_schedule], optimizer,
        num_warmup_steps=round(spec.warmup_ratio * total_steps), num_training_steps=total_steps,
    )
    return optimizer, scheduler


def restore_checkpoint(ctx, checkpoint_dir: Path, optimizer, scheduler) -> int:
    """On resume, load the checkpoint's optimiser and scheduler states; the step to go on from."""
    if not (ctx.resuming and has_checkpoint(checkpoint_dir)):
        return 0
    state = load_state(checkpoint_dir)
    optimizer.load_state_dict(state.optimizer)
    scheduler.load_state_dict(state.scheduler)
    ctx.log.info("resuming from the checkpoint at step %d", state.step)
    return state.step


def checkpoint(ctx, checkpoint_dir: Path, model, optimizer, scheduler, step: int) -> None:
    """Save a resumable checkpoint at `step` (rank 0's job: every rank holds the same state).
    The tracker is flushed first, so every step up to the checkpoint is in the store before a
    resume from it can start after them."""
    if not ctx.ranks.is_main:
        return
    ctx.tracker.flush()
    save_checkpoint(checkpoint_dir, model, optimizer, scheduler, step)
    ctx.add_artifact("checkpoint", checkpoint_dir)


def scored_subset(task: Task, split: str, limit: int) -> list[Example]:
    """The fixed first `limit` questions of a held-out split (all of them for 0), scored while
    and after training."""
    examples = task.load(split)
    return examples[:limit] if limit else examples


def score(ctx, loaded, task: Task, examples: list[Example], mode: str, on_rows=None) -> EvalResult:
    """Greedy answers to `examples`, scored; leaves the model training."""
    loaded.model.eval()
    result = evaluate(
        loaded, task, examples, mode=mode, sampling=Sampling(default_max_new_tokens(mode, ctx.spec.reasoning)),
        batch_size=ctx.spec.batch_size, on_rows=on_rows, ranks=ctx.ranks,
    )
    loaded.model.train()
    return result


def sample_writer(ctx, split: str, step: int) -> Callable[[list[dict]], None]:
    """Stores scored rows as `split`'s samples at training step `step`."""
    return lambda rows: ctx.store.add_samples(ctx.run.id, [r | {"step": step} for r in rows], split=split)


def evaluate_valid(ctx, loaded, task: Task, valid: list[Example], mode: str, step: int) -> dict[str, float]:
    """Accuracy on `valid`, logged at `step` with its samples; returns it with the accuracy by
    category (logged by the caller)."""
    result = score(
        ctx, loaded, task, valid, mode,
        on_rows=sample_writer(ctx, "valid", step),
    )
    metrics = {k: result.metrics[k] for k in ("accuracy", "answer_rate")} | steps_accuracy(task, mode, result.rows)
    ctx.tracker.log(step, **metrics)
    ctx.log.info("step %d: valid %s", step, metrics)
    return metrics | category_accuracy(task, valid, [r["correct"] for r in result.rows])


def evaluate_held_out(ctx, loaded, task: Task, mode: str, step: int, final: bool) -> dict[str, float]:
    """The held-out splits other than valid (shifted; at the run's final step also the selection
    split), on the same subset size, with their samples and their accuracy by category, as
    `<split>_<metric>`. The samples let two runs be compared question by question on shifted too
    (`python -m engine compare`). Selection is scored once, at the end: it only chooses between
    finished models (the pipeline's stages), so a curve of it would cost without telling more."""
    metrics: dict[str, float] = {}
    for split in task.held_out_splits:
        if split == "valid" or (split == task.selection_split and not final):
            continue
        examples = scored_subset(task, split, ctx.spec.eval_limit)
        result = score(ctx, loaded, task, examples, mode, on_rows=sample_writer(ctx, split, step))
        found = {k: result.metrics[k] for k in ("accuracy", "answer_rate")} | steps_accuracy(task, mode, result.rows)
        found |= category_accuracy(task, examples, [r["correct"] for r in result.rows])
        metrics |= {f"{split}_{name}": value for name, value in found.items()}
        ctx.log.info("step %d: %s accuracy %.3f", step, split, found["accuracy"])
    return metrics


def evaluate_splits(ctx, loaded, task: Task, valid: list[Example], mode: str, step: int, final: bool) -> dict[str, float]:
    """The scores a training run reports, every --eval-interval steps and at its end (`final`):
    valid (with its samples) and every other held-out split (shifted, and at the end the
    selection split), with their accuracy by category, all logged at `step`. Why shifted too:
    its curve beside valid's shows, while the run goes, whether it learns to convert or to
    recall the generator (README, "Valid and shifted")."""
    valid_metrics = evaluate_valid(ctx, loaded, task, valid, mode, step)
    held_out = evaluate_held_out(ctx, loaded, task, mode, step, final)
    ctx.tracker.log(step, **{k: v for k, v in (valid_metrics | held_out).items() if "/" in k or k in held_out})
    return valid_metrics | held_out


def train(ctx, task: Task, examples: list[Example], describe: Callable[[int], str]) -> None:
    """Fine-tune on `examples`; `describe(i)` names example i in errors (file and row)."""
    spec, log = ctx.spec, ctx.log
    mode = MODE[spec.kind]
    if not examples:
        raise DataError("No training rows; check --data / --dataset and --limit.")
    refuse_held_out_questions(task, examples)
    checkpoint_dir = ctx.run_dir / "checkpoint"
    torch.manual_seed(spec.seed)  # the fresh adapter's initialisation; a checkpoint restores its own RNG state
    loaded = load_trainable(ctx, checkpoint_dir)
    model, tokenizer = loaded.model, loaded.tokenizer
    encoded = encode(tokenizer, task, examples, mode)
    refuse_long_rows(loaded, [len(e.ids) for e in encoded], describe, spec.model)
    prefix_len = shared_prefix_length(encoded)
    plan = training_plan([len(e.ids) for e in encoded], spec.batch_size, spec.grad_accum, spec.epochs, spec.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(spec, params, len(plan))
    step = restore_checkpoint(ctx, checkpoint_dir, optimizer, scheduler)
    valid = scored_subset(task, "valid", spec.eval_limit)
    valid_path = task.dataset_path("valid")
    refuse_long_prompts(
        loaded, task, [ex.question for ex in valid], mode, default_max_new_tokens(mode, spec.reasoning),
        lambda i: row_name(valid_path, i), spec.model,
    )
    log.info(
        "training %s on %d examples (%s prompts, %d shared prefix tokens): %d steps, %d trainable parameters",
        spec.kind, len(examples), mode, prefix_len, len(plan), sum(p.numel() for p in params),
    )

    def save() -> None:
        checkpoint(ctx, checkpoint_dir, model, optimizer, scheduler, step)

    metrics: dict[str, float] = {}
    evaluated_at = None
    meter = _Meter()
    model.train()
    try:
        with ctx.progress(f"{spec.kind} steps", total=len(plan), completed=step) as bar:
            while step < len(plan):
                ctx.ranks.stop_point()
                began = time.perf_counter()
                loss, grad_norm = optimizer_step(
                    model, params, optimizer, scheduler, encoded, plan[step], prefix_len, tokenizer.pad_token_id,
                    ctx.ranks,
                )
                step += 1
                own = sum(len(ctx.ranks.share(batch)) for batch in plan[step - 1])
                meter.add(loss, sum(map(len, plan[step - 1])), own, time.perf_counter() - began)
                bar.advance()
                if step % spec.log_interval == 0 or step == len(plan):
                    ctx.tracker.log(step, **meter.read(ctx.ranks), lr=scheduler.get_last_lr()[0], grad_norm=grad_norm)
                if spec.eval_interval and step % spec.eval_interval == 0:
                    metrics = evaluate_splits(ctx, loaded, task, valid, mode, step, final=step == len(plan))
                    evaluated_at = step
                if spec.checkpoint_interval and step % spec.checkpoint_interval == 0:
                    save()
            if evaluated_at != step:
                metrics = evaluate_splits(ctx, loaded, task, valid, mode, step, final=True)
        finish_training(ctx, loaded, step, metrics | {"steps": step, "train_examples": len(examples)} | meter.totals())
    except (RunCancelled, KeyboardInterrupt):
        save()
        log.info("stopped at step %d; checkpoint saved", step)
        raise


def finish_training(ctx, loaded, step: int, results: dict[str, float]) -> None:
    """Save the adapter, record its size and the parameter count, warn past the course limits
    (rank 0's job when there are several)."""
    if not ctx.ranks.is_main:
        return
    adapter_dir = ctx.run_dir / "adapter"
    save_adapter(loaded.model, adapter_dir)
    ctx.add_artifact("adapter", adapter_dir)
    size = {
        "adapter_mb": sum(p.stat().st_size for p in adapter_dir.rglob("*") if p.is_file()) / 1e6,
        "parameters": loaded.parameter_count,
    }
    ctx.tracker.log(step, **size, train_examples=results["train_examples"])
    ctx.results.update(results | size)
    if size["parameters"] > COURSE_MAX_PARAMETERS or size["adapter_mb"] > COURSE_MAX_ADAPTER_MB:
        message = (
            f"over the course limits: {size['parameters'] / 1e6:.0f}M parameters (limit 380M), "
            f"adapter {size['adapter_mb']:.1f} MB (limit 20 MB)"
        )
        ctx.log.warning(message)
        ctx.console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)


def refuse_held_out_questions(task: Task, examples: list[Example]) -> None:
    questions = {ex.question for ex in examples}
    for split in task.held_out_splits:
        leaked = len(questions & {ex.question for ex in task.load(split)})
        if leaked:
            raise DataError(
                f"{leaked} of the questions are {split} questions; held-out data "
                f"({', '.join(task.held_out_splits)}) never enters training or rollouts."
            )


class _Meter:
    """Loss and throughput since the last read, and over the whole session."""

    def __init__(self) -> None:
        self.loss = self.steps = self.samples = self.own_samples = self.seconds = 0.0
        self.all_samples = self.all_seconds = 0.0
        self.last_loss = math.nan

    def add(self, loss: float, samples: int, own_samples: int, seconds: float) -> None:
        """One step: its loss, its batch's samples, this rank's share of them, its seconds."""
        self.loss += loss
        self.steps += 1
        self.samples += samples
        self.own_samples += own_samples
        self.seconds += seconds
        self.all_samples += samples
        self.all_seconds += seconds

    def read(self, ranks: Ranks) -> dict[str, float]:
        """The window's metrics; with several ranks also each rank's own samples per second
        (a collective: every rank reads at the same step)."""
        values = {"loss": self.loss / self.steps, SAMPLES_PER_S: self.samples / self.seconds}
        if ranks.world > 1:
            rates = ranks.per_rank(self.own_samples / self.seconds)
            values |= {per_rank_name(SAMPLES_PER_S, r): rate for r, rate in enumerate(rates)}
        self.last_loss = values["loss"]
        self.loss = self.steps = self.samples = self.own_samples = self.seconds = 0.0
        return values

    def totals(self) -> dict[str, float]:
        rate = self.all_samples / self.all_seconds if self.all_seconds else 0.0
        return {"loss": self.last_loss, "samples_per_s": rate}
