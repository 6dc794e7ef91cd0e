"""Rows longer than the model's context are refused before any work starts, by row number.

A prompt past the model's position table either fails deep inside attention or, for rotary
models, runs on in a quadratic blow-up (a 200,000-character question took 54 s and 10 GB on the
tiny test model). The dataset loader caps text length without a model; this checks the real
token counts against the loaded model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.core.errors import DataError

# Tokenizers without a stated limit report a huge sentinel (1e30); anything past this is one.
_NO_LIMIT = 10_000_000
# Tokens a question can gain or lose where it joins the prompt's template (merges at the seams).
_SEAM_TOKENS = 8


def context_size(loaded) -> int | None:
    """The most tokens the model reads: its position table or its tokenizer's limit, the smaller."""
    config = getattr(loaded.model, "config", None)
    sizes = (getattr(config, "max_position_embeddings", None), getattr(loaded.tokenizer, "model_max_length", None))
    return min((s for s in sizes if isinstance(s, int) and 0 < s < _NO_LIMIT), default=None)


def refuse_long_prompts(
    loaded, task, questions: Sequence[str], mode: str, room: int, describe: Callable[[int], str], model: str
) -> None:
    """Refuse the first question whose prompt plus `room` generated tokens overflows the context.

    Rendering and tokenizing every prompt costs seconds for thousands of questions, so lengths are
    estimated as the template's tokens plus the question's, and only near misses are measured."""
    limit = context_size(loaded)
    if limit is None or not questions:
        return
    tokenizer = loaded.tokenizer
    template = _token_count(tokenizer, task.prompt("", mode, tokenizer))
    own = tokenizer(list(questions), add_special_tokens=False)["input_ids"]
    for i, ids in enumerate(own):
        if template + len(ids) + room + _SEAM_TOKENS <= limit:
            continue
        length = _token_count(tokenizer, task.prompt(questions[i], mode, tokenizer))
        if length + room > limit:
            raise DataError(
                f"{describe(i)}: the question's prompt is {length:,} tokens and generation adds up to {room}, "
                f"but model {model} reads at most {limit:,}; shorten or remove the row."
            )


def refuse_long_rows(loaded, lengths: Sequence[int], describe: Callable[[int], str], model: str) -> None:
    """Refuse the first training row (prompt and completion, `lengths` in tokens) past the context."""
    limit = context_size(loaded)
    for i, length in enumerate(lengths):
        if limit is not None and length > limit:
            raise DataError(
                f"{describe(i)}: the row is {length:,} tokens with its prompt, but model {model} reads at most "
                f"{limit:,}; shorten or remove the row."
            )


def _token_count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])
