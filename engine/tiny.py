"""A tiny randomly initialised Llama with the real SmolLM2 tokenizer, saved as a local model
directory: every code path (the CLI included) loads it like any model, in well under a second.
Tests and benchmarks use it where the model's quality does not matter."""

from __future__ import annotations

from pathlib import Path

from engine.model import DEFAULT_TOKENIZER_SOURCE, load_tokenizer


def save_tiny_model(folder: str | Path, seed: int = 0) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(DEFAULT_TOKENIZER_SOURCE)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
