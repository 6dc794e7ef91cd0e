"""Shared fixtures: a hermetic model cache for the whole session, and a tiny Llama with the real
SmolLM2 tokenizer, trained to reverse digit strings and saved as a local model directory so
every code path (CLI included) loads it like any other model.

Mutation testing starts a pytest session per mutant, which cannot afford the model conversion
and the tiny model's training each time: with REASONLAB_TEST_MODELS set to a folder, the
session keeps both there and reuses them (tiny models per version of engine/tiny.py). Unset
(CI, normal runs), everything is built afresh in temporary folders."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests: a few hundred examples each by default; HYPOTHESIS_PROFILE=ci or long for more.
# No deadline: on a shared CPU an example's time says nothing about the code (house rule).
_PROFILE = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("default", max_examples=200, **_PROFILE)
settings.register_profile("ci", max_examples=1_000, **_PROFILE)
settings.register_profile("long", max_examples=20_000, **_PROFILE)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

from engine.model import CACHE_ENV

KEPT_MODELS_ENV = "REASONLAB_TEST_MODELS"


def _kept_models() -> Path | None:
    folder = os.environ.get(KEPT_MODELS_ENV)
    return Path(folder).resolve() if folder else None


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """A fresh REASONLAB_CACHE for the session: nothing is written to the user's real cache, and
    the first load of the embedded model runs the GGUF conversion every session (once), as on a
    user's first run. Set in os.environ, so CLI subprocesses use it too."""
    kept = _kept_models()
    with pytest.MonkeyPatch.context() as patch:
        folder = kept / "reasonlab-cache" if kept else tmp_path_factory.mktemp("reasonlab-cache")
        folder.mkdir(parents=True, exist_ok=True)
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, model_cache):
    import torch

    # One thread: a tiny model gains nothing from more, and on a shared machine threads that
    # wait for each other make every small op several times slower.
    torch.set_num_threads(1)
    return _tiny_model(tmp_path_factory, "tiny-llama")


@pytest.fixture(scope="session")
def untrained_tiny_model_dir(tmp_path_factory, model_cache):
    """The tiny Llama at its random initialisation: near-flat next-token distributions, for tests
    where learning has to move probability mass the model does not already hold."""
    return _tiny_model(tmp_path_factory, "tiny-llama-untrained", train_steps=0)


def _tiny_model(tmp_path_factory, name: str, **options) -> str:
    """A tiny model folder: built in a temporary folder, or reused from REASONLAB_TEST_MODELS
    (built there once, renamed into place whole so an interrupted build is never reused)."""
    from engine import tiny

    kept = _kept_models()
    if not kept:
        return tiny.save_tiny_model(tmp_path_factory.mktemp(name), **options)
    version = hashlib.sha256(Path(tiny.__file__).read_bytes()).hexdigest()[:12]
    folder = kept / f"{name}-{version}"
    if not folder.exists():
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=kept))
        tiny.save_tiny_model(staging, **options)
        staging.rename(folder)
    return str(folder)


@pytest.fixture
def db_path(tmp_path, monkeypatch):
    """A fresh database in a temporary folder; REASONLAB_DB points at it for CLI calls."""
    path = tmp_path / "runs.db"
    monkeypatch.setenv("REASONLAB_DB", str(path))
    return path
