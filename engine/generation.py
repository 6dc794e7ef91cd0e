"""Batched generation with a KV cache that drops finished rows.

Prompts are sorted by length and cut into micro-batches (less padding, bounded memory), padded
on the left, and decoded step by step. A row stops at EOS or at the stop string; it then leaves
the batch and its slice of the cache, so the rest of the batch stops paying for it, where
`model.generate` keeps computing finished rows.

Prompts in one format share a long start (the cot prompt's instructions and worked examples are
~200 of its ~215 tokens). On a CPU prefill dominates, so that shared start runs once per batch and
its KV cache is repeated across rows; only each prompt's own end is computed per row (padding sits
between the shared start and each end, masked). Sequential generation is batch size 1 of the same code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import DynamicCache

STOP = "</answer>"
MIN_SHARED_PREFIX = 16  # a shorter common start is not worth its own forward pass
_STOP_WINDOW = 8  # tokens decoded to look for a stop string; '</answer>' is 3 tokens long
# Temperatures below this sample as greedy decoding: at 1e-4 a logit gap of 0.01 already makes
# the top token e^100 times likelier than the next, and far smaller ones (1e-300) overflow the
# logits to inf, so softmax gives NaN and sampling fails.
GREEDY_BELOW = 1e-4
NUCLEUS_CANDIDATES = 256  # the likeliest tokens a top-p cut is looked for in before a whole row is sorted


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


@dataclass
class Completion:
    text: str
    tokens: int  # generated tokens, the EOS that ended the row not counted
    ids: tuple[int, ...] = ()  # the sampled tokens, that EOS included: what a policy gradient scores
    truncated: bool = False  # cut by max_new_tokens before EOS or the stop string


def generate(
    model,
    tokenizer,
    prompts: list[str],
    sampling: Sampling,
    *,
    num_return_sequences: int = 1,
    batch_size: int = 16,
    stop: str | tuple[str, ...] | None = STOP,
    on_batch: Callable[[int], None] | None = None,
    keys: list[int] | None = None,
) -> list[list[Completion]]:
    """Continue each prompt `num_return_sequences` times; returns completions per prompt.

    Sampling draws each sequence's randomness from (`sampling.seed`, its prompt's key, its
    sample number), never from its place in a batch: a prompt gets the same samples whatever
    prompts share its batch, so a resumed run samples what an uninterrupted one would have.
    `keys` (default: the prompts' positions) should be the questions' indices in their dataset.
    `on_batch(n)` is called after each micro-batch with the number of sequences it finished.
    `stop`: a string, or several, that ends a row (kept in its text); the first one written counts.
    """
    stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
    keys = list(range(len(prompts))) if keys is None else keys
    if len(keys) != len(prompts):
        raise ValueError(f"{len(keys)} keys for {len(prompts)} prompts")
    jobs = [  # (prompt index, prompt, seed) of each sequence
        (i, p, sequence_seed(sampling.seed, keys[i], j)) for i, p in enumerate(prompts) for j in range(num_return_sequences)
    ]
    lengths = [len(ids) for ids in tokenizer([p for _, p, _ in jobs], add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(jobs)), key=lambda j: -lengths[j])
    results: list[list[Completion]] = [[] for _ in prompts]
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        completions = _generate_batch(
            model, tokenizer, [jobs[j][1] for j in chunk], sampling, stop, [jobs[j][2] for j in chunk], device
        )
        for j, completion in zip(chunk, completions):
            results[jobs[j][0]].append(completion)
        if on_batch:
            on_batch(len(chunk))
    return results


def sequence_seed(seed: int, key: int, sample: int) -> int:
    """One sequence's sampling seed: a hash of the run's seed, its prompt's key and its sample
    number, so neighbouring keys or seeds never share a stream."""
    digest = hashlib.blake2b(f"{seed}:{key}:{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # manual_seed takes a non-negative 63-bit int


def common_prefix_length(sequences: list[list[int]]) -> int:
    """How many leading tokens all sequences share."""
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for seq in sequences[1:]:
        n = next((i for i in range(n) if seq[i] != first[i]), n)
    return n


@torch.inference_mode()
def _generate_batch(model, tokenizer, prompts, sampling, stop, seeds, device) -> list[Completion]:
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    # Every row keeps at least one token of its own, whose logits start the generation.
    shared = min(common_prefix_length(ids), min(len(x) for x in ids) - 1)
    shared = shared if shared >= MIN_SHARED_PREFIX else 0
    cache = DynamicCache()
    if shared:
        model(input_ids=torch.tensor([ids[0][:shared]], device=device), cache=cache, use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(len(prompts))
    width = max(len(x) for x in ids) - shared
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(x) + shared) + x[shared:] for x in ids], device=device)
    own = torch.tensor([[0] * (width - len(x) + shared) + [1] * (len(x) - shared) for x in ids], device=device)
    attention = torch.cat([own.new_ones((len(ids), shared)), own], dim=1)
    positions = shared + (own.cumsum(-1) - 1).clamp(min=0)
    eos_ids = _eos_ids(model, tokenizer)
    rows = torch.arange(len(prompts), device=device)  # original row of each live batch entry
    uniforms = _uniforms(seeds, sampling, device) if sampling.temperature >= GREEDY_BELOW else None
    generated: list[list[int]] = [[] for _ in prompts]
    ended: list[tuple[int, ...] | None] = [None] * len(prompts)  # how each row ended: (EOS,), () at the stop string
    # Only the last position's logits are used: projecting the prompt's other positions onto the
    # vocabulary (the output layer is a fifth of the weights) would be thrown away.
    logits = model(
        input_ids=input_ids, attention_mask=attention, position_ids=positions, cache=cache, use_cache=True,
        logits_to_keep=1,
    ).logits[:, -1, :]
    for step in range(sampling.max_new_tokens):
        next_tokens = _pick(logits, sampling, uniforms[rows, step] if uniforms is not None else None)
        keep = []
        for live, (row, token) in enumerate(zip(rows.tolist(), next_tokens.tolist())):
            if token in eos_ids:
                ended[row] = (token,)
                continue
            generated[row].append(token)
            window = tokenizer.decode(generated[row][-_STOP_WINDOW:]) if stop else ""
            if any(s in window for s in stop):
                ended[row] = ()
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
    return [_finish(tokenizer, tokens, stop, end) for tokens, end in zip(generated, ended)]


def _uniforms(seeds: list[int], sampling: Sampling, device) -> torch.Tensor:
    """Each row's random numbers for all its steps, drawn on the CPU from its own seed (the same
    on every device)."""
    draws = [torch.rand(sampling.max_new_tokens, generator=torch.Generator().manual_seed(s)) for s in seeds]
    return torch.stack(draws).to(device)


def _pick(logits: torch.Tensor, sampling: Sampling, uniforms: torch.Tensor | None) -> torch.Tensor:
    """Greedy, or one draw per row by inverting its (top-p cut) distribution at `uniforms`."""
    if sampling.temperature < GREEDY_BELOW:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        probs = probs * (probs >= _nucleus_floor(probs, sampling.top_p)[:, None])
    cumulative = probs.cumsum(-1)
    # right=True: the first token whose cumulative mass exceeds the draw, never one of mass 0.
    picked = torch.searchsorted(cumulative, (uniforms[:, None] * cumulative[:, -1:]).contiguous(), right=True)
    return picked.squeeze(-1).clamp(max=probs.shape[-1] - 1)


def _nucleus_floor(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Each row's least probability a token may have and stay in its top-p nucleus: the likeliest
    tokens are kept while the mass before them is within top_p, and a token tied with the last
    one kept is kept too, so the cut depends on the probabilities alone, never on how a sort
    orders ties (bf16 logits tie often). The cut is looked for among each row's
    NUCLEUS_CANDIDATES likeliest tokens; only a row whose nucleus may reach past them is sorted
    whole. Sorting every row's whole vocabulary at every step took 125 ms for 30 rows on one CPU
    thread, beside about 300 ms for the decoding step's forward pass (bench/sampling.py)."""
    top = probs.topk(min(NUCLEUS_CANDIDATES, probs.shape[-1]), dim=-1).values
    floor = _floor_of_sorted(top, top_p)
    wide = _mass_before(top)[:, -1] <= top_p  # the last candidate is kept: the nucleus may go further
    if wide.any():
        floor[wide] = _floor_of_sorted(probs[wide].sort(dim=-1, descending=True).values, top_p)
    return floor


def _floor_of_sorted(descending: torch.Tensor, top_p: float) -> torch.Tensor:
    """The last kept probability of each row of probabilities sorted in descending order."""
    kept = (_mass_before(descending) <= top_p).sum(-1)  # a prefix: the mass before only grows
    return descending.gather(-1, (kept - 1)[:, None]).squeeze(-1)


def _mass_before(descending: torch.Tensor) -> torch.Tensor:
    """The mass of the tokens before each one; a cumulative sum shifted by one, so it never
    decreases along the row (cumsum minus the token's own mass can, by rounding)."""
    return torch.nn.functional.pad(descending.cumsum(-1)[:, :-1], (1, 0))


def _eos_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id if getattr(model, "generation_config", None) else None
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _finish(tokenizer, tokens: list[int], stop: tuple[str, ...], end: tuple[int, ...] | None) -> Completion:
    """`end`: the EOS token that ended the row, () for a stop string, None when cut short."""
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    ends = [text.index(s) + len(s) for s in stop if s in text]
    if ends:
        text = text[: min(ends)]
    ids = tuple(tokens) + (end or ())
    return Completion(text=text, tokens=len(tokens), ids=ids, truncated=end is None)
