"""Broken models and adapters end in one ModelError line, pickles are never loaded, and an
adapter is refused on a model it was not trained on."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
import warnings

import pytest

from engine.cli import main
from engine.core.errors import ModelError
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.model import attach_adapter, load_model, quiet_peft_checkpointing_warning


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter for the tiny model, saved as training saves one (base model recorded)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    with quiet_peft_checkpointing_warning():
        model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(tiny_model_dir),
            LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"),
        )
    model.peft_config["default"].base_model_name_or_path = tiny_model_dir
    folder = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def _copy(source, target, *, without=()):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*without))
    return target


def _model_error(*args, **kwargs) -> str:
    with pytest.raises(ModelError) as info:
        load_model(*args, device="cpu", **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


class _Payload:
    """Unpickling this creates `marker`: proof that a pickle was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_garbage_safetensors(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    message = _model_error(str(folder))
    assert "weights" in message and str(folder) in message and "re-save" in message


def test_missing_tokenizer(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m", without=("tokenizer*",))
    message = _model_error(str(folder))
    assert "no usable tokenizer" in message and "tokenizer.save_pretrained" in message


def test_unknown_model_type(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"model_type": "nosucharch"}))
    message = _model_error(str(folder))
    assert "model_type 'nosucharch'" in message and "known architecture" in message


def test_config_with_a_wrong_field(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"hidden_size": "wide"}))
    assert "config.json" in _model_error(str(folder))


def test_a_transformers_that_takes_the_cache_as_past_key_values_is_refused(tiny_model_dir, monkeypatch):
    """Transformers before 5.24 names the cache argument past_key_values and would silently drop
    the engine's `cache=`; its model's forward signature is simulated here."""
    from transformers import LlamaForCausalLM

    def forward(self, input_ids=None, attention_mask=None, past_key_values=None, **kwargs):
        raise AssertionError("never called")

    monkeypatch.setattr(LlamaForCausalLM, "forward", forward)
    message = _model_error(tiny_model_dir)
    assert "KV cache as past_key_values" in message and "pip install -U 'transformers<6'" in message


def test_pickled_model_weights_are_refused_unread(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m", without=("*.safetensors",))
    marker = tmp_path / "executed"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    message = _model_error(str(folder))
    assert "pytorch_model.bin is a pickle" in message
    assert not marker.exists()


def test_a_pickle_beside_safetensors_is_never_read(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    marker = tmp_path / "executed"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    assert load_model(str(folder), device="cpu").parameter_count > 0
    assert not marker.exists()


def test_pickled_adapter_weights_are_refused_unread(tiny_model_dir, adapter_dir, tmp_path):
    folder = _copy(adapter_dir, tmp_path / "a", without=("*.safetensors",))
    marker = tmp_path / "executed"
    (folder / "adapter_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    message = _model_error(tiny_model_dir, adapter=folder)
    assert "adapter_model.bin is a pickle" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("config_text", "expected"),
    [("{not json", "cannot be read"), ("[1, 2]", "not a JSON object"), ('{"peft_type": "LORA", "r": "wide"}', "cannot be loaded")],
)
def test_adapter_with_garbage_config(tiny_model_dir, adapter_dir, tmp_path, config_text, expected):
    folder = _copy(adapter_dir, tmp_path / "a")
    (folder / "adapter_config.json").write_text(config_text)
    assert expected in _model_error(tiny_model_dir, adapter=folder)


def test_adapter_with_garbage_weights(tiny_model_dir, adapter_dir, tmp_path):
    folder = _copy(adapter_dir, tmp_path / "a")
    (folder / "adapter_model.safetensors").write_bytes(b"\xff" * 64)
    message = _model_error(tiny_model_dir, adapter=folder)
    assert "cannot be loaded" in message and "retrain" in message


def test_adapter_loads_on_the_same_model_however_it_is_spelled(tiny_model_dir, adapter_dir):
    assert load_model(tiny_model_dir + "/", adapter=adapter_dir, device="cpu").parameter_count > 0


def test_adapter_from_another_base_model_is_refused_by_run_id(capsys, db_path, tiny_model_dir, adapter_dir, tmp_path):
    """The same shapes, so peft would load it silently: only the recorded base model tells."""
    other = str(_copy(tiny_model_dir, tmp_path / "other-model"))
    store = RunStore(db_path)
    sft = store.create_run(RunSpec(kind="sft", model=tiny_model_dir), status="completed")
    recorded = shutil.copytree(adapter_dir, Path(sft.run_dir) / "adapter")  # artifacts live in the run's folder
    store.add_artifact(sft.id, "adapter", recorded)
    code = main(["eval", "--model", other, "--adapter", str(sft.id), "--limit", "1", "--mode", "direct"])
    err = capsys.readouterr().err
    expected = f"adapter #{sft.id} was trained on {tiny_model_dir}; this run's model is {other}"
    assert code == 1 and expected in err
    assert RunStore(db_path).get_run(sft.id + 1).error.startswith(expected)


def test_attaching_an_adapter_prints_no_future_warning(tiny_model_dir, adapter_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attach_adapter(model, adapter_dir, trainable=True)
    assert [w for w in caught if issubclass(w.category, FutureWarning)] == []
