"""Resumable training checkpoints: the LoRA adapter as a peft directory (loadable like any
adapter) beside the optimiser, scheduler, step and RNG states.

Nothing in a checkpoint is ever unpickled: tensors (optimiser moments, the torch RNG state) go
in `state.safetensors`, everything else (step, hyperparameters, scheduler, Python RNG) in
`state.json`. A checkpoint is written to a temporary sibling folder and swapped in by rename, so
a run killed while saving still has its previous checkpoint intact.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.core.errors import ReasonlabError

ADAPTER = "adapter"
TENSORS = "state.safetensors"
STATE = "state.json"


@dataclass
class TrainingState:
    step: int
    optimizer: dict
    scheduler: dict


def save_adapter(model, folder: Path) -> None:
    """The trained adapter only (GRPO also holds its frozen KL reference as a second one), in
    safetensors: a checkpoint's and a finished run's adapter load on the base model alone.
    Embeddings are never adapted (LoRA on linear layers), so peft is told not to save them;
    left to guess, it looks the model's name up on the Hugging Face Hub at every save."""
    model.save_pretrained(
        folder, safe_serialization=True, selected_adapters=[model.active_adapter], save_embedding_layers=False
    )


def save_checkpoint(folder: Path, model, optimizer, scheduler, step: int) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        save_adapter(model, staging / ADAPTER)
        tensors, optimizer_state = _split_optimizer(optimizer.state_dict())
        tensors["rng.torch"] = torch.get_rng_state()
        save_file(tensors, staging / TENSORS)
        state = {
            "step": step,
            "optimizer": optimizer_state,
            "scheduler": scheduler.state_dict(),
            "rng_python": random.getstate(),
        }
        (staging / STATE).write_text(json.dumps(state), encoding="utf-8")
        old = folder.with_name(f".{folder.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        staging.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def has_checkpoint(folder: Path) -> bool:
    return (folder / STATE).exists() and (folder / ADAPTER / "adapter_config.json").exists()


def load_state(folder: Path) -> TrainingState:
    """The optimiser, scheduler and step of a checkpoint; also restores the RNG states."""
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
        tensors = load_file(folder / TENSORS)
        optimizer = _join_optimizer(state["optimizer"], tensors)
        torch.set_rng_state(tensors["rng.torch"])
        version, internal, gauss = state["rng_python"]
        random.setstate((version, tuple(internal), gauss))
        return TrainingState(int(state["step"]), optimizer, state["scheduler"])
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise ReasonlabError(
            f"The checkpoint in {folder} is unreadable ({type(exc).__name__}: {exc}); "
            "delete that folder to restart the run from its beginning."
        ) from None


def _split_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser state dict as safetensors tensors plus a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict] = {}
    for param, values in state_dict["state"].items():
        plain[str(param)] = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{param}.{key}"] = value.contiguous()
            else:
                plain[str(param)][key] = value
    return tensors, {"state": plain, "param_groups": state_dict["param_groups"]}


def _join_optimizer(plain: dict, tensors: dict[str, torch.Tensor]) -> dict:
    state = {int(param): dict(values) for param, values in plain["state"].items()}
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            _, param, key = name.split(".", 2)
            state[int(param)][key] = tensor
    return {"state": state, "param_groups": plain["param_groups"]}
