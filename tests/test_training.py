"""SFT and RFT on the tiny random model: loss, metrics, adapter, checkpoints, resume, RFT data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from engine import training
from engine.checkpoint import load_state
from engine.cli import main
from engine.core.errors import ReasonlabError, RunCancelled
from engine.runner import execute
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.tasks import get_task

FAST = ["--limit", "16", "--batch-size", "8", "--eval-limit", "2", "--learning-rate", "0.01", "--log-interval", "1"]


def _sft_spec(model: str, **changes) -> RunSpec:
    values = dict(
        kind="sft", model=model, limit=16, batch_size=8, epochs=2, eval_limit=2, eval_interval=0,
        learning_rate=0.01, log_interval=1, checkpoint_interval=0,
    )
    return RunSpec(**values | changes)


def _adapter_weights(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_sft_lowers_loss_writes_metrics_and_adapter(tiny_model_dir, db_path):
    args = ["--epochs", "4", "--eval-interval", "4", "--checkpoint-interval", "4"]
    assert main(["sft", "--model", tiny_model_dir, *FAST, *args]) == 0
    store = RunStore(db_path)
    run = store.list_runs()[0]
    losses = [v for _, v in store.metric_series(run.id, "loss")]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert {"loss", "lr", "grad_norm", "samples_per_s", "accuracy", "answer_rate", "adapter_mb", "parameters"} <= set(
        store.metric_names(run.id)
    )
    assert [s for s, _ in store.metric_series(run.id, "accuracy")] == [4, 8]
    # valid's and shifted's samples at each eval step, selection's at the end; shifted's scored
    # as its metric says
    assert {(r["split"], r["step"]) for r in store.samples(run.id)} == {
        (split, step) for split in ("valid", "shifted") for step in (4, 8)
    } | {("selection", 8)}
    shifted = store.samples(run.id, split="shifted", step=8)
    assert [r["question"] for r in shifted] == [ex.question for ex in get_task("unit_conversion").load("shifted")[:2]]
    assert store.metric_series(run.id, "shifted_accuracy")[-1][1] == sum(r["correct"] for r in shifted) / 2
    adapter = store.artifact(run.id, "adapter")["path"]
    assert (run.summary["adapter_mb"] > 0) and json.load(open(f"{adapter}/adapter_config.json"))["r"] == 8
    assert load_state(Path(store.artifact(run.id, "checkpoint")["path"])).step == 8


def test_adapter_loads_back_and_changes_outputs(tiny_model_dir, db_path):
    from engine.model import load_model

    store = RunStore(db_path)
    run = execute(store, store.create_run(_sft_spec(tiny_model_dir, epochs=1)).id)
    base = load_model(tiny_model_dir)
    tuned = load_model(tiny_model_dir, adapter=store.artifact(run.id, "adapter")["path"])
    ids = base.tokenizer("Convert 5 km to m. <answer>", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(base.model(ids).logits, tuned.model(ids).logits)


@pytest.mark.parametrize(("kind", "steps"), [("sft", 6), ("rft", 3)])
def test_unset_epochs_take_the_kind_default(tiny_model_dir, db_path, tmp_path, kind, steps):
    """SFT on direct answers defaults to 6 passes, RFT to 3 (a pipeline's stages inherit no value)."""
    data = tmp_path / "rft.json"
    task = get_task("unit_conversion")
    data.write_text(json.dumps([[e.question, e.answer, task.completion(e, "cot")] for e in task.load("train")[:8]]))
    store = RunStore(db_path)
    fields = {"data": str(data)} if kind == "rft" else {}
    run = execute(store, store.create_run(_sft_spec(tiny_model_dir, kind=kind, epochs=None, limit=8, **fields)).id)
    assert run.status == "completed" and run.progress_total == steps  # one step of 8 per epoch


def test_cancelled_sft_resumes_its_step_count_and_data_order(tiny_model_dir, db_path, monkeypatch):
    store = RunStore(db_path)
    spec = _sft_spec(tiny_model_dir, epochs=3)  # 2 steps per epoch: 6 steps
    reference = execute(store, store.create_run(spec).id)

    real_step, calls = training.optimizer_step, []

    def stop_at_third_step(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RunCancelled()
        return real_step(*args)

    monkeypatch.setattr(training, "optimizer_step", stop_at_third_step)
    run = execute(store, store.create_run(spec).id)
    assert run.status == "cancelled"
    assert load_state(Path(store.artifact(run.id, "checkpoint")["path"])).step == 2
    assert [s for s, _ in store.metric_series(run.id, "loss")] == [1, 2]

    monkeypatch.setattr(training, "optimizer_step", real_step)
    run = execute(store, run.id, resume=True)
    assert run.status == "completed"
    assert [s for s, _ in store.metric_series(run.id, "loss")] == [1, 2, 3, 4, 5, 6]
    resumed = _adapter_weights(Path(store.artifact(run.id, "adapter")["path"]))
    uninterrupted = _adapter_weights(Path(store.artifact(reference.id, "adapter")["path"]))
    for name, tensor in uninterrupted.items():
        assert torch.allclose(tensor, resumed[name], atol=1e-6), name


def _reasoning_rows(n: int) -> list[list]:
    task = get_task("unit_conversion")
    return [[ex.question, ex.answer, task.completion(ex, "cot")] for ex in task.load("train")[:n]]


def test_rft_trains_on_a_json_file_of_reasoning(tiny_model_dir, db_path, tmp_path):
    data = tmp_path / "rft.json"
    data.write_text(json.dumps(_reasoning_rows(8)))
    assert main(["rft", "--model", tiny_model_dir, "--data", str(data), *FAST, "--epochs", "1"]) == 0
    store = RunStore(db_path)
    run = store.list_runs()[0]
    assert run.summary["train_examples"] == 8 and store.artifact(run.id, "adapter")


def _rollout_run(store: RunStore, rows: list[list], correct: bool):
    run = store.create_run(RunSpec(kind="rollout", num_samples=2))
    samples = [
        {"idx": i, "sample": j, "question": q, "target": a, "output": reasoning, "answer": a, "correct": correct}
        for i, (q, a, reasoning) in enumerate(rows)
        for j in range(2)  # the same text twice: deduplicated
    ]
    store.add_samples(run.id, samples)
    store.mark_finished(run.id, "completed")
    return run


def test_rft_trains_on_a_rollout_runs_correct_samples(tiny_model_dir, db_path):
    store = RunStore(db_path)
    rollout = _rollout_run(store, _reasoning_rows(6), correct=True)
    assert main(["rft", "--model", tiny_model_dir, "--data", str(rollout.id), *FAST, "--epochs", "1"]) == 0
    run = store.list_runs()[0]
    assert run.parent_id == rollout.id and run.summary["train_examples"] == 6


@pytest.mark.parametrize(
    "data, message",
    [
        ("/nonexistent/rft.json", "neither a run id nor an existing path"),
        ("no-correct", "no correct samples"),
        ("not-a-rollout", "not a rollout"),
        ("", "rft needs --data"),
    ],
)
def test_bad_rft_data_is_a_one_line_error(tiny_model_dir, db_path, data, message):
    store = RunStore(db_path)
    if data == "no-correct":
        data = str(_rollout_run(store, _reasoning_rows(2), correct=False).id)
    elif data == "not-a-rollout":
        data = str(store.create_run(RunSpec(kind="sft")).id)
    run = store.create_run(RunSpec(kind="rft", model=tiny_model_dir, data=data))
    with pytest.raises(ReasonlabError, match=message):
        execute(store, run.id)
    assert store.get_run(run.id).status == "failed"


def test_training_plan_is_deterministic_and_covers_every_row():
    lengths = [5, 9, 3, 7, 1, 8, 2, 6, 4, 10]
    plan = training.training_plan(lengths, batch_size=3, grad_accum=2, epochs=2, seed=1)
    assert plan == training.training_plan(lengths, batch_size=3, grad_accum=2, epochs=2, seed=1)
    per_epoch = len(plan) // 2
    for epoch in (plan[:per_epoch], plan[per_epoch:]):
        assert sorted(i for step in epoch for batch in step for i in batch) == list(range(10))


def test_training_plan_cuts_batches_from_length_sorted_windows():
    """Each window of BUCKET_BATCHES batches is sorted by length before it is cut, so a batch
    holds rows of neighbouring lengths; every window's rows are trained on."""
    rng = random.Random(0)
    batch_size = 3
    window = batch_size * training.BUCKET_BATCHES
    lengths = rng.sample(range(1000), 3 * window)
    plan = training.training_plan(lengths, batch_size=batch_size, grad_accum=1, epochs=1, seed=2)
    assert sorted(i for (batch,) in plan for i in batch) == list(range(len(lengths)))
    order = random.Random("2:0")  # the epoch's shuffle, as training_plan draws it
    shuffled = list(range(len(lengths)))
    order.shuffle(shuffled)
    expected = set()
    for start in range(0, len(shuffled), window):
        part = sorted(shuffled[start : start + window], key=lambda i: lengths[i])
        expected |= {tuple(part[i : i + batch_size]) for i in range(0, window, batch_size)}
    assert {tuple(batch) for (batch,) in plan} == expected


def test_the_shared_prefix_stops_before_every_rows_last_prompt_token_and_is_worth_a_pass():
    shortest = training.MIN_SHARED_PREFIX

    def rows(shared: int, prompt_lens: tuple[int, ...]) -> list[training.Encoded]:
        return [training.Encoded([7] * shared + [b] * 40, n) for b, n in enumerate(prompt_lens)]

    assert training.shared_prefix_length(rows(shortest + 4, (30, 40))) == shortest + 4
    assert training.shared_prefix_length(rows(40, (shortest + 6, 50))) == shortest + 5
    assert training.shared_prefix_length(rows(shortest, (30, 30))) == shortest
    assert training.shared_prefix_length(rows(shortest - 1, (30, 30))) == 0


def _lora_model(tiny_model_dir):
    """The tiny model with a LoRA adapter whose A and B are both random (peft starts B at zero,
    which would leave A without gradient)."""
    from peft import LoraConfig, get_peft_model

    from engine.model import load_model

    loaded = load_model(tiny_model_dir, dtype="float32")  # the comparisons' tolerances are float32's
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    return get_peft_model(loaded.model, config), loaded.tokenizer


def _reference_loss(model, tokenizer, task, examples, mode: str) -> torch.Tensor:
    """Summed cross-entropy over each example's completion and EOS, one example at a time with
    the model's own labels path: prompt positions are masked with -100."""
    total = torch.zeros(())
    for ex in examples:
        prompt = tokenizer(task.prompt(ex.question, mode, tokenizer), add_special_tokens=False)["input_ids"]
        completion = tokenizer(task.completion(ex, mode), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = torch.tensor([prompt + completion])
        labels = torch.tensor([[-100] * len(prompt) + completion])
        total = total + model(input_ids=ids, labels=labels).loss * len(completion)  # the loss is a mean
    return total


@pytest.mark.parametrize("mode", ["direct", "cot"])
def test_batch_loss_is_the_completion_and_eos_cross_entropy(tiny_model_dir, mode):
    model, tokenizer = _lora_model(tiny_model_dir)
    task = get_task("unit_conversion")
    examples = task.load("train")[:5]
    encoded = training.encode(tokenizer, task, examples, mode)
    prefix = training.shared_prefix_length(encoded)
    with torch.no_grad():
        expected = _reference_loss(model, tokenizer, task, examples, mode)
        assert torch.allclose(training.batch_loss(model, encoded, 0, tokenizer.pad_token_id), expected, rtol=1e-5)
        assert torch.allclose(training.batch_loss(model, encoded, prefix, tokenizer.pad_token_id), expected, rtol=1e-5)
    assert (prefix > training.MIN_SHARED_PREFIX) == (mode == "cot")


def test_lora_gradients_are_the_same_with_and_without_the_shared_prefix(tiny_model_dir):
    """The shared start runs once with its cache repeated across the batch; gradients must flow
    through it exactly as through full sequences."""
    model, tokenizer = _lora_model(tiny_model_dir)
    task = get_task("unit_conversion")
    encoded = training.encode(tokenizer, task, task.load("train")[:4], "cot")
    prefix = training.shared_prefix_length(encoded)
    assert prefix > training.MIN_SHARED_PREFIX
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}

    def gradients(prefix_len: int) -> dict[str, torch.Tensor]:
        model.zero_grad()
        training.batch_loss(model, encoded, prefix_len, tokenizer.pad_token_id).backward()
        return {name: p.grad.clone() for name, p in params.items()}

    shared, full = gradients(prefix), gradients(0)
    assert all(g.abs().sum() > 0 for g in full.values())
    for name, grad in full.items():
        assert (shared[name] - grad).norm() <= 1e-4 * grad.norm(), name  # float32 rounding differs elementwise


def test_an_optimizer_step_takes_the_mean_token_gradient_of_all_its_micro_batches(tiny_model_dir):
    """Micro-batches only bound memory: the step, its reported loss and gradient norm are those
    of one batch of all their rows, divided by the step's completion tokens."""
    model, tokenizer = _lora_model(tiny_model_dir)
    task = get_task("unit_conversion")
    encoded = training.encode(tokenizer, task, task.load("train")[:3], "direct")
    pad = tokenizer.pad_token_id
    params = [p for p in model.parameters() if p.requires_grad]
    tokens = sum(e.completion_len for e in encoded)
    whole = training.batch_loss(model, encoded, 0, pad) / tokens
    whole.backward()
    gradient = [p.grad.clone() for p in params]
    norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in gradient])).item()
    before = [p.detach().clone() for p in params]
    model.zero_grad(set_to_none=True)
    optimizer = torch.optim.SGD(params, lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    loss, grad_norm = training.optimizer_step(model, params, optimizer, scheduler, encoded, [[0, 2], [1]], 0, pad)
    assert loss == pytest.approx(whole.item(), rel=1e-5) and grad_norm == pytest.approx(norm, rel=1e-4)
    clip = min(1.0, training.MAX_GRAD_NORM / norm)
    for old, new, grad in zip(before, params, gradient):
        assert torch.allclose(new.detach(), old - 0.1 * clip * grad, atol=1e-6)
    assert optimizer.param_groups[0]["lr"] == 0.05  # the scheduler stepped once
    assert all(p.grad is None for p in params)  # the next step starts from no gradient


@pytest.mark.parametrize("kind", ["sft", "rollout"])
@pytest.mark.parametrize("by_path", [False, True])
def test_valid_questions_never_enter_training_or_rollouts(tiny_model_dir, db_path, kind, by_path):
    from engine.core.dataset_files import data_dir

    store = RunStore(db_path)
    dataset = str(data_dir() / "valid.json") if by_path else "valid"
    run = store.create_run(RunSpec(kind=kind, model=tiny_model_dir, dataset=dataset))
    with pytest.raises(ReasonlabError, match="valid"):
        execute(store, run.id)


def test_rft_refuses_a_json_file_of_valid_questions(capsys, tiny_model_dir, db_path, tmp_path):
    """Valid questions never enter training, even as well-formed RFT rows in a file."""
    task = get_task("unit_conversion")
    data = tmp_path / "rft.json"
    rows = _reasoning_rows(3) + [[ex.question, ex.answer, task.completion(ex, "cot")] for ex in task.load("valid")[:1]]
    data.write_text(json.dumps(rows))
    assert main(["rft", "--model", tiny_model_dir, "--data", str(data), *FAST, "--epochs", "1"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "1 of the questions are valid questions" in errors[0]
    run = RunStore(db_path).list_runs()[0]
    assert run.status == "failed" and RunStore(db_path).artifact(run.id, "adapter") is None

