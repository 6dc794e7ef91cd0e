"""Copies of one prompt (a rollout's k samples per question) share one prefill."""

from __future__ import annotations

from engine.generation import Sampling, generate
from engine.model import load_model
from engine.tasks import get_task


def test_copies_of_a_prompt_prefill_once_and_decode_as_if_alone(tiny_model_dir):
    loaded = load_model(tiny_model_dir)
    task = get_task("unit_conversion")
    prompts = [task.prompt(ex.question, "direct", loaded.tokenizer) for ex in task.load("train")[:2]]
    prefill_rows = []
    original = loaded.model.forward

    def recording(*args, **kwargs):
        prefill_rows.append(kwargs["input_ids"].shape)
        return original(*args, **kwargs)

    loaded.model.forward = recording
    copies = generate(loaded.model, loaded.tokenizer, prompts, Sampling(max_new_tokens=8), num_return_sequences=3, batch_size=6)
    loaded.model.forward = original
    assert prefill_rows[0][0] == 2  # two distinct prompts, not six rows
    assert all(shape[0] <= 6 and shape[1] == 1 for shape in prefill_rows[1:])  # then one token per live row
    alone = generate(loaded.model, loaded.tokenizer, prompts, Sampling(max_new_tokens=8), batch_size=1)
    for copies_of_prompt, (single,) in zip(copies, alone):
        assert [c.text for c in copies_of_prompt] == [single.text] * 3


def test_sampled_copies_differ_and_repeat_with_the_seed(tiny_model_dir):
    loaded = load_model(tiny_model_dir)
    task = get_task("unit_conversion")
    prompt = task.prompt(task.load("train")[0].question, "direct", loaded.tokenizer)
    sampling = Sampling(max_new_tokens=8, temperature=1.0, seed=3)
    first = generate(loaded.model, loaded.tokenizer, [prompt], sampling, num_return_sequences=4, batch_size=4)
    again = generate(loaded.model, loaded.tokenizer, [prompt], sampling, num_return_sequences=4, batch_size=4)
    texts = [c.text for c in first[0]]
    assert texts == [c.text for c in again[0]]
    assert len(set(texts)) > 1  # each copy samples on its own after the shared prefill
