"""Checkpoint files without a model: a small module stands in for the LoRA model, so these run in
milliseconds (the round trip of optimiser, scheduler and RNG states is in test_run_core)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from engine.checkpoint import ADAPTER, STATE, has_checkpoint, load_state, save_adapter, save_checkpoint
from engine.core.errors import ReasonlabError


class Adapter(torch.nn.Linear):
    """Saves like a peft model (a folder with adapter_config.json) and records where."""

    active_adapter = "default"

    def __init__(self):
        super().__init__(3, 2)
        self.saved_to: list[Path] = []
        self.fail = False

    def save_pretrained(self, folder, safe_serialization=False, selected_adapters=None, save_embedding_layers="auto"):
        assert safe_serialization, "a checkpoint's adapter must be safetensors, never a pickle"  # older peft pickled
        # GRPO also holds a frozen KL reference adapter: only the trained one belongs in a checkpoint
        assert selected_adapters == [self.active_adapter]
        self.saved_to.append(Path(folder))
        if self.fail:
            raise OSError("disk full")
        Path(folder).mkdir(parents=True)
        (Path(folder) / "adapter_config.json").write_text(json.dumps({"steps": len(self.saved_to)}))


def _trained(steps: int = 2):
    model = Adapter()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    for _ in range(steps):
        model(torch.randn(4, 3)).sum().backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer, scheduler


def test_a_checkpoint_is_written_beside_its_folder_and_swapped_in_whole(tmp_path):
    folder = tmp_path / "runs" / "7" / "checkpoint"  # its parents do not exist yet
    model, optimizer, scheduler = _trained()
    save_checkpoint(folder, model, optimizer, scheduler, step=2)
    (staging,) = model.saved_to
    assert staging.parent.parent == folder.parent and staging.parent.name.startswith(".checkpoint-")
    assert has_checkpoint(folder) and load_state(folder).step == 2
    assert [p.name for p in folder.parent.iterdir()] == ["checkpoint"]  # no staging or old copy left


def test_saving_again_replaces_the_checkpoint(tmp_path):
    folder = tmp_path / "checkpoint"
    model, optimizer, scheduler = _trained()
    save_checkpoint(folder, model, optimizer, scheduler, step=2)
    save_checkpoint(folder, model, optimizer, scheduler, step=5)
    assert load_state(folder).step == 5
    assert json.loads((folder / ADAPTER / "adapter_config.json").read_text()) == {"steps": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]


def test_a_failed_save_keeps_the_previous_checkpoint_and_leaves_no_staging(tmp_path):
    folder = tmp_path / "checkpoint"
    model, optimizer, scheduler = _trained()
    save_checkpoint(folder, model, optimizer, scheduler, step=2)
    model.fail = True
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(folder, model, optimizer, scheduler, step=3)
    assert has_checkpoint(folder) and load_state(folder).step == 2
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]


def test_a_checkpoint_needs_both_its_state_and_its_adapter(tmp_path):
    folder = tmp_path / "checkpoint"
    model, optimizer, scheduler = _trained()
    save_checkpoint(folder, model, optimizer, scheduler, step=2)
    assert has_checkpoint(folder)
    (folder / STATE).rename(tmp_path / "state.json")
    assert not has_checkpoint(folder)
    (tmp_path / "state.json").rename(folder / STATE)
    (folder / ADAPTER / "adapter_config.json").unlink()
    assert not has_checkpoint(folder)


def test_plain_and_dotted_optimiser_state_survives_the_checkpoint(tmp_path):
    """Optimisers other than AdamW keep numbers beside tensors, and state names may hold dots."""
    model, optimizer, scheduler = _trained()
    param = next(iter(optimizer.state))
    optimizer.state[param]["visits"] = 3
    optimizer.state[param]["ema.slow"] = torch.arange(4.0)
    save_checkpoint(tmp_path / "checkpoint", model, optimizer, scheduler, step=2)
    restored = load_state(tmp_path / "checkpoint").optimizer["state"][0]
    assert restored["visits"] == 3 and torch.equal(restored["ema.slow"], torch.arange(4.0))
    assert torch.equal(restored["exp_avg"], optimizer.state[param]["exp_avg"])


@pytest.mark.parametrize(
    ("damage", "error"),
    [("no state", "FileNotFoundError"), ("bad json", "JSONDecodeError"), ("no tensors", "FileNotFoundError"),
     ("no step", "KeyError")],
)
def test_a_damaged_checkpoint_is_a_one_line_error_naming_its_folder(tmp_path, damage, error):
    folder = tmp_path / "checkpoint"
    model, optimizer, scheduler = _trained()
    save_checkpoint(folder, model, optimizer, scheduler, step=2)
    state = json.loads((folder / STATE).read_text())
    if damage == "no state":
        (folder / STATE).unlink()
    elif damage == "bad json":
        (folder / STATE).write_text("{")
    elif damage == "no tensors":
        (folder / "state.safetensors").unlink()
    else:
        (folder / STATE).write_text(json.dumps({k: v for k, v in state.items() if k != "step"}))
    expected = f"^The checkpoint in {re.escape(str(folder))} is unreadable \\({error}: .*\\); delete that folder to restart the run from its beginning\\.$"
    with pytest.raises(ReasonlabError, match=expected) as caught:
        load_state(folder)
    assert "\n" not in str(caught.value)


def test_an_old_copy_left_by_a_save_killed_mid_swap_does_not_block_the_next(tmp_path):
    folder = tmp_path / "checkpoint"
    model, optimizer, scheduler = _trained()
    save_checkpoint(folder, model, optimizer, scheduler, step=2)
    leftover = tmp_path / ".checkpoint-old"
    (leftover / ADAPTER).mkdir(parents=True)
    save_checkpoint(folder, model, optimizer, scheduler, step=4)
    assert load_state(folder).step == 4
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]


def test_saving_a_real_adapter_looks_nothing_up_on_the_hub(tiny_model_dir, tmp_path, monkeypatch):
    """The pipeline names its model 'smollm2-135m', which is no local folder: peft's default
    would ask the Hub whether that name has a config.json at every save (a warning offline, a
    request online)."""
    import peft.utils.save_and_load as save_and_load
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.model import quiet_peft_checkpointing_warning

    def no_lookup(*args, **kwargs):
        raise AssertionError("saving an adapter looked the model up on the Hub")

    monkeypatch.setattr(save_and_load, "check_file_exists_on_hf_hub", no_lookup)
    with quiet_peft_checkpointing_warning():
        model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=2, target_modules="all-linear")
        )
    model.peft_config["default"].base_model_name_or_path = "smollm2-135m"
    save_adapter(model, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
