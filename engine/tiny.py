"""A tiny Llama with the real SmolLM2 tokenizer, trained briefly (400 small steps on one thread)
to reverse digit strings, saved as a local model directory: every code path (the CLI included)
loads it like any model, in well under a second. Tests and benchmarks use it where the model's
quality does not matter.

Why trained: a random model answers every prompt alike, so tests that compare two ways of
generating would compare identical strings. This one is taught to answer "31415=" with "51413"
then EOS; it gets about half of such prompts exactly right, and more matters: its greedy output
depends on every prompt position (left padding, the attention mask, position ids and the
shared-prefix cache all show), on every row's own tokens, and it stops after about as many
tokens as the prompt has digits, so rows stop at different steps. Embeddings and output head
are untied.

Training touches only the rows of the embedding and output head that the task uses (digits, "=",
EOS), through small tables copied in at the end, so a step costs what a 12-token vocabulary
would; the other 49k output rows keep their small random weights, and the loss counts them as
one class with logit log(count) (the value they have at zero logits), so trained answers win
the full-vocabulary argmax.
"""

from __future__ import annotations

import random
from pathlib import Path

from engine.model import DEFAULT_TOKENIZER_SOURCE, load_tokenizer

DIGITS = "0123456789"
SEPARATOR = "="
MAX_DIGITS = 12  # longest digit string trained on; prompts of the tests stay within it
TRAIN_STEPS = 400
TRAIN_BATCH = 32
LEARNING_RATE = 6e-3


def reversal_prompt(digits: str) -> str:
    """The prompt the tiny model answers with `digits` reversed, then EOS."""
    return digits + SEPARATOR


def save_tiny_model(folder: str | Path, seed: int = 0, train_steps: int = TRAIN_STEPS) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(DEFAULT_TOKENIZER_SOURCE)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if train_steps:
        _train_reversal(model, tokenizer, random.Random(seed), train_steps)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _token_id(tokenizer, text: str) -> int:
    (token,) = tokenizer(text, add_special_tokens=False)["input_ids"]
    return token


def _train_reversal(model, tokenizer, rng: random.Random, steps: int) -> None:
    import torch
    import torch.nn.functional as F

    digits = [_token_id(tokenizer, d) for d in DIGITS]
    separator, eos = _token_id(tokenizer, SEPARATOR), tokenizer.eos_token_id
    inputs = torch.tensor(digits + [separator, eos])  # tokens the task feeds in
    outputs = torch.tensor(digits + [eos])  # tokens it answers with
    local_input = torch.full((model.config.vocab_size,), 0, dtype=torch.long)
    local_input[inputs] = torch.arange(len(inputs))
    local_output = torch.full((model.config.vocab_size,), -100, dtype=torch.long)
    local_output[outputs] = torch.arange(len(outputs))
    embed = torch.nn.Parameter(model.get_input_embeddings().weight[inputs].detach().clone())
    head = torch.nn.Parameter(model.get_output_embeddings().weight[outputs].detach().clone())
    others = torch.tensor(float(model.config.vocab_size - len(outputs))).log()
    params = [embed, head, *model.model.layers.parameters(), *model.model.norm.parameters()]
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LEARNING_RATE, total_steps=steps, pct_start=0.1)
    model.train()
    for _ in range(steps):
        ids, targets = _reversal_batch(rng, digits, separator, eos)
        states = model.model(inputs_embeds=F.embedding(local_input[ids], embed)).last_hidden_state
        labels = local_output[targets]
        scored = labels >= 0
        logits = states[scored] @ head.T
        logits = torch.cat([logits, others.expand(len(logits), 1)], dim=1)
        loss = F.cross_entropy(logits, labels[scored])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    model.eval()
    with torch.no_grad():
        model.get_input_embeddings().weight[inputs] = embed
        model.get_output_embeddings().weight[outputs] = head


def _reversal_batch(rng: random.Random, digits: list[int], separator: int, eos: int):
    """Right-padded digit strings, '=', their reverse and EOS; `targets` holds each answer token
    at the position that predicts it and the separator (no answer token) elsewhere."""
    import torch

    rows = []
    for _ in range(TRAIN_BATCH):
        prompt = [rng.choice(digits) for _ in range(rng.randint(1, MAX_DIGITS))]
        rows.append((prompt + [separator], prompt[::-1] + [eos]))
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((len(rows), width), eos, dtype=torch.long)
    targets = torch.full((len(rows), width), separator, dtype=torch.long)  # never an answer: no target
    for b, (prompt, answer) in enumerate(rows):
        sequence = prompt + answer
        ids[b, : len(sequence)] = torch.tensor(sequence)
        # The state at position t predicts token t + 1: answer tokens are predicted from the
        # separator on.
        targets[b, len(prompt) - 1 : len(sequence) - 1] = torch.tensor(answer)
    return ids, targets
