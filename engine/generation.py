"""Batched generation with a KV cache that drops finished rows.

Prompts are sorted by length and cut into micro-batches (less padding, bounded memory), padded
on the left, and decoded step by step. A row stops at EOS or at the stop string; it then leaves
the batch and its slice of the cache, so the rest of the batch stops paying for it, where
`model.generate` keeps computing finished rows.

Prompts in one format share a long start (the cot prompt's instructions and worked examples are
~200 of its ~215 tokens). On a CPU prefill dominates, so that shared start runs once per batch and
its KV cache is repeated across rows; only each prompt's own end is computed per row (padding sits
between the shared start and each end, masked). Copies of one prompt (a rollout's k samples of
a question) prefill once and copy their cache. Prefill projects only the last position onto the
vocabulary (`logits_to_keep=1`): the output layer is a fifth of the model's weights, and logits
for every prompt position (batch x ~215 x 49152 floats) would be thrown away.
Sequential generation is batch size 1 of the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import DynamicCache

STOP = "</answer>"
MIN_SHARED_PREFIX = 16  # a shorter common start is not worth its own forward pass
_STOP_WINDOW = 8  # tokens decoded to look for the stop string; it is 3 tokens long


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


@dataclass
class Completion:
    text: str
    tokens: int


def generate(
    model,
    tokenizer,
    prompts: list[str],
    sampling: Sampling,
    *,
    num_return_sequences: int = 1,
    batch_size: int = 16,
    stop: str | None = STOP,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[Completion]]:
    """Continue each prompt `num_return_sequences` times; returns completions per prompt.

    `on_batch(n)` is called after each micro-batch with the number of sequences it finished.
    """
    jobs = [(i, p) for i, p in enumerate(prompts) for _ in range(num_return_sequences)]
    lengths = [len(ids) for ids in tokenizer([p for _, p in jobs], add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(jobs)), key=lambda j: -lengths[j])
    results: list[list[Completion]] = [[] for _ in prompts]
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        generator = torch.Generator(device=device).manual_seed(sampling.seed + start)
        completions = _generate_batch(
            model, tokenizer, [jobs[j][1] for j in chunk], sampling, stop, generator, device
        )
        for j, completion in zip(chunk, completions):
            results[jobs[j][0]].append(completion)
        if on_batch:
            on_batch(len(chunk))
    return results


def common_prefix_length(sequences: list[list[int]]) -> int:
    """How many leading tokens all sequences share."""
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for seq in sequences[1:]:
        n = next((i for i in range(n) if seq[i] != first[i]), n)
    return n


@torch.inference_mode()
def _generate_batch(model, tokenizer, prompts, sampling, stop, generator, device) -> list[Completion]:
    # Copies of one prompt (a rollout's k samples of a question) share their prefill: it runs once
    # per distinct prompt, then its cache and logits are copied to every copy.
    slots: dict[tuple[int, ...], int] = {}
    copy_of = [slots.setdefault(tuple(x), len(slots)) for x in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    ids = [list(prompt) for prompt in slots]
    # Every row keeps at least one token of its own, whose logits start the generation.
    shared = min(common_prefix_length(ids), min(len(x) for x in ids) - 1)
    shared = shared if shared >= MIN_SHARED_PREFIX else 0
    cache = DynamicCache()
    if shared:
        model(input_ids=torch.tensor([ids[0][:shared]], device=device), cache=cache, use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(len(ids))
    width = max(len(x) for x in ids) - shared
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(x) + shared) + x[shared:] for x in ids], device=device)
    own = torch.tensor([[0] * (width - len(x) + shared) + [1] * (len(x) - shared) for x in ids], device=device)
    attention = torch.cat([own.new_ones((len(ids), shared)), own], dim=1)
    positions = shared + (own.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=input_ids, attention_mask=attention, position_ids=positions, cache=cache, use_cache=True,
        logits_to_keep=1,
    ).logits[:, -1, :]
    if len(ids) < len(prompts):
        copies = torch.tensor(copy_of, device=device)
        cache.batch_select_indices(copies)
        logits, attention, positions = logits[copies], attention[copies], positions[copies]
    eos_ids = _eos_ids(model, tokenizer)
    rows = torch.arange(len(prompts), device=device)  # original row of each live batch entry
    generated: list[list[int]] = [[] for _ in prompts]
    for step in range(sampling.max_new_tokens):
        next_tokens = _pick(logits, sampling, generator)
        keep = []
        for live, (row, token) in enumerate(zip(rows.tolist(), next_tokens.tolist())):
            if token in eos_ids:
                continue
            generated[row].append(token)
            if stop and stop in tokenizer.decode(generated[row][-_STOP_WINDOW:]):
                continue
            keep.append(live)
        if not keep or step == sampling.max_new_tokens - 1:
            break
        if len(keep) < len(rows):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            rows, attention, positions, next_tokens = rows[index], attention[index], positions[index], next_tokens[index]
        attention = torch.cat([attention, attention.new_ones((len(rows), 1))], dim=1)
        positions = positions[:, -1:] + 1
        logits = model(
            input_ids=next_tokens[:, None], attention_mask=attention, position_ids=positions,
            cache=cache, use_cache=True,
        ).logits[:, -1, :]
    return [_finish(tokenizer, tokens, stop) for tokens in generated]


def _pick(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> torch.Tensor:
    if sampling.temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        sorted_probs, sorted_ids = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > sampling.top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(-1, sorted_ids, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _eos_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id if getattr(model, "generation_config", None) else None
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _finish(tokenizer, tokens: list[int], stop: str | None) -> Completion:
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    if stop and stop in text:
        text = text[: text.index(stop) + len(stop)]
    return Completion(text=text, tokens=len(tokens))
