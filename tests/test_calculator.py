"""The calculator reasoning format: the chain hands its one calculation to a calculator, the
calculator takes arithmetic and nothing else, and generation pauses at each call, appends the
result and goes on (engine.tool_generation)."""

from __future__ import annotations

import pytest

from engine import tool_generation
from engine.core.errors import SpecError
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.generation import STOP, Completion, Sampling, generate
from engine.model import load_model
from engine.runner import execute
from engine.scoring import is_correct, parse_answer
from engine.tasks import get_task
from engine.tasks.calculator import CALL_END, CalculatorError, calculate, evaluate_expression
from engine.tasks.unit_conversion import calculator_reasoning
from engine.tasks.base import Example
from engine.tool_generation import MAX_CALLS, generate_with_calculator
from tests.steering import steer


@pytest.mark.parametrize(
    "expression, value",
    [("9 * 946.353", 8517.177), ("90 / 60", 1.5), ("168,000 * 0.001", 168.0), ("-(2 + 3) * 4", -20.0), ("1e3 / 8", 125.0)],
)
def test_the_calculator_does_arithmetic(expression, value):
    assert evaluate_expression(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('true')", "x * 2", "2 ** 999999", "abs(-1)", "1 / 0", "1e308 * 1e308", "", "1 +",
     "[1, 2]", "True + 1", "'a' * 3", "1" * 81],
)
def test_the_calculator_refuses_anything_but_arithmetic(expression):
    with pytest.raises(CalculatorError):
        evaluate_expression(expression)


def test_calculate_appends_the_result_of_the_last_call():
    assert calculate("1 kg = 1000 g. <<12 * 1000>>") == " = 12000"
    assert calculate("<<1 + 1>> = 2. <<3 * 946.353>>") == " = 2839.06"
    assert calculate("<<import os>>") == " = error"
    assert calculate("no call at all>>") == " = error"


@pytest.mark.parametrize("split", ["train", "broad", "shifted"])
def test_every_chain_makes_one_call_whose_result_is_a_correct_answer(split):
    for example in get_task("unit_conversion").load(split)[:400]:
        chain = calculator_reasoning(example)
        assert chain.count("<<") == chain.count(CALL_END) == 1, chain
        call_end = chain.index(CALL_END) + len(CALL_END)
        result = calculate(chain[:call_end])
        assert chain[call_end:].startswith(result + ". <answer>"), chain
        assert is_correct(parse_answer(chain), example.answer), chain


def test_worked_examples_show_the_calculator():
    task = get_task("unit_conversion", "calculator")
    assert task.calculator and not get_task("unit_conversion").calculator
    assert task.worked_examples[0][1] == "1 kg = 1000 g. <<12 * 1000>> = 12000. <answer>12000</answer>"
    assert calculator_reasoning(Example("What is 90 seconds in minutes?", 1.5)) == (
        "1 min = 60 s. <<90 / 60>> = 1.5. <answer>1.5</answer>"
    )


def test_grpo_with_the_calculator_is_refused_in_one_line():
    with pytest.raises(SpecError, match="reasoning: GRPO trains on the tokens the model wrote"):
        RunSpec(kind="grpo", reasoning="calculator")
    with pytest.raises(SpecError, match="reasoning"):
        RunSpec(kind="pipeline", reasoning="calculator", grpo_steps=2)
    assert RunSpec(kind="pipeline", reasoning="calculator").reasoning == "calculator"


class ScriptedGenerate:
    """Stands in for `generate`: each prompt's continuation comes from `script(prompt)`, and
    every call is recorded, so the loop's prompts, stops, budgets and keys can be checked."""

    def __init__(self, script):
        self.script = script
        self.calls = []

    def __call__(self, model, tokenizer, prompts, sampling, *, num_return_sequences=1, batch_size=16, stop=STOP, keys=None):
        self.calls.append({"prompts": list(prompts), "stop": stop, "budget": sampling.max_new_tokens, "keys": keys, "seed": sampling.seed})
        return [
            [Completion(text, tokens) for text, tokens in (self.script(p, j) for j in range(num_return_sequences))]
            for p in prompts
        ]


def test_generation_pauses_at_a_call_appends_the_result_and_goes_on(monkeypatch):
    def script(prompt, sample):
        if prompt.endswith("Q2:"):
            return "I know: <answer>7</answer>", 6
        if prompt.endswith(":"):
            return f"1 kg = 1000 g. <<{sample + 2} * 1000>>", 10
        return ". <answer>?</answer>", 5

    scripted = ScriptedGenerate(script)
    monkeypatch.setattr(tool_generation, "generate", scripted)
    result = generate_with_calculator(None, None, ["Q1:", "Q2:"], Sampling(40, seed=3), num_return_sequences=2, keys=[10, 20])
    assert [[c.text for c in samples] for samples in result] == [
        ["1 kg = 1000 g. <<2 * 1000>> = 2000. <answer>?</answer>", "1 kg = 1000 g. <<3 * 1000>> = 3000. <answer>?</answer>"],
        ["I know: <answer>7</answer>", "I know: <answer>7</answer>"],
    ]
    assert [[c.tokens for c in samples] for samples in result] == [[15, 15], [6, 6]]
    first, second = scripted.calls
    assert first["stop"] == (STOP, CALL_END)
    # Only the paused rows go on, each from its own text, keyed by (question, sample), budget left.
    assert second["prompts"] == ["Q1:1 kg = 1000 g. <<2 * 1000>> = 2000", "Q1:1 kg = 1000 g. <<3 * 1000>> = 3000"]
    assert second["keys"] == [20, 21] and second["budget"] == 30 and second["seed"] == 4


def test_a_model_that_keeps_calling_stops_after_max_calls(monkeypatch):
    scripted = ScriptedGenerate(lambda prompt, sample: ("<<1 + 1>>", 3))
    monkeypatch.setattr(tool_generation, "generate", scripted)
    (completion,), = generate_with_calculator(None, None, ["Q:"], Sampling(100))
    assert completion.text == "<<1 + 1>> = 2" * MAX_CALLS + "<<1 + 1>>"
    assert len(scripted.calls) == MAX_CALLS + 1
    assert scripted.calls[-1]["stop"] == STOP  # the last segment may not call again


def test_the_budget_counts_every_segment(monkeypatch):
    scripted = ScriptedGenerate(lambda prompt, sample: ("<<1 + 1>>", 8))
    monkeypatch.setattr(tool_generation, "generate", scripted)
    (completion,), = generate_with_calculator(None, None, ["Q:"], Sampling(16))
    assert completion.tokens == 16 and completion.truncated
    assert len(scripted.calls) == 2  # 8 + 8 tokens: no budget left for a third segment


def test_on_a_real_model_the_continuation_starts_from_the_calculators_result(tiny_model_dir, monkeypatch):
    """The tiny model is steered to write a call; from the result on it writes what plain
    generation writes for the prompt followed by the call and its result."""
    loaded = load_model(tiny_model_dir)
    tok = loaded.tokenizer
    forced = steer(loaded, monkeypatch, "<<2*3>>")["tokens"]
    prompt = "4321"  # without the "=" of a reversal prompt, the tiny model writes on after the result
    (completion,), = generate_with_calculator(loaded.model, tok, [prompt], Sampling(20))
    (plain,), = generate(loaded.model, tok, [prompt + "<<2*3>> = 6"], Sampling(20 - forced))
    assert plain.tokens > 0
    assert completion.text == "<<2*3>> = 6" + plain.text
    assert completion.tokens == forced + plain.tokens


def test_eval_with_the_calculator_stores_its_prompt_format(tiny_model_dir, db_path):
    store = RunStore(db_path)
    spec = RunSpec(kind="eval", model=tiny_model_dir, mode="cot", reasoning="calculator", limit=2, max_new_tokens=8)
    run = execute(store, store.create_run(spec).id)
    assert run.status == "completed" and len(store.samples(run.id)) == 2
    assert store.get_run(run.id).spec.reasoning == "calculator"
