import torch

from engine.generation import Sampling, generate
from engine.model import load_model


def _prompts():
    return [
        "Convert 5 mile to meter. <answer>",
        "How many g are there per 6 kg? <answer>",
        "What does 9 ft equal in mm terms? A much longer question so that padding matters here <answer>",
        "How many seconds are in 3 hours? <answer>",
        "Convert 2.5 kg to pound. <answer>",
    ]


def test_batched_equals_sequential_under_greedy(tiny_model_dir):
    loaded = load_model(tiny_model_dir)
    sampling = Sampling(max_new_tokens=12)
    batched = generate(loaded.model, loaded.tokenizer, _prompts(), sampling, batch_size=5)
    sequential = generate(loaded.model, loaded.tokenizer, _prompts(), sampling, batch_size=1)
    assert [c[0].text for c in batched] == [c[0].text for c in sequential]
    assert all(c[0].tokens == 12 for c in batched)  # a random model never emits the stop string
    # The sampled ids come along (what GRPO scores), and every row was cut by max_new_tokens.
    assert all(len(c[0].ids) == 12 and c[0].truncated for c in batched)
    assert [loaded.tokenizer.decode(c[0].ids, skip_special_tokens=True) for c in batched] == [c[0].text for c in batched]


def test_matches_hf_generate(tiny_model_dir):
    loaded = load_model(tiny_model_dir)
    tok = loaded.tokenizer
    ours = generate(loaded.model, tok, _prompts(), Sampling(max_new_tokens=8), batch_size=3)
    enc = tok(_prompts(), return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    with torch.no_grad():
        out = loaded.model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    theirs = [tok.decode(row[enc["input_ids"].shape[1]:], skip_special_tokens=True) for row in out]
    assert [c[0].text for c in ours] == theirs


def test_sampling_is_seeded_and_returns_k_sequences(tiny_model_dir):
    loaded = load_model(tiny_model_dir)
    sampling = Sampling(max_new_tokens=6, temperature=1.0, top_p=0.9, seed=3)
    first = generate(loaded.model, loaded.tokenizer, _prompts()[:2], sampling, num_return_sequences=4, batch_size=8)
    again = generate(loaded.model, loaded.tokenizer, _prompts()[:2], sampling, num_return_sequences=4, batch_size=8)
    assert [len(c) for c in first] == [4, 4]
    assert [[c.text for c in cs] for cs in first] == [[c.text for c in cs] for cs in again]
    assert len({c.text for c in first[0]}) > 1


def test_stops_at_answer_tag_and_drops_finished_rows(tiny_model_dir):
    """Force the stop string by making the model's output head prefer it token by token."""
    loaded = load_model(tiny_model_dir)
    tok = loaded.tokenizer
    stop_ids = tok("</answer>", add_special_tokens=False)["input_ids"]
    calls = {"n": 0}
    original = loaded.model.forward

    def steered(*args, **kwargs):
        out = original(*args, **kwargs)
        step = calls["n"]
        calls["n"] += 1
        if step < len(stop_ids):
            out.logits[:, -1, stop_ids[step]] = 1e4
        return out

    loaded.model.forward = steered
    result = generate(loaded.model, tok, _prompts()[:2], Sampling(max_new_tokens=20), batch_size=2)
    assert [c[0].text for c in result] == ["</answer>", "</answer>"]
    assert [(list(c[0].ids), c[0].truncated) for c in result] == [(stop_ids, False)] * 2
    assert calls["n"] == len(stop_ids)  # no forward pass after every row finished


def test_a_row_ended_by_eos_keeps_that_eos_in_its_ids(tiny_model_dir):
    loaded = load_model(tiny_model_dir)
    tok = loaded.tokenizer
    original = loaded.model.forward

    def eos_first(*args, **kwargs):
        out = original(*args, **kwargs)
        out.logits[:, -1, tok.eos_token_id] = 1e4
        return out

    loaded.model.forward = eos_first
    [[completion]] = generate(loaded.model, tok, _prompts()[:1], Sampling(max_new_tokens=5), batch_size=1)
    assert (completion.text, completion.tokens, completion.ids, completion.truncated) == ("", 0, (tok.eos_token_id,), False)


def test_shared_prompt_start_runs_once_and_changes_nothing(tiny_model_dir):
    """cot prompts share ~200 tokens: that start is computed once per batch, with the same result."""
    loaded = load_model(tiny_model_dir)
    tok = loaded.tokenizer
    start = "You convert units. Be concise: give the factor, do one calculation, answer in tags. " * 3
    prompts = [start + p for p in _prompts()]
    seen_lengths = []
    original = loaded.model.forward

    def recording(*args, **kwargs):
        seen_lengths.append(kwargs["input_ids"].shape)
        return original(*args, **kwargs)

    loaded.model.forward = recording
    ours = generate(loaded.model, tok, prompts, Sampling(max_new_tokens=6), batch_size=5)
    loaded.model.forward = original
    shared = len(tok(start, add_special_tokens=False)["input_ids"]) - 1
    assert seen_lengths[0][0] == 1 and seen_lengths[0][1] >= shared  # the start, once, batch of one
    assert seen_lengths[1][0] == 5 and seen_lengths[1][1] < 30  # then only each prompt's own end
    enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    with torch.no_grad():
        out = loaded.model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    assert [c[0].text for c in ours] == [tok.decode(r[enc["input_ids"].shape[1]:], skip_special_tokens=True) for r in out]
    sequential = generate(loaded.model, tok, prompts, Sampling(max_new_tokens=6), batch_size=1)
    assert [c[0].text for c in ours] == [c[0].text for c in sequential]
