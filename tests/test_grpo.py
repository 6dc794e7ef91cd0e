"""GRPO: the loss against a hand computation, learning on the tiny model, resume after a stop
and after kill -9."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine import grpo, tasks
from engine.checkpoint import load_state
from engine.core.errors import ReasonlabError, RunCancelled
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.runner import execute
from engine.tasks.unit_conversion import UnitConversionTask


def test_loss_and_gradient_equal_a_hand_computation():
    """Two completions, the second one token shorter (its last column is padding). Row 0 has
    advantage +1, row 1 -0.5; the ratios r = exp(logp - old) are chosen so that row 0 token 1
    (r = 1.5 > 1 + eps_high, A > 0) and row 1 token 0 (r = 0.7 < 1 - eps, A < 0) are clipped."""
    eps, eps_high, beta = 0.2, 0.28, 0.1
    ratios = [[1.0, 1.5, 0.5], [0.7, 1.1, 1.0]]
    logp_values = [[-1.0, -0.5, -2.0], [-1.2, -0.3, 9.9]]  # 9.9 sits in the padding
    ref_values = [[-1.1, -0.4, -1.5], [-1.0, -0.6, 0.0]]
    logp = torch.tensor(logp_values, dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[lp - math.log(r) for lp, r in zip(a, b)] for a, b in zip(logp_values, ratios)], dtype=torch.float64)
    ref = torch.tensor(ref_values, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    advantages = torch.tensor([1.0, -0.5], dtype=torch.float64)

    loss, sums = grpo.grpo_loss(
        logp, old, advantages, mask, eps_low=eps, eps_high=eps_high, tokens=5, beta=beta, ref_logp=ref
    )
    loss.backward()

    # -min(r A, clip(r, 0.8, 1.28) A) per token, written out:
    policy = [
        [-1.0 * 1.0, -1.28 * 1.0, -0.5 * 1.0],  # row 0: r = 1, clipped at 1.28, 0.5 (clip would give 0.8)
        [0.8 * 0.5, 1.1 * 0.5],  # row 1: clipped at 0.8 (-0.4 < -0.35), unclipped -0.55
    ]
    # d/dlogp: -r A where the unclipped term is the minimum, 0 where the clipped one is.
    policy_grad = [[-1.0, 0.0, -0.5], [0.0, 0.55]]

    def kl(i, t):  # k3 estimator: exp(ref - logp) - (ref - logp) - 1
        d = ref_values[i][t] - logp_values[i][t]
        return math.exp(d) - d - 1

    def kl_grad(i, t):
        return 1 - math.exp(ref_values[i][t] - logp_values[i][t])

    tokens = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    expected = sum(policy[i][t] + beta * kl(i, t) for i, t in tokens) / 5
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    expected_grad = torch.zeros(2, 3, dtype=torch.float64)
    for i, t in tokens:
        expected_grad[i, t] = (policy_grad[i][t] + beta * kl_grad(i, t)) / 5
    assert torch.allclose(logp.grad, expected_grad, atol=1e-12)
    assert sums["clipped"] == 2
    assert sums["kl"] == pytest.approx(sum(kl(i, t) for i, t in tokens))


def test_advantages_are_reward_minus_group_mean_and_optionally_scaled():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    assert grpo.group_advantages(rewards, scale=False).tolist() == [[0.5, -0.5, -0.5, 0.5], [0.0] * 4]
    std = math.sqrt(1 / 3)  # the unbiased std of 1, 0, 0, 1
    scaled = grpo.group_advantages(rewards, scale=True)
    assert torch.allclose(scaled[0], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std + grpo.STD_EPS))
    assert scaled[1].tolist() == [0.0] * 4


def test_question_batches_cover_every_question_once_per_pass():
    steps = [grpo.question_batch(step, 10, 4, seed=3) for step in range(5)]  # 20 positions: 2 passes
    stream = [i for batch in steps for i in batch]
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
    assert steps == [grpo.question_batch(step, 10, 4, seed=3) for step in range(5)]


@pytest.mark.parametrize(
    ("dynamic_filter", "mask_truncated", "kept"),
    [("off", "off", [0, 1, 2, 3, 4, 5]), ("on", "off", [0, 1, 2]), ("on", "on", [0, 2]), ("off", "on", [0, 2, 3, 5])],
)
def test_trained_rows_leave_out_equal_groups_and_truncated_completions(dynamic_filter, mask_truncated, kept):
    """Two groups of three: rewards (1, 0, 0) carry signal, (1, 1, 1) none; rows 1 and 4 were cut."""
    from engine.generation import Completion
    from engine.training import Encoded

    truncated = [False, True, False, False, True, False]
    sampled = grpo.Sampled(
        rows=[Encoded([1, 2, 3, 4], 2)] * 6,
        completions=[Completion("x", 2, (3, 4), cut) for cut in truncated],
        rewards=torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]),
        advantages=torch.zeros(2, 3),
        seconds=1.0,
    )
    spec = RunSpec(kind="grpo", group_size=3, dynamic_filter=dynamic_filter, mask_truncated=mask_truncated)
    assert grpo.trained_rows(sampled, spec) == kept


def _first_token_task(model_dir: str):
    """A task rewarding completions whose first token is in the half of the vocabulary the
    untrained model finds least likely after a cot prompt: its reward starts near 0 and only
    moving probability mass (the learnable behaviour) raises it. The reward sees text, so a
    text that both halves can decode to earns nothing."""
    from engine.model import load_model

    loaded = load_model(model_dir)
    tokenizer, base = loaded.tokenizer, UnitConversionTask()
    prompt = base.prompt(base.load("train")[0].question, "cot", tokenizer)
    with torch.no_grad():
        logits = loaded.model(**tokenizer(prompt, return_tensors="pt", add_special_tokens=False)).logits[0, -1]
    unlikely = (logits < logits.median()).tolist()
    halves: dict[str, set[bool]] = {}
    for token, side in enumerate(unlikely):
        halves.setdefault(tokenizer.decode([token], skip_special_tokens=True), set()).add(side)
    rewarded = {text for text, sides in halves.items() if sides == {True}}

    class FirstTokenTask(UnitConversionTask):
        name = "first_token"

        def reward(self, example, output: str) -> float:
            return float(output in rewarded)

    return FirstTokenTask


def _grpo_spec(model: str, **changes) -> RunSpec:
    values = dict(
        kind="grpo", model=model, steps=6, questions_per_step=2, group_size=4, max_new_tokens=3,
        eval_interval=0, eval_limit=1, log_interval=1, checkpoint_interval=0, batch_size=8, format_reward=0.1,
        dynamic_filter="off",
    )
    return RunSpec(**values | changes)


def test_grpo_raises_a_learnable_reward(untrained_tiny_model_dir, db_path, monkeypatch):
    tiny_model_dir = untrained_tiny_model_dir  # the trained one already puts its mass on digits
    monkeypatch.setitem(tasks.TASKS, "first_token", _first_token_task(tiny_model_dir))
    store = RunStore(db_path)
    # One sampled token is all the reward looks at; a low temperature lets the tiny model's
    # small logits (random 64-wide embeddings) concentrate.
    spec = _grpo_spec(
        tiny_model_dir, task="first_token", steps=20, questions_per_step=4, group_size=8, max_new_tokens=1,
        temperature=0.1, learning_rate=1e-2, lr_schedule="constant", warmup_ratio=0.0, batch_size=32,
        format_reward=0.0, dynamic_filter="on",
    )
    run = execute(store, store.create_run(spec).id)
    assert run.status == "completed"
    rewards = [value for _, value in store.metric_series(run.id, "reward_mean")]
    assert len(rewards) == 20
    start, end = sum(rewards[:2]) / 2, sum(rewards[-5:]) / 5
    assert start < 0.3 and end > start + 0.4, rewards
    assert {"kl", "clip_ratio", "entropy", "frac_reward_zero_std", "tokens_per_s", "step_time", "accuracy"} <= set(
        store.metric_names(run.id)
    )


def test_grpo_logs_its_metrics_and_saves_an_adapter(tiny_model_dir, db_path):
    store = RunStore(db_path)
    run = execute(store, store.create_run(_grpo_spec(tiny_model_dir, steps=2, mu=2, beta=0.1)).id)
    assert run.status == "completed"
    names = set(store.metric_names(run.id))
    assert {
        "reward_mean", "reward_std", "frac_reward_zero_std", "completion_length_mean", "completion_length_max",
        "truncated_ratio", "clip_ratio", "kl", "entropy", "tokens_per_s", "step_time", "lr", "grad_norm",
        "accuracy", "adapter_mb",
    } <= names
    assert [s for s, _ in store.metric_series(run.id, "reward_mean")] == [1, 2]
    assert store.metric_series(run.id, "completion_length_max")[0][1] <= 3
    assert store.artifact(run.id, "adapter")


def test_greedy_grpo_is_refused_in_one_line(tiny_model_dir, db_path):
    store = RunStore(db_path)
    run = store.create_run(_grpo_spec(tiny_model_dir, temperature=0.0))
    with pytest.raises(ReasonlabError, match="temperature"):
        execute(store, run.id)
    assert store.get_run(run.id).status == "failed"


def _adapter_weights(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "adapter_model.safetensors"))


def test_cancelled_grpo_resumes_its_step_count_and_samples(tiny_model_dir, db_path, monkeypatch):
    store = RunStore(db_path)
    spec = _grpo_spec(tiny_model_dir, learning_rate=1e-2)
    reference = execute(store, store.create_run(spec).id)

    real_step, calls = grpo.grpo_step, []

    def stop_at_fourth_step(*args):
        calls.append(1)
        if len(calls) == 4:
            raise RunCancelled()
        return real_step(*args)

    monkeypatch.setattr(grpo, "grpo_step", stop_at_fourth_step)
    run = execute(store, store.create_run(spec).id)
    assert run.status == "cancelled"
    assert load_state(Path(store.artifact(run.id, "checkpoint")["path"])).step == 3

    monkeypatch.setattr(grpo, "grpo_step", real_step)
    run = execute(store, run.id, resume=True)
    assert run.status == "completed"
    assert [s for s, _ in store.metric_series(run.id, "reward_mean")] == [1, 2, 3, 4, 5, 6]
    # The same questions, samples and updates as the run that was never stopped.
    assert store.metric_series(run.id, "reward_mean") == store.metric_series(reference.id, "reward_mean")
    resumed = _adapter_weights(store.artifact(run.id, "adapter")["path"])
    for name, tensor in _adapter_weights(store.artifact(reference.id, "adapter")["path"]).items():
        assert torch.allclose(tensor, resumed[name], atol=1e-6), name


def test_grpo_killed_with_sigkill_resumes_from_its_checkpoint(tiny_model_dir, db_path):
    """A real kill -9 after the step-4 checkpoint, once later steps were logged: resume redoes
    them from the checkpoint and the step count goes on, each step logged once."""
    store = RunStore(db_path)
    run = store.create_run(_grpo_spec(tiny_model_dir, steps=8, checkpoint_interval=4))
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "engine", "start", str(run.id), "--db", str(db_path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def logged_steps() -> list[int]:
        return [s for s, _ in store.metric_series(run.id, "reward_mean")]

    deadline = time.monotonic() + 120
    while max(logged_steps(), default=0) < 5 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert store.get_run(run.id).status == "running", "the child finished before it could be killed"
    assert load_state(Path(store.artifact(run.id, "checkpoint")["path"])).step == 4
    assert max(logged_steps()) >= 5  # steps past the checkpoint were logged, and will be redone
    assert store.reap_dead_runs() == [run.id]
    run = execute(store, run.id, resume=True)
    assert run.status == "completed" and (run.progress_done, run.progress_total) == (8, 8)
    assert logged_steps() == list(range(1, 9))


def _random_adapter(model_dir: str, folder: Path) -> Path:
    """A LoRA adapter whose B matrices are not zero, so it moves the tiny model's distribution."""
    from peft import LoraConfig, get_peft_model

    from engine.model import load_model

    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    model = get_peft_model(load_model(model_dir).model, config)
    model.peft_config["default"].base_model_name_or_path = model_dir
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def _last_logprobs(model, tokenizer) -> torch.Tensor:
    ids = tokenizer("12 km in m", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return torch.log_softmax(model(**ids).logits[0, -1].float(), dim=-1)


def _kl(p_log: torch.Tensor, q_log: torch.Tensor) -> float:
    return (p_log.exp() * (p_log - q_log)).sum().item()


def test_the_reference_of_a_run_with_a_starting_adapter_is_that_adapter_not_the_base(tiny_model_dir, tmp_path):
    from engine.model import load_model

    start = _random_adapter(tiny_model_dir, tmp_path / "start")
    loaded = load_model(tiny_model_dir, adapter=start, trainable_adapter=True)
    trained = [p for p in loaded.model.parameters() if p.requires_grad]
    loaded.model.load_adapter(str(start), adapter_name=grpo.REFERENCE, is_trainable=False, torch_device="cpu")
    assert [p for p in loaded.model.parameters() if p.requires_grad] == trained  # the reference stays frozen

    policy = _last_logprobs(loaded.model, loaded.tokenizer)
    with grpo.reference_policy(loaded.model):
        reference = _last_logprobs(loaded.model, loaded.tokenizer)
    with loaded.model.disable_adapter():
        base = _last_logprobs(loaded.model, loaded.tokenizer)
    assert _kl(policy, reference) < 1e-6
    assert _kl(policy, base) > 1e-2  # what the reference was before: the base model
    assert loaded.model.active_adapter == "default"
    assert [p for p in loaded.model.parameters() if p.requires_grad] == trained


def test_grpo_from_a_starting_adapter_has_zero_kl_at_step_1_and_saves_only_the_trained_adapter(
    untrained_tiny_model_dir, db_path, tmp_path, monkeypatch
):
    from engine.model import load_model

    model_dir = untrained_tiny_model_dir
    monkeypatch.setitem(tasks.TASKS, "first_token", _first_token_task(model_dir))
    start = _random_adapter(model_dir, tmp_path / "start")
    store = RunStore(db_path)
    spec = _grpo_spec(
        model_dir, task="first_token", adapter=str(start), steps=3, group_size=8, max_new_tokens=1,
        learning_rate=1e-2, lr_schedule="constant", warmup_ratio=0.0, beta=0.1, format_reward=0.0,
    )
    run = execute(store, store.create_run(spec).id)
    assert run.status == "completed"
    kl = [value for _, value in store.metric_series(run.id, "kl")]
    assert len(kl) == 3
    assert abs(kl[0]) < 1e-6  # step 1: the policy is the starting adapter, which is the reference
    assert kl[-1] > 1e-6  # later steps move away from it

    saved = Path(store.artifact(run.id, "adapter")["path"])
    assert not (saved / grpo.REFERENCE).exists()
    weights, started = _adapter_weights(saved), _adapter_weights(start)
    assert weights.keys() == started.keys()
    assert any(not torch.allclose(weights[name], started[name]) for name in weights)
    on_base = load_model(model_dir, adapter=saved)  # loads on the base model alone
    assert list(on_base.model.peft_config) == ["default"]


def test_loss_passes_keep_rows_in_order_within_the_token_and_row_caps(monkeypatch):
    from engine.training import Encoded

    monkeypatch.setattr(grpo, "LOSS_PASS_TOKENS", 100)
    prefix = list(range(20))  # 20 tokens every row shares (the chat template and instructions)
    rows = [Encoded(prefix + [1] * width, 21) for width in (30, 30, 30, 60, 120, 10, 10)]
    # Widths past the prefix: 30, 30, 30 fit 3 x 30 = 90; 60 does not join them (4 x 60 > 100);
    # 120 is over the cap alone, so it is a pass of its own; 10 and 10 fit the max_rows cap of 3.
    assert grpo.loss_passes(rows, [0, 1, 2, 3, 4, 5, 6], max_rows=3) == [[0, 1, 2], [3], [4], [5, 6]]
    assert grpo.loss_passes(rows, [0, 1, 2], max_rows=2) == [[0, 1], [2]]
    assert grpo.loss_passes(rows, [], max_rows=8) == []


def test_splitting_the_loss_into_passes_leaves_the_trained_adapter_the_same(untrained_tiny_model_dir, db_path, monkeypatch):
    """The loss divides by the whole step's token count, so its gradient, summed over passes,
    is the one-pass gradient: the passes bound memory without changing what is learnt."""
    monkeypatch.setitem(tasks.TASKS, "first_token", _first_token_task(untrained_tiny_model_dir))
    store = RunStore(db_path)
    spec = _grpo_spec(  # rewards that differ within groups, so the gradient is not zero
        untrained_tiny_model_dir, task="first_token", steps=2, max_new_tokens=1, batch_size=8, learning_rate=1e-2,
        format_reward=0.0, dtype="float32",  # bf16 rounds each pass's sums apart by 4e-4 on a CPU with AMX
    )
    adapters, norms = {}, {}  # AdamW hides a gradient's scale from the weights; its norm shows it
    real = grpo.loss_passes
    for tokens in (10_000, 8):  # every row in one pass; a row, or a few short ones, per pass
        monkeypatch.setattr(grpo, "LOSS_PASS_TOKENS", tokens)
        passes = []
        monkeypatch.setattr(grpo, "loss_passes", lambda *a, **k: passes.append(real(*a, **k)) or passes[-1])
        run = execute(store, store.create_run(spec).id)
        assert run.status == "completed"
        adapters[tokens] = _adapter_weights(Path(store.artifact(run.id, "adapter")["path"]))
        norms[tokens] = [value for _, value in store.metric_series(run.id, "grad_norm")]
        counts = [len(p) for p in passes]
        assert counts == [1, 1] if tokens == 10_000 else min(counts) > 1, counts
    assert len(norms[8]) == 2 and min(norms[8]) > 0 and norms[8] == pytest.approx(norms[10_000], rel=1e-5)
    weights = adapters[10_000]
    assert any(weights[name].abs().max() > 0 for name in weights)
    # The sums run in another order, and AdamW turns a gradient near 0 into a step of up to lr
    # whatever its rounding, so the weights agree to about 1e-4 where two steps at lr 1e-2 move them 2e-2.
    for name in weights:
        assert torch.allclose(weights[name], adapters[8][name], atol=5e-4), name
