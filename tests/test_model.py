"""Model loading claims from the README: the embedded model is converted into REASONLAB_CACHE,
and bfloat16 weights generate what float32 weights do (on the tiny model, up to rounding)."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from engine.generation import Sampling, generate
from engine.model import CACHE_ENV, load_model, resolve_model
from engine.tiny import MAX_DIGITS, reversal_prompt
from tests.test_generation import _digit_strings


def test_embedded_model_is_converted_into_reasonlab_cache(model_cache, tiny_model_dir):
    """The session's cache (conftest) holds the converted model, built from the GGUF file by
    this session (the tiny model needed its tokenizer)."""
    folder = model_cache / "smollm2-135m"
    assert resolve_model("smollm2-135m") == str(folder)
    assert (folder / "model.safetensors").stat().st_size > 400e6 and (folder / "tokenizer.json").exists()


def test_reasonlab_cache_reaches_engine_subprocesses(tmp_path):
    code = "from engine.model import cache_dir; print(cache_dir())"
    env = os.environ | {CACHE_ENV: str(tmp_path / "elsewhere")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(tmp_path / "elsewhere")


def test_bfloat16_generation_matches_float32_greedy(tiny_model_dir):
    prompts = [reversal_prompt(d) for d in _digit_strings(32, seed=1)]
    sampling = Sampling(MAX_DIGITS + 2)
    full = load_model(tiny_model_dir, dtype="float32")
    half = load_model(tiny_model_dir, dtype="bfloat16")
    assert {p.dtype for p in half.model.parameters()} == {torch.bfloat16}

    def texts(loaded, batch_size):
        return [c[0].text for c in generate(loaded.model, loaded.tokenizer, prompts, sampling, batch_size=batch_size, stop=None)]

    in_float32, in_bfloat16 = texts(full, 32), texts(half, 32)
    # Rounding may flip a near tie, so most answers, not all, must agree.
    assert sum(a == b for a, b in zip(in_float32, in_bfloat16)) >= 28
    assert sum(a == b for a, b in zip(in_bfloat16, texts(half, 1))) >= 28
