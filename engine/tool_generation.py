"""Generation that pauses at each calculator call, appends the result and goes on.

A row stops at `>>` as at `</answer>`; the engine appends ` = <result>` for the call it ends
(engine.tasks.calculator) and the row continues, in a new micro-batch, from its prompt and
everything written so far. Segments share the row's token budget (`max_new_tokens`, counted
over what the model wrote, not what the calculator did); after MAX_CALLS calls a row can only
stop at `</answer>`, so a model that keeps calling cannot loop. Rows that finish leave, as in
`generate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from engine.generation import STOP, Completion, Sampling, generate
from engine.tasks.calculator import CALL_END, calculate
from engine.tasks.base import Task

MAX_CALLS = 4  # the unit task's chains make one


def generation_for(task: Task, plain: Callable[..., list[list[Completion]]]) -> Callable[..., list[list[Completion]]]:
    """What samples the task's completions: `plain` (the caller's `generate`), or the calculator
    loop when the task's chains call the calculator."""
    return generate_with_calculator if getattr(task, "calculator", False) else plain


def generate_with_calculator(
    model,
    tokenizer,
    prompts: list[str],
    sampling: Sampling,
    *,
    num_return_sequences: int = 1,
    batch_size: int = 16,
    keys: list[int] | None = None,
) -> list[list[Completion]]:
    """Like `generate`; each completion's text holds the calculator's results where the model
    called it. Completions carry no token ids: part of their text is not the model's, so they
    cannot be scored as a policy's samples."""
    keys = list(range(len(prompts))) if keys is None else keys
    k = num_return_sequences
    first = generate(
        model, tokenizer, prompts, sampling, num_return_sequences=k, batch_size=batch_size,
        stop=(STOP, CALL_END), keys=keys,
    )
    texts = [[c.text for c in samples] for samples in first]
    used = [[c.tokens for c in samples] for samples in first]
    cut = [[c.truncated for c in samples] for samples in first]
    paused = [(i, j) for i, samples in enumerate(first) for j, c in enumerate(samples) if c.text.endswith(CALL_END)]
    for call in range(1, MAX_CALLS + 1):
        for i, j in paused:  # out of budget at a call: cut short like a row at max_new_tokens
            cut[i][j] = used[i][j] >= sampling.max_new_tokens
        paused = [(i, j) for i, j in paused if not cut[i][j]]
        if not paused:
            break
        for i, j in paused:
            texts[i][j] += calculate(texts[i][j])
        budget = max(sampling.max_new_tokens - used[i][j] for i, j in paused)
        # Each sequence keeps its own sampling stream: keyed by (question, sample), seeded per call.
        more = generate(
            model, tokenizer, [prompts[i] + texts[i][j] for i, j in paused],
            replace(sampling, max_new_tokens=budget, seed=sampling.seed + call), batch_size=batch_size,
            stop=(STOP, CALL_END) if call < MAX_CALLS else STOP, keys=[keys[i] * k + j for i, j in paused],
        )
        still = []
        for (i, j), (c,) in zip(paused, more):
            left = sampling.max_new_tokens - used[i][j]
            text, tokens = (c.text, c.tokens) if c.tokens <= left else (_decoded(tokenizer, c, left), left)
            texts[i][j] += text
            used[i][j] += tokens
            cut[i][j] = c.truncated or c.tokens > left
            if text.endswith(CALL_END) and call < MAX_CALLS:
                still.append((i, j))
        paused = still
    return [
        [Completion(text=t, tokens=n, truncated=c) for t, n, c in zip(row_texts, row_used, row_cut)]
        for row_texts, row_used, row_cut in zip(texts, used, cut)
    ]


def _decoded(tokenizer, completion: Completion, tokens: int) -> str:
    """The first `tokens` tokens of a completion that ran past its row's share of the budget."""
    return tokenizer.decode(list(completion.ids[:tokens]), skip_special_tokens=True)
