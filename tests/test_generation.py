"""The engine's batched generation against `model.generate`, on the tiny model trained to
reverse digit strings: its answer depends on every prompt position and every row, and rows of
different lengths stop (EOS) at different steps, so padding, positions, the shared-prefix cache
and dropping finished rows all show in the text."""

from __future__ import annotations

import random

from unittest.mock import patch

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from engine import generation
from engine.generation import Sampling, generate
from engine.model import load_model
from engine.tiny import MAX_DIGITS, reversal_prompt
from tests.steering import steer

MAX_NEW = MAX_DIGITS + 2  # every answer (reversed digits, then EOS) fits


def _digit_strings(count: int, seed: int, shortest: int = 1, longest: int = MAX_DIGITS, prefix: str = "") -> list[str]:
    rng = random.Random(seed)
    return [prefix + "".join(rng.choice("0123456789") for _ in range(rng.randint(shortest, longest))) for _ in range(count)]


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(tiny_model_dir)


@pytest.fixture(scope="module")
def loaded_fp32(tiny_model_dir):
    """For tests comparing batches of different shapes: bf16 kernels may round a row differently."""
    return load_model(tiny_model_dir, dtype="float32")


def _reference(loaded, prompts: list[str], max_new_tokens: int = MAX_NEW) -> list[str]:
    """`model.generate` on each prompt alone: no padding, no shared prefix, no dropped rows."""
    tok = loaded.tokenizer
    texts = []
    for prompt in prompts:
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = loaded.model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        texts.append(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    return texts


@pytest.fixture(scope="module")
def mixed(loaded):
    """32 prompts of 1 to MAX_DIGITS digits and their reference answers."""
    prompts = [reversal_prompt(d) for d in _digit_strings(32, seed=1)]
    return prompts, _reference(loaded, prompts)


def test_tiny_model_answers_its_input(loaded, mixed):
    """The premise of every test below: answers differ per prompt and mostly reverse it."""
    prompts, answers = mixed
    assert len(set(answers)) >= 28
    reversed_right = sum(answer == prompt[:-1][::-1] for prompt, answer in zip(prompts, answers))
    assert reversed_right >= 8, answers
    lengths = {len(loaded.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers}
    assert len(lengths) >= 8  # answers end (EOS) at many different steps


@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_greedy_equals_model_generate(loaded, mixed, batch_size):
    prompts, answers = mixed
    ours = generate(loaded.model, loaded.tokenizer, prompts, Sampling(MAX_NEW), batch_size=batch_size, stop=None)
    assert [c[0].text for c in ours] == answers
    assert all(c[0].tokens < MAX_NEW for c in ours)  # every row stopped at its own EOS


@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_greedy_with_a_shared_prefix_equals_model_generate(loaded, monkeypatch, batch_size):
    """Prompts that share a start: it runs once per batch and its cache is repeated across rows;
    each row's own end follows after left padding. The answers read back into the prefix."""
    monkeypatch.setattr(generation, "MIN_SHARED_PREFIX", 4)  # the tiny model's prompts are short
    prompts = [reversal_prompt(d) for d in _digit_strings(32, seed=2, shortest=1, longest=6, prefix="702581")]
    widths = []
    original = loaded.model.forward

    def recording(*args, **kwargs):
        widths.append(tuple(kwargs["input_ids"].shape))
        return original(*args, **kwargs)

    monkeypatch.setattr(loaded.model, "forward", recording)
    ours = generate(loaded.model, loaded.tokenizer, prompts, Sampling(MAX_NEW), batch_size=batch_size, stop=None)
    monkeypatch.setattr(loaded.model, "forward", original)
    assert widths[0][0] == 1 and widths[0][1] >= 6  # the shared start, once, as a batch of one
    assert [c[0].text for c in ours] == _reference(loaded, prompts)


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (1.0, 0.9)])
def test_seeded_sampling_is_the_same_at_any_batch_size(loaded_fp32, temperature, top_p):
    """Each sequence draws from its own seed, so its chain does not depend on its batch. In fp32,
    where a row's logits come out the same in any batch; bf16 kernels round a row a little
    differently in batches of other shapes, which flips a draw that falls at a boundary (on an
    AMD EPYC: 1 to 4 of these 36 chains at batch 7 or 32)."""
    loaded = loaded_fp32
    prompts = [reversal_prompt(d) for d in _digit_strings(12, seed=3)]
    sampling = Sampling(MAX_NEW, temperature=temperature, top_p=top_p, seed=5)

    def texts(sampling, batch_size):
        result = generate(loaded.model, loaded.tokenizer, prompts, sampling, num_return_sequences=3, batch_size=batch_size, stop=None)
        return [[c.text for c in samples] for samples in result]

    at_one = texts(sampling, 1)
    assert texts(sampling, 7) == at_one and texts(sampling, 32) == at_one
    assert sum(len(set(samples)) > 1 for samples in at_one) >= 3  # a prompt's samples differ
    assert texts(Sampling(MAX_NEW, temperature=temperature, top_p=top_p, seed=6), 7) != at_one


def test_sampling_is_keyed_by_question_not_by_position(loaded_fp32):
    """A resumed run generates only the questions left, with their dataset indices as keys: they
    get the samples an uninterrupted run gave them (in batches of other shapes here, so in fp32)."""
    loaded = loaded_fp32
    prompts = [reversal_prompt(d) for d in _digit_strings(10, seed=4)]
    sampling = Sampling(MAX_NEW, temperature=1.0, seed=9)
    whole = generate(loaded.model, loaded.tokenizer, prompts, sampling, num_return_sequences=2, batch_size=8)
    rest = generate(loaded.model, loaded.tokenizer, prompts[4:], sampling, num_return_sequences=2, batch_size=8, keys=list(range(4, 10)))
    assert [[c.text for c in s] for s in rest] == [[c.text for c in s] for s in whole[4:]]
    unkeyed = generate(loaded.model, loaded.tokenizer, prompts[4:], sampling, num_return_sequences=2, batch_size=8)
    assert [[c.text for c in s] for s in unkeyed] != [[c.text for c in s] for s in whole[4:]]


def test_stops_at_answer_tag_and_drops_finished_rows(loaded, monkeypatch):
    """Force the stop string by making the model's output head prefer it token by token."""
    calls = steer(loaded, monkeypatch, "</answer>")
    prompts = [reversal_prompt("123456789"), reversal_prompt("98765")]
    result = generate(loaded.model, loaded.tokenizer, prompts, Sampling(max_new_tokens=20), batch_size=2)
    assert [c[0].text for c in result] == ["</answer>", "</answer>"]
    assert calls["n"] == calls["tokens"]  # no forward pass after every row finished


@pytest.mark.slow
def test_real_model_cot_greedy_equals_model_generate():
    """The same on SmolLM2 with cot prompts (their ~200-token shared start is real here)."""
    from engine.tasks import get_task

    real = load_model("smollm2-135m", device="cpu", dtype="float32")
    task = get_task("unit_conversion")
    prompts = [task.prompt(ex.question, "cot", real.tokenizer) for ex in task.load("valid")[:3]]
    reference = _reference(real, prompts, max_new_tokens=24)
    for batch_size in (1, 3):
        ours = generate(real.model, real.tokenizer, prompts, Sampling(24), batch_size=batch_size, stop=None)
        assert [c[0].text for c in ours] == reference


def test_completions_carry_their_sampled_ids_and_whether_they_were_cut(loaded):
    """GRPO scores exactly the sampled tokens: the ids decode to the text, a row that stopped on
    EOS keeps that EOS, and a row cut by max_new_tokens says so."""
    tok = loaded.tokenizer
    prompts = [reversal_prompt(d) for d in _digit_strings(8, seed=3, shortest=1, longest=6)]
    completions = [c[0] for c in generate(loaded.model, tok, prompts, Sampling(max_new_tokens=4), batch_size=8)]
    assert {c.truncated for c in completions} == {True, False}  # short answers end, long ones are cut
    for completion in completions:
        assert tok.decode(completion.ids, skip_special_tokens=True) == completion.text
        assert completion.truncated == (tok.eos_token_id not in completion.ids)


def test_a_row_ended_by_eos_keeps_that_eos_in_its_ids(loaded):
    tok = loaded.tokenizer
    original = loaded.model.forward

    def eos_first(*args, **kwargs):
        out = original(*args, **kwargs)
        out.logits[:, -1, tok.eos_token_id] = 1e4
        return out

    loaded.model.forward = eos_first
    try:
        [[completion]] = generate(loaded.model, tok, [reversal_prompt("12")], Sampling(max_new_tokens=5), batch_size=1)
    finally:
        loaded.model.forward = original
    assert (completion.text, completion.tokens, completion.ids, completion.truncated) == ("", 0, (tok.eos_token_id,), False)


def test_a_draw_inverts_the_tempered_top_p_distribution():
    """`_pick` against hand-computed cumulative masses: the temperature divides the logits, and
    top-p keeps the likeliest tokens (those whose mass before them is within top_p)."""
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]]))
    draw = lambda u, **options: int(generation._pick(logits, Sampling(8, **options), torch.tensor([u]))[0])
    # temperature 1, no cut: cumulative 0.2, 0.7, 1.0
    assert [draw(u, temperature=1.0) for u in (0.19, 0.21, 0.69, 0.71, 0.999)] == [0, 1, 1, 2, 2]
    # temperature 2: masses proportional to sqrt(p), cumulative 0.2628, 0.6782, 1.0
    assert [draw(u, temperature=2.0) for u in (0.25, 0.27, 0.67, 0.69)] == [0, 1, 1, 2]
    # top_p 0.6 keeps 0.5 (mass 0 before it) and 0.3 (0.5 before it), drops 0.2 (0.8 before it):
    # renormalised, token 1 then token 2 with cumulative 0.625, 1.0; token 0 is never drawn
    assert [draw(u, temperature=1.0, top_p=0.6) for u in (0.0, 0.6, 0.65, 0.999)] == [1, 1, 2, 2]
    assert draw(0.9, temperature=GREEDY_TEMPERATURE) == 1  # greedy: the top token whatever the draw


GREEDY_TEMPERATURE = generation.GREEDY_BELOW / 2


def _sort_cut(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The top-p cut as it was written before the candidate search: sort each whole row, drop
    the tokens whose mass before them exceeds top_p, and scatter the rest back."""
    values, ids = probs.sort(dim=-1, descending=True)
    values[values.cumsum(-1) - values > top_p] = 0.0
    return torch.zeros_like(probs).scatter(-1, ids, values)


@given(
    vocab=st.integers(2, 600), rows=st.integers(1, 4), spread=st.floats(0.0, 8.0), seed=st.integers(0, 2**31),
    top_p=st.floats(0.01, 0.999), candidates=st.sampled_from([1, 4, 64, 256]), ties=st.booleans(),
)
def test_the_nucleus_depends_on_the_probabilities_alone(vocab, rows, spread, seed, top_p, candidates, ties):
    """Looked for among a few candidates or over the whole row, the cut is the same; tokens tied
    with the last one kept are all kept (bf16 logits tie often); the tokens above the cut hold at
    most top_p of the mass and the kept ones more, unless every token is kept."""
    logits = torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * spread
    if ties:
        logits = logits.bfloat16()
    probs = torch.softmax(logits.float(), dim=-1)
    with patch.object(generation, "NUCLEUS_CANDIDATES", candidates):
        floor = generation._nucleus_floor(probs, top_p)
    whole = generation._floor_of_sorted(probs.sort(dim=-1, descending=True).values, top_p)
    assert torch.equal(floor, whole)
    for row, cut in zip(probs.double(), floor.double()):
        above, kept = row[row > cut].sum(), row[row >= cut].sum()
        assert above <= top_p + 1e-6 and (kept > top_p - 1e-6 or bool((row >= cut).all()))
        if not ties and len(set(row.tolist())) == vocab:  # no ties: exactly the tokens the sort kept
            assert torch.equal(row >= cut, _sort_cut(row[None].float(), top_p)[0] > 0)


def test_a_wide_nucleus_is_cut_past_the_candidates():
    """A nearly flat row keeps far more tokens than the candidates searched first; they are cut
    exactly where a sort of the whole row cuts them, and a peaked row beside it keeps its few."""
    probs = torch.softmax(torch.stack([torch.linspace(0.0, 0.5, 1000), torch.linspace(0.0, 40.0, 1000)]), dim=-1)
    floor = generation._nucleus_floor(probs, 0.9)
    kept = (probs >= floor[:, None]).sum(-1).tolist()
    assert kept == (_sort_cut(probs, 0.9) > 0).sum(-1).tolist()
    assert kept[0] > generation.NUCLEUS_CANDIDATES > kept[1] > 0


def test_progress_counts_every_sequence_once_and_keys_must_match_the_prompts(loaded):
    model, tokenizer = loaded.model, loaded.tokenizer
    prompts = _digit_strings(5, seed=3)
    finished: list[int] = []
    generate(model, tokenizer, [reversal_prompt(p) for p in prompts], Sampling(4, temperature=1.0),
             num_return_sequences=3, batch_size=4, on_batch=finished.append)
    assert finished == [4, 4, 4, 3]  # 15 sequences in micro-batches of 4
    with pytest.raises(ValueError, match="2 keys for 5 prompts"):
        generate(model, tokenizer, prompts, Sampling(4), keys=[0, 1])


def test_a_row_ends_at_any_eos_the_model_or_the_tokenizer_declares():
    """Chat models often list several end tokens in their generation config (a list or one id);
    the tokenizer's own EOS counts too, and a model without a generation config has only it."""
    from types import SimpleNamespace

    tokenizer = SimpleNamespace(eos_token_id=2)
    model = lambda eos: SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=eos))
    assert generation._eos_ids(model([5, 7]), tokenizer) == {2, 5, 7}
    assert generation._eos_ids(model(5), tokenizer) == {2, 5}
    assert generation._eos_ids(model(None), tokenizer) == {2}
    assert generation._eos_ids(SimpleNamespace(), tokenizer) == {2}
    assert generation._eos_ids(model(5), SimpleNamespace(eos_token_id=None)) == {5}
