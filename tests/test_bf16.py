"""bf16 on CPUs that multiply bf16 natively: detection, what dtype=auto picks, and bf16 LoRA
training (bf16 base, fp32 adapters) against fp32 on the tiny model."""

from __future__ import annotations

import pytest
import torch

from engine import model as model_module
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.model import cpu_native_bf16, load_model, pick_dtype
from engine.runner import execute

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu sse avx avx2 fma avx512f avx512bw", False),  # AVX-512 without its BF16 extension
        ("fpu sse avx avx2 avx512f avx512_bf16", True),
        ("fpu sse avx avx2 amx_tile amx_bf16 amx_int8", True),
        ("fpu sse avx avx2", False),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert cpu_native_bf16(cpuinfo) is native


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_exactly_when_the_cpu_has_native_bf16(monkeypatch, native):
    monkeypatch.setattr(model_module, "cpu_native_bf16", lambda: native)
    assert pick_dtype("auto", CPU) == (torch.bfloat16 if native else torch.float32)
    # fp32 stays one setting away, and bfloat16 stays available where it is emulated.
    assert pick_dtype("float32", CPU) == torch.float32
    assert pick_dtype("bfloat16", CPU) == torch.bfloat16


def test_auto_loads_bf16_weights_on_a_bf16_cpu(monkeypatch, tiny_model_dir):
    monkeypatch.setattr(model_module, "cpu_native_bf16", lambda: True)
    loaded = load_model(tiny_model_dir, device="cpu", dtype="auto")
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}


def _losses(store: RunStore, run_id: int) -> list[float]:
    return [value for _, value in store.metric_series(run_id, "loss")]


def test_bf16_lora_training_tracks_fp32_and_keeps_the_adapter_fp32(untrained_tiny_model_dir, db_path):
    """Same data, seed and steps in fp32 and with a bf16 base: the loss falls in both and the
    bf16 curve stays within 2% of fp32's at every step; the trained LoRA weights are fp32. (On
    the untrained tiny model, as measured: the digit-reversal one's loss on unit questions is
    an out-of-task value far from where bf16's rounding was characterised.)"""
    tiny_model_dir = untrained_tiny_model_dir
    from safetensors.torch import load_file

    store = RunStore(db_path)
    losses, adapters = {}, {}
    for dtype in ("float32", "bfloat16"):
        spec = RunSpec(
            kind="sft", model=tiny_model_dir, dtype=dtype, limit=16, batch_size=8, epochs=4, eval_limit=2,
            eval_interval=0, learning_rate=0.01, log_interval=1, checkpoint_interval=0,
        )
        run = execute(store, store.create_run(spec).id)
        assert run.status == "completed"
        losses[dtype] = _losses(store, run.id)
        adapters[dtype] = load_file(f"{store.artifact(run.id, 'adapter')['path']}/adapter_model.safetensors")
    fp32, bf16 = losses["float32"], losses["bfloat16"]
    assert len(fp32) == len(bf16) == 8
    assert fp32[-1] < fp32[0] - 0.05 and bf16[-1] < bf16[0] - 0.05
    assert max(abs(b - f) / f for f, b in zip(fp32, bf16)) < 0.02
    assert {t.dtype for t in adapters["bfloat16"].values()} == {torch.float32}
    # Trained, not just initialised: the bf16 run's LoRA B matrices moved away from zero.
    assert any(t.abs().sum() > 0 for name, t in adapters["bfloat16"].items() if "lora_B" in name)


def test_a_saved_adapter_loads_trainable_in_fp32_on_a_bf16_base(tiny_model_dir, tmp_path):
    """Resuming or continuing training (RFT from the SFT adapter) keeps fp32 master weights too."""
    from peft import LoraConfig, get_peft_model

    fresh = get_peft_model(load_model(tiny_model_dir, dtype="float32").model, LoraConfig(r=4, target_modules="all-linear"))
    fresh.save_pretrained(tmp_path / "adapter")
    loaded = load_model(tiny_model_dir, dtype="bfloat16", adapter=tmp_path / "adapter", trainable_adapter=True)
    trainable = [p for p in loaded.model.parameters() if p.requires_grad]
    assert trainable and {p.dtype for p in trainable} == {torch.float32}
    assert {p.dtype for p in loaded.model.parameters() if not p.requires_grad} == {torch.bfloat16}


def _saved_and_grads(model, rows, prefix) -> tuple[dict[int, int], list[torch.Tensor]]:
    """The storages one loss's forward keeps for backward (address: bytes) and the LoRA gradients."""
    from engine.training import batch_loss

    kept: dict[int, int] = {}

    def remember(tensor):
        kept[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(remember, lambda t: t):
        loss = batch_loss(model, rows, prefix, pad_id=0)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad(set_to_none=True)
    return kept, grads


def test_lora_layers_on_a_bf16_base_multiply_in_bf16_and_keep_no_fp32_copies(tiny_model_dir, monkeypatch):
    """peft casts each LoRA layer's input to the fp32 of its weights, and backward keeps those
    copies; training on a bf16 base turns that off (engine.training.lora_products_in_base_dtype),
    while the fp32 LoRA weights get gradients within bf16's rounding of the fp32-input ones."""
    import contextlib

    from peft import LoraConfig, get_peft_model

    from engine import training
    from engine.tasks import get_task

    loaded = load_model(tiny_model_dir, device="cpu", dtype="bfloat16")
    # init_lora_weights=False: B is random too, so the LoRA path adds to every layer's output.
    config = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    torch.manual_seed(0)
    model = get_peft_model(loaded.model, config, autocast_adapter_dtype=True)
    task = get_task("unit_conversion")
    rows = training.encode(loaded.tokenizer, task, task.load("train")[:4], "cot")
    prefix = training.shared_prefix_length(rows)

    lora_inputs: dict[int, torch.dtype] = {}  # storage address: dtype, of every LoRA A's input
    for name, module in model.named_modules():
        if name.endswith("lora_A.default"):
            module.register_forward_pre_hook(
                lambda _, args: lora_inputs.update({args[0].untyped_storage().data_ptr(): args[0].dtype})
            )
    engine_kept, engine_grads = _saved_and_grads(model, rows, prefix)
    assert set(lora_inputs.values()) == {torch.bfloat16}  # the base layers' own inputs, shared

    lora_inputs.clear()
    monkeypatch.setattr(training, "lora_products_in_base_dtype", lambda base: contextlib.nullcontext())
    cast_kept, cast_grads = _saved_and_grads(model, rows, prefix)
    assert set(lora_inputs.values()) == {torch.float32}  # peft's own cast, which the engine turns off
    fp32_copies = sum(cast_kept[address] for address in lora_inputs if address in cast_kept)
    assert fp32_copies > 0
    assert sum(engine_kept.values()) <= sum(cast_kept.values()) - fp32_copies / 2
    assert {grad.dtype for grad in engine_grads} == {torch.float32}
    difference = sum(((e - c) ** 2).sum() for e, c in zip(engine_grads, cast_grads, strict=True)) ** 0.5
    assert difference <= 0.05 * sum((c**2).sum() for c in cast_grads) ** 0.5  # 0.016 seen
