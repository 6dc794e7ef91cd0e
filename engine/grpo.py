"""The `grpo` run kind: online RL on the task's reward (GRPO with the Dr.GRPO and DAPO fixes).

Each step takes B train questions, samples G cot completions for each from the current policy
(the engine's own generation: shared prompt prefix, finished rows dropped) and scores them with
the task's reward. A completion's advantage is its reward minus its group's mean (Dr.GRPO;
`scale_rewards=group` also divides by the group's std). The loss, summed over every completion
token i,t kept in the batch and divided by their number N (DAPO's token-level normalisation):

    r = exp(logp - logp_old)                          per-token probability ratio
    L = -1/N * sum min(r * A, clip(r, 1 - eps, 1 + eps_high) * A)
        + beta/N * sum (exp(logp_ref - logp) - (logp_ref - logp) - 1)

logp_old is the policy that sampled the batch (so r = 1 on the first of the mu updates) and
logp_ref the starting policy: the base model (the LoRA adapter disabled) or, with `--adapter`,
the starting adapter, loaded a second time as a frozen peft adapter beside the trained one and
made active for the reference's forward passes. Either way the base weights are held once. Log
probabilities are taken at the sampling temperature, so r compares the distributions sampled.
Groups whose rewards are all equal have zero advantage; `dynamic_filter` leaves them (and
`mask_truncated` the completions cut by max_new_tokens) out of the loss and out of N.

A step is a pure function of its index (questions, sampling seeds), so a run resumed from a
checkpoint samples what the uninterrupted run would have.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from engine.core.errors import DataError, ReasonlabError, RunCancelled
from engine.generation import Completion, Sampling, generate
from engine.model import quiet_peft_checkpointing_warning
from engine.tasks import get_task
from engine.tasks.base import Example, Task, answers, step_checker, task_reward
from engine.training import (
    checkpoint,
    MAX_GRAD_NORM,
    Encoded,
    completion_logits,
    evaluate_splits,
    finish_training,
    load_trainable,
    make_optimizer,
    restore_checkpoint,
    shared_prefix_length,
    training_questions,
    scored_subset,
)

MODE = "cot"  # GRPO reinforces reasoning chains, the format rft trains
REFERENCE = "reference"
"""The peft adapter name of the frozen starting adapter, the KL reference of a run with --adapter."""
STD_EPS = 1e-4  # keeps the division by a group's std finite (TRL's value)
# The loss's forward and backward passes keep every token's activations and its row of logits.
# 32 completions of partial products (about 110 tokens each) in one pass took over 19 GB with the
# 135M model and were killed on a 24 GB machine beside another run, so a pass of the loss holds at
# most this many tokens past the shared prefix (and --batch-size rows); generation keeps the
# full --batch-size, and the gradient, summed over the passes, is the same.
LOSS_PASS_TOKENS = 2048


def run_grpo(ctx) -> None:
    spec, log = ctx.spec, ctx.log
    if spec.temperature <= 0:
        raise ReasonlabError("temperature: GRPO needs sampled groups; at 0 every completion of a group is the same. Use e.g. 1.0.")
    task = get_task(spec.task, spec.reasoning)
    step_checker(task, spec.reward)  # refuse a task that cannot check steps before sampling anything
    questions = training_questions(task, spec.dataset, spec.limit, spec.offset)
    if not questions:
        raise DataError("No training questions; check --dataset and --limit.")
    checkpoint_dir = ctx.run_dir / "checkpoint"
    torch.manual_seed(spec.seed)  # the fresh adapter's initialisation; a checkpoint restores its own RNG state
    loaded = load_trainable(ctx, checkpoint_dir)
    model = loaded.model
    if spec.adapter:
        attach_reference(ctx, loaded)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(spec, params, spec.steps * spec.mu)
    step = restore_checkpoint(ctx, checkpoint_dir, optimizer, scheduler)
    valid = scored_subset(task, "valid", spec.eval_limit)
    # Steps a killed run logged after its last checkpoint: redone identically, not logged twice.
    logged_through = max((s for s, _ in ctx.store.metric_series(ctx.run.id, "reward_mean")), default=0)
    log.info(
        "grpo on %d questions: %d steps of %d questions x %d samples, mu=%d, %d trainable parameters",
        len(questions), spec.steps, spec.questions_per_step, spec.group_size, spec.mu, sum(p.numel() for p in params),
    )

    def save() -> None:
        checkpoint(ctx, checkpoint_dir, model, optimizer, scheduler, step)

    metrics: dict[str, float] = {}
    evaluated_at = None
    window = _Window()
    model.train()
    try:
        with ctx.progress("grpo steps", total=spec.steps, completed=step) as bar:
            while step < spec.steps:
                batch = [questions[i] for i in question_batch(step, len(questions), spec.questions_per_step, spec.seed)]
                window.add(grpo_step(ctx, loaded, task, batch, step, params, optimizer, scheduler))
                step += 1
                bar.advance()
                if step % spec.log_interval == 0 or step == spec.steps:
                    values = window.read()
                    if step > logged_through:
                        ctx.tracker.log(step, **values)
                if spec.eval_interval and step % spec.eval_interval == 0 and step > logged_through:
                    metrics = evaluate_splits(ctx, loaded, task, valid, MODE, step, final=step == spec.steps)
                    evaluated_at = step
                if spec.checkpoint_interval and step % spec.checkpoint_interval == 0:
                    save()
            if evaluated_at != step:
                metrics = evaluate_splits(ctx, loaded, task, valid, MODE, step, final=True)
        results = metrics | window.last | {"steps": step, "train_examples": len(questions)}
        finish_training(ctx, loaded, step, results)
    except (RunCancelled, KeyboardInterrupt):
        save()
        log.info("stopped at step %d; checkpoint saved", step)
        raise


def attach_reference(ctx, loaded) -> None:
    """Load the run's starting adapter (also on resume, when the trained one comes from the
    checkpoint) a second time, frozen, as the KL reference; the trained adapter stays active."""
    path = ctx.run_artifact(ctx.spec.adapter, "adapter", "adapter")
    ctx.log.info("KL reference: the starting adapter %s", path)
    with quiet_peft_checkpointing_warning():
        loaded.model.load_adapter(str(path), adapter_name=REFERENCE, is_trainable=False, torch_device=str(loaded.device))


def question_batch(step: int, n_questions: int, per_step: int, seed: int) -> list[int]:
    """The question indices of `step`: consecutive slices of a stream of shuffled passes over
    the questions. A pure function, so a resumed run takes the same questions."""
    orders: dict[int, list[int]] = {}
    indices = []
    for position in range(step * per_step, (step + 1) * per_step):
        epoch, offset = divmod(position, n_questions)
        if epoch not in orders:
            orders[epoch] = list(range(n_questions))
            random.Random(f"{seed}:{epoch}").shuffle(orders[epoch])
        indices.append(orders[epoch][offset])
    return indices


# -- one step -----------------------------------------------------------------------------


@dataclass
class Sampled:
    """One step's groups: G completions per question, their rewards and advantages."""

    rows: list[Encoded]  # prompt + completion tokens, G consecutive rows per question
    completions: list[Completion]
    rewards: torch.Tensor  # (B, G)
    advantages: torch.Tensor  # (B, G)
    seconds: float


def sample_groups(loaded, task: Task, batch: list[Example], spec, step: int) -> Sampled:
    tokenizer, group = loaded.tokenizer, spec.group_size
    prompts = [task.prompt(ex.question, MODE, tokenizer) for ex in batch]
    # Seeds advance by the step's number of sequences, so no two steps share a sampling stream.
    sampling = Sampling(spec.max_new_tokens, spec.temperature, spec.top_p, spec.seed + step * len(batch) * group)
    loaded.model.eval()
    began = time.perf_counter()
    completions = generate(
        loaded.model, tokenizer, prompts, sampling, num_return_sequences=group, batch_size=spec.batch_size
    )
    seconds = time.perf_counter() - began
    loaded.model.train()
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    rows = [Encoded(list(ids) + list(c.ids), len(ids)) for ids, samples in zip(prompt_ids, completions) for c in samples]
    flat = [c for samples in completions for c in samples]
    rewards = torch.tensor(
        [
            [reward(task, ex, c.text, spec.format_reward, spec.reward) for c in samples]
            for ex, samples in zip(batch, completions)
        ],
        dtype=torch.float32,
    )
    return Sampled(rows, flat, rewards, group_advantages(rewards, spec.scale_rewards == "group"), seconds)


def reward(task: Task, example: Example, output: str, format_weight: float, earned_by: str) -> float:
    """The task's reward (`earned_by` the answer, or its every step too), plus `format_weight`
    when the output holds a parsable answer."""
    bonus = format_weight if format_weight and answers(task, output, MODE) else 0.0
    return task_reward(task, example, output, MODE, earned_by) + bonus


def group_advantages(rewards: torch.Tensor, scale: bool) -> torch.Tensor:
    """Reward minus its group's mean (Dr.GRPO); with `scale`, divided by the group's std."""
    advantages = rewards - rewards.mean(dim=1, keepdim=True)
    if scale:
        advantages = advantages / (rewards.std(dim=1, keepdim=True) + STD_EPS)
    return advantages


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float,
    eps_high: float,
    tokens: int | float,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped token-level policy-gradient loss (module docstring) of padded (rows, T)
    log-probabilities; `advantages` is per row, `mask` 1 on completion tokens, `tokens` the
    batch's N (a micro-batch's share of the loss divides by the whole batch's count).
    Returns the loss and the sums of clipped-token and KL values over the masked tokens."""
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    # Rewards are scored on the CPU; the log-probabilities live where the model does (a GPU).
    adv = advantages.to(logp.device)[:, None]
    per_token = -torch.minimum(ratio * adv, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv)
    with torch.no_grad():
        clipped = ((ratio < 1 - eps_low) & (adv < 0)) | ((ratio > 1 + eps_high) & (adv > 0))
        sums = {"clipped": (clipped * mask).sum().item()}
    if ref_logp is not None:
        kl = torch.exp(ref_logp - logp) - (ref_logp - logp) - 1
        per_token = per_token + beta * kl
        sums["kl"] = (kl.detach() * mask).sum().item()
    return (per_token * mask).sum() / tokens, sums


def grpo_step(ctx, loaded, task: Task, batch: list[Example], step: int, params, optimizer, scheduler) -> dict[str, float]:
    """Sample, score and run mu policy updates; returns this step's metrics."""
    spec = ctx.spec
    began = time.perf_counter()
    sampled = sample_groups(loaded, task, batch, spec, step)
    keep = trained_rows(sampled, spec)
    micro_batches = loss_passes(sampled.rows, keep, spec.batch_size)
    tokens = sum(sampled.rows[i].completion_len for i in keep)
    advantages = sampled.advantages.flatten()
    eps_high = spec.clip_eps_high or spec.clip_eps
    totals = {"loss": 0.0, "clipped": 0.0, "kl": 0.0, "entropy": 0.0}
    # The KL to the reference is logged even when beta = 0 leaves it out of the gradient.
    references = [_reference_logp(loaded, sampled.rows, rows, spec.temperature) for rows in micro_batches]
    olds: list[torch.Tensor] = []
    grad_norm = 0.0
    for update in range(spec.mu):
        for index, rows in enumerate(micro_batches):
            logp, mask, entropy = _policy_logp(loaded, sampled.rows, rows, spec.temperature, with_entropy=update == 0)
            if update == 0:
                olds.append(logp.detach())  # the sampling policy: no update has happened yet
                totals["entropy"] += entropy
            loss, sums = grpo_loss(
                logp, olds[index], advantages[rows], mask, eps_low=spec.clip_eps, eps_high=eps_high, tokens=tokens,
                beta=spec.beta, ref_logp=references[index],
            )
            loss.backward()
            totals["loss"] += loss.item() / spec.mu
            totals["clipped"] += sums["clipped"] / spec.mu
            totals["kl"] += sums["kl"] / spec.mu
        grad_norm = torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM).item() if keep else 0.0
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    generated = sum(c.tokens for c in sampled.completions)
    lengths = [c.tokens for c in sampled.completions]
    group_std = sampled.rewards.std(dim=1)
    values = {
        "reward_mean": sampled.rewards.mean().item(),
        "reward_std": group_std.mean().item(),
        "frac_reward_zero_std": (group_std < 1e-6).float().mean().item(),
        "completion_length_mean": sum(lengths) / len(lengths),
        "completion_length_max": max(lengths),
        "truncated_ratio": sum(c.truncated for c in sampled.completions) / len(lengths),
        "trained_fraction": len(keep) / len(sampled.rows),
        "tokens_per_s": generated / sampled.seconds if sampled.seconds else 0.0,
        "lr": scheduler.get_last_lr()[0],
        "grad_norm": grad_norm,
        "step_time": time.perf_counter() - began,
    }
    if tokens:
        values |= {
            "loss": totals["loss"], "clip_ratio": totals["clipped"] / tokens,
            "kl": totals["kl"] / tokens, "entropy": totals["entropy"] / tokens,
        }
    return values


def trained_rows(sampled: Sampled, spec) -> list[int]:
    """The rows that enter the loss: with `dynamic_filter`, not those of all-equal groups; with
    `mask_truncated`, not completions cut by max_new_tokens; never an empty completion."""
    all_equal = (sampled.rewards == sampled.rewards[:, :1]).all(dim=1).tolist()
    keep = []
    for i, (row, completion) in enumerate(zip(sampled.rows, sampled.completions)):
        if spec.dynamic_filter == "on" and all_equal[i // spec.group_size]:
            continue
        if spec.mask_truncated == "on" and completion.truncated:
            continue
        if row.completion_len:
            keep.append(i)
    return keep


def loss_passes(rows: list[Encoded], keep: list[int], max_rows: int) -> list[list[int]]:
    """`keep` cut, in order, into passes of at most `max_rows` rows whose padded width past the
    rows' shared prefix times their number stays within LOSS_PASS_TOKENS (a longer row alone)."""
    prefix = shared_prefix_length([rows[i] for i in keep]) if keep else 0
    passes: list[list[int]] = []
    width = 0
    for i in keep:
        row_width = len(rows[i].ids) - prefix
        if passes and len(passes[-1]) < max_rows and (len(passes[-1]) + 1) * max(width, row_width) <= LOSS_PASS_TOKENS:
            passes[-1].append(i)
            width = max(width, row_width)
        else:
            passes.append([i])
            width = row_width
    return passes


def _policy_logp(loaded, all_rows: list[Encoded], rows: list[int], temperature: float, *, with_entropy: bool):
    """Padded (rows, T) log-probabilities of the sampled tokens at the sampling temperature, the
    completion mask and, on request, the summed entropy of the policy over those tokens."""
    encoded = [all_rows[i] for i in rows]
    logits, targets = completion_logits(loaded.model, encoded, shared_prefix_length(encoded), loaded.tokenizer.pad_token_id)
    logprobs = torch.log_softmax(logits / temperature, dim=-1)
    entropy = 0.0
    if with_entropy:
        with torch.no_grad():
            entropy = -(logprobs.exp() * logprobs).sum().item()
    taken = logprobs.gather(-1, targets[:, None]).squeeze(-1)
    padded, mask = _pad([e.completion_len for e in encoded], taken)
    return padded, mask, entropy


def _reference_logp(loaded, all_rows: list[Encoded], rows: list[int], temperature: float) -> torch.Tensor:
    """Log-probabilities under the reference policy (module docstring)."""
    with torch.no_grad(), reference_policy(loaded.model):
        return _policy_logp(loaded, all_rows, rows, temperature, with_entropy=False)[0]


@contextmanager
def reference_policy(model) -> Iterator[None]:
    """Make `model` compute the reference policy: the frozen starting adapter where there is
    one, else the base model. The trained adapter is active (and trainable) again after."""
    if REFERENCE not in model.peft_config:
        with model.disable_adapter():
            yield
        return
    trained = model.active_adapter
    model.set_adapter(REFERENCE, inference_mode=True)  # also freezes the trained adapter meanwhile
    try:
        yield
    finally:
        model.set_adapter(trained)


def _pad(lengths: list[int], flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.nn.utils.rnn.pad_sequence(list(flat.split(lengths)), batch_first=True)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones(n, dtype=torch.bool) for n in lengths], batch_first=True)
    return rows, mask.to(rows.device)


class _Window:
    """Step metrics since the last read: means, maxima for the `_max` ones."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.last: dict[str, float] = {}

    def add(self, values: dict[str, float]) -> None:
        self.steps.append(values)

    def read(self) -> dict[str, float]:
        names = {name for values in self.steps for name in values}
        out = {}
        for name in sorted(names):
            seen = [values[name] for values in self.steps if name in values]
            out[name] = max(seen) if name.endswith("_max") else sum(seen) / len(seen)
        out["lr"], out["grad_norm"] = self.steps[-1]["lr"], self.steps[-1]["grad_norm"]
        self.steps, self.last = [], out
        return out
