"""Checking every step of a partials chain: what the 'steps' reward, the rollouts' 'steps' filter
and `steps_accuracy` rest on. The checker allows 5%, so a wrong low digit passes it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given

from engine import rollout
from engine.cli import main
from engine.core.errors import ReasonlabError
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.evaluation import steps_accuracy
from engine.grpo import reward
from engine.runner import execute
from engine.scoring import is_correct
from engine.tasks import get_task
from engine.tasks.base import Example, task_reward
from engine.tasks.scratchpad import steps_exact
from engine.tasks.unit_conversion import MAX_ANSWER, SHIFTED_MIN_ANSWER, format_number, partials_reasoning
from tests.test_bad_input import _error_line
from tests.test_scratchpad import conversions

QUESTION = "Convert 38.1 yd to mm."
EXACT = partials_reasoning(Example(QUESTION, 34838.64))
# 381*4 is 1524: one wrong low digit, carried on consistently, and an answer the checker accepts.
WRONG_STEP = (
    EXACT.replace("381*4=1524.", "381*4=1520.").replace("346710+1524=348234.", "346710+1520=348230.")
    .replace("so 34823.4 mm. <answer>34823.4</answer>", "so 34823 mm. <answer>34823</answer>")
)
DIVIDING = partials_reasoning(Example("What is 90 seconds in minutes?", 1.5))


def test_a_wrong_low_digit_passes_the_checker_but_not_the_step_check():
    task = get_task("unit_conversion", "partials")
    assert is_correct(task.parse(WRONG_STEP, "cot"), 34838.64)
    assert steps_exact(EXACT) and not steps_exact(WRONG_STEP)
    example = Example(QUESTION, 34838.64)
    assert task_reward(task, example, WRONG_STEP, "cot") == 1.0
    assert task_reward(task, example, WRONG_STEP, "cot", "steps") == 0.0
    assert task_reward(task, example, EXACT, "cot", "steps") == 1.0
    assert reward(task, example, WRONG_STEP, 0.1, "steps") == pytest.approx(0.1)  # the format bonus still counts


@given(conversion=conversions())
def test_every_reference_chain_is_exact_and_any_changed_digit_after_its_calculation_is_not(conversion):
    source, target, value = conversion
    answer = float(f"{value * source.size / target.size:.12g}")
    if not (value > 0 and SHIFTED_MIN_ANSWER <= answer <= MAX_ANSWER):
        return  # outside the range broad and shifted draw from
    question = f"Convert {format_number(value)} {source.names[0][value != 1]} to {target.names[0][1]}."
    chain = partials_reasoning(Example(question, answer))
    assert steps_exact(chain), chain
    # Every digit from the first partial product on is a step's: changing any one breaks a step.
    first_step = re.search(r"\d+\*\d=", chain).start()
    for i in (i for i in range(first_step, len(chain)) if chain[i].isdigit()):
        changed = chain[:i] + str((int(chain[i]) + 1) % 10) + chain[i + 1:]
        assert not steps_exact(changed), changed


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c.replace("90 * 0.0166", "90 * 0.0175"),  # not 1 / 60 cut to 3 digits (and steps to match)
        lambda c: c.replace("9*6=54. 9*6=54. ", "9*6=54. "),  # a digit of the multiplier skipped
        lambda c: c.split(" About")[0],  # stops before the estimate
        lambda c: c.replace("1.494 min. <answer>1.494", "14.94 min. <answer>14.94"),  # the point in the wrong place
        lambda c: c.replace("<answer>1.494", "<answer>1.5"),  # an answer that is not the product
        lambda c: "I think it is 1.5 minutes. <answer>1.5</answer>",  # no worked steps at all
    ],
    ids=["wrong-inverse", "skipped-digit", "no-estimate", "decimal-point", "answer-not-product", "no-steps"],
)
def test_a_division_chain_is_exact_only_as_written(edit):
    assert steps_exact(DIVIDING)
    assert not steps_exact(edit(DIVIDING))


def test_a_rollout_with_the_steps_reward_keeps_only_exact_chains(db_path):
    store = RunStore(db_path)
    row = {"question": QUESTION, "target": 34838.64, "idx": 0, "correct": True}
    samples = [row | {"sample": 0, "output": WRONG_STEP, "answer": 34823.0}, row | {"sample": 1, "output": EXACT, "answer": 34823.4}]
    by_answer = store.create_run(RunSpec(kind="rollout"))
    by_steps = store.create_run(RunSpec(kind="rollout", reward="steps"))
    for run in (by_answer, by_steps):
        store.add_samples(run.id, samples)
    assert [e.reasoning for e in rollout.correct_examples(store, store.get_run(by_answer.id))] == [WRONG_STEP, EXACT]
    assert [e.reasoning for e in rollout.correct_examples(store, store.get_run(by_steps.id))] == [EXACT]


def test_the_steps_reward_reaches_a_pipelines_rollouts_and_grpo():
    spec = RunSpec(kind="pipeline", reward="steps", grpo_steps=1)
    assert spec.replace(kind="rollout").reward == "steps"
    assert spec.replace(kind="grpo").reward == "steps"


@pytest.mark.parametrize("kind", ["rollout", "grpo"])
def test_the_steps_reward_needs_a_format_whose_steps_are_checked(capsys, db_path, kind):
    assert main([kind, "--reasoning", "units", "--reward", "steps"]) == 1
    assert "reward: 'steps' checks the steps of partials chains, not units ones" in _error_line(capsys.readouterr().err)
    assert RunStore(db_path).list_runs() == []


def test_steps_accuracy_counts_right_answers_with_every_step_exact():
    task = get_task("unit_conversion", "partials")
    rows = [{"correct": True, "output": EXACT}, {"correct": True, "output": WRONG_STEP}, {"correct": False, "output": EXACT}]
    assert steps_accuracy(task, "cot", rows) == {"steps_accuracy": pytest.approx(1 / 3)}
    assert steps_accuracy(task, "direct", rows) == {}
    assert steps_accuracy(get_task("unit_conversion", "units"), "cot", rows) == {}


@pytest.mark.parametrize(("reasoning", "reported"), [("partials", True), ("units", False)])
def test_an_eval_reports_steps_accuracy_for_reasoning_whose_steps_are_checked(db_path, tiny_model_dir, reasoning, reported):
    store = RunStore(db_path)
    run = store.create_run(
        RunSpec(kind="eval", model=str(tiny_model_dir), dataset="valid", limit=2, mode="cot", reasoning=reasoning, max_new_tokens=4)
    )
    done = execute(store, run.id)
    assert done.status == "completed"
    assert ("steps_accuracy" in done.summary) == reported


@pytest.mark.parametrize("split", ["train", "broad", "valid", "shifted"])
def test_every_reference_chain_of_the_committed_data_is_exact(split):
    task = get_task("unit_conversion", "partials")
    examples = task.load(split)
    assert [ex.question for ex in examples if not steps_exact(task.completion(ex, "cot"))] == []


def test_rft_from_a_steps_rollout_without_exact_chains_fails_saying_so(db_path, tiny_model_dir):
    store = RunStore(db_path)
    source = store.create_run(RunSpec(kind="rollout", reward="steps"))
    store.add_samples(source.id, [{"question": QUESTION, "target": 34838.64, "idx": 0, "sample": 0, "output": WRONG_STEP,
                                   "answer": 34823.0, "correct": True}])
    run = store.create_run(RunSpec(kind="rft", model=str(tiny_model_dir), data=str(source.id)))
    expected = f"data: rollout run {source.id} has no correct samples with every step exact;"
    with pytest.raises(ReasonlabError, match=expected):
        execute(store, run.id)
    assert store.get_run(run.id).status == "failed"


def test_a_trailing_zero_of_the_multiplier_written_out_is_a_right_step():
    """'21*8=168. 21*0=0. 21*0=0.' multiplies by 800 instead of 8: longer, and still exact."""
    chain = partials_reasoning(Example("Convert 21000 kB to bits.", 168_000_000.0))
    longer = chain.replace("21*8=168. ", "21*8=168. 21*0=0. 21*0=0. 1680+0=1680. 16800+0=16800. ")
    assert steps_exact(chain) and longer != chain and steps_exact(longer)
    assert not steps_exact(longer.replace("16800+0=16800", "16800+0=16900"))
