"""Resumable training checkpoints: the LoRA adapter as a peft directory (loadable like any
adapter) beside the optimiser, scheduler, step and RNG states.

A checkpoint is written to a temporary sibling folder and swapped in by rename, so a run killed
while saving still has its previous checkpoint intact.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

ADAPTER = "adapter"
STATE = "state.pt"


@dataclass
class TrainingState:
    step: int
    optimizer: dict
    scheduler: dict


def save_checkpoint(folder: Path, model, optimizer, scheduler, step: int) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(staging / ADAPTER, safe_serialization=True)
        torch.save(
            {
                "step": step,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
            },
            staging / STATE,
        )
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
    data = torch.load(folder / STATE, weights_only=False)
    torch.set_rng_state(data["rng"]["torch"])
    random.setstate(data["rng"]["python"])
    return TrainingState(data["step"], data["optimizer"], data["scheduler"])
