"""Shared fixtures: a tiny randomly initialised Llama with the real SmolLM2 tokenizer, saved as a
local model directory so every code path (CLI included) loads it like any other model."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.model import DEFAULT_TOKENIZER_SOURCE, load_tokenizer

    tokenizer = load_tokenizer(DEFAULT_TOKENIZER_SOURCE)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # One thread: a tiny model gains nothing from more, and on a shared machine threads that
    # wait for each other make every small op several times slower.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture
def db_path(tmp_path, monkeypatch):
    """A fresh database in a temporary folder; REASONLAB_DB points at it for CLI calls."""
    path = tmp_path / "runs.db"
    monkeypatch.setenv("REASONLAB_DB", str(path))
    return path
