"""The scratchpad reasoning format: every step exact, the answer always inside the checker, and
the `reasoning` setting reaching the cot prompt and the training targets."""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import training
from engine.core.errors import DataError
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.runner import execute
from engine.scoring import is_correct
from engine.tasks import get_task
from engine.tasks.base import Example
from engine.tasks.scratchpad import leading_digits, mantissa, one_digit, plain
from engine.tasks.unit_conversion import (
    BROAD_EXPONENTS,
    FAMILIES,
    MAX_ANSWER,
    REASONING,
    SHIFTED_MIN_ANSWER,
    WORKED_EXAMPLES,
    UnitConversionTask,
    format_number,
    partials_reasoning,
    scratchpad_reasoning,
)

PAIRS = [(a, b) for units in FAMILIES.values() for a in units for b in units if a is not b]
_HEAD = re.compile(r"1 (?P<source>.+?) (?P<rel>[=~]) (?P<m>\d+)e(?P<e>-?\d+) (?P<target>.+?)\.")
_VALUE = re.compile(r"(?P<v>[\d.]+) (?P<rel>[=~]) (?P<m>\d+)e(?P<e>-?\d+)\.")
_PRODUCT = re.compile(r"(\d+)\*(\d)=(\d+)\.")
_SUM = re.compile(r"(\d+)\+(\d+)=(\d+)\.")
_SHIFT = re.compile(r"(\d+)e\((-?\d+)([+-])(\d+)\) = ([\d.]+)\. <answer>([\d.]+)</answer>")


def _checked_steps(chain: str, value: float, ratio: float) -> float:
    """Read `chain` step by step, asserting each one exact and the roundings within 0.5%; returns
    its answer."""
    rest = chain
    head = _HEAD.match(rest)
    assert head, chain
    rest = rest[head.end() + 1 :]
    f_digits, f_exp = int(head["m"]), int(head["e"])
    assert len(head["m"]) <= 3 and not head["m"].endswith("0")
    assert abs(f_digits * 10.0**f_exp / ratio - 1) <= 0.005 + 1e-12
    assert (head["rel"] == "=") == (Decimal(f_digits).scaleb(f_exp) == Decimal(f"{ratio:.12g}"))
    given_value = _VALUE.match(rest)
    assert given_value, chain
    rest = rest[given_value.end() + 1 :]
    assert float(given_value["v"]) == value
    v_digits, v_exp = int(given_value["m"]), int(given_value["e"])
    assert len(given_value["m"]) <= 3 and abs(v_digits * 10.0**v_exp / value - 1) <= 0.005 + 1e-12
    partials = []
    for digit in str(f_digits):
        step = _PRODUCT.match(rest)
        assert step, chain
        rest = rest[step.end() + 1 :]
        assert (int(step[1]), step[2]) == (v_digits, digit) and int(step[3]) == v_digits * int(digit)
        partials.append(int(step[3]))
    total = partials[0]
    for partial in partials[1:]:
        step = _SUM.match(rest)
        assert step, chain
        rest = rest[step.end() + 1 :]
        assert (int(step[1]), int(step[2])) == (total * 10, partial) and int(step[3]) == total * 10 + partial
        total = int(step[3])
    shift = _SHIFT.fullmatch(rest)
    assert shift, chain
    exponent = int(shift[2]) + (1 if shift[3] == "+" else -1) * int(shift[4])
    assert (int(shift[1]), int(shift[2]), exponent) == (total, f_exp, f_exp + v_exp)
    assert shift[5] == shift[6] == plain(Decimal(total).scaleb(exponent))
    return float(shift[6])


@st.composite
def conversions(draw):
    """A unit pair and a value the way broad writes them: 0.001-1e6, at most 3 decimals."""
    source, target = draw(st.sampled_from(PAIRS))
    exponent = draw(st.floats(*BROAD_EXPONENTS))
    digits = draw(st.integers(1, 6))
    value = float(f"{round(float(f'{10**exponent:.{digits}g}'), 3):.12g}")
    return source, target, value


def test_scratchpad_examples():
    assert scratchpad_reasoning(Example("Convert 38.1 yd to mm.", 34838.64)) == (
        "1 yd ~ 914e0 mm. 38.1 = 381e-1. 381*9=3429. 381*1=381. 381*4=1524. 34290+381=34671. "
        "346710+1524=348234. 348234e(0-1) = 34823.4. <answer>34823.4</answer>"
    )
    assert scratchpad_reasoning(Example("How many grams are in 12 kg?", 12000.0)) == (
        "1 kg = 1e3 g. 12 = 12e0. 12*1=12. 12e(3+0) = 12000. <answer>12000</answer>"
    )


def test_scratchpad_refuses_a_zero_value_with_a_data_error():
    with pytest.raises(DataError, match="it converts 0"):
        scratchpad_reasoning(Example("Convert 0 km to m.", 0.0))


@pytest.mark.parametrize(
    "x, expected",
    [("914.4", (914, 0)), ("0.0166667", (167, -4)), ("1000", (1, 3)), ("9996", (1, 4)), ("0.0254", (254, -4)),
     ("1.09728", (11, -1)), ("1234.5", (123, 1))],
)
def test_mantissa(x, expected):
    assert mantissa(Decimal(x)) == expected


def test_reasoning_setting_matches_the_tasks_formats():
    choices = {f.name: f for f in dataclasses.fields(RunSpec)}["reasoning"].metadata["choices"]
    assert set(choices) == set(REASONING)
    assert RunSpec(kind="rft").reasoning == get_task("unit_conversion").reasoning == "partials"
    assert get_task("unit_conversion", "scratchpad").reasoning == "scratchpad"


def test_cot_prompt_shows_worked_examples_in_the_chosen_format():
    class JoiningTokenizer:
        def apply_chat_template(self, messages, **kwargs):
            return "\n".join(m["content"] for m in messages)

    prompt = {r: UnitConversionTask(r).prompt("Convert 5 mile to meter.", "cot", JoiningTokenizer()) for r in REASONING}
    assert all(reasoning in prompt["partials"] for _, reasoning in WORKED_EXAMPLES)
    assert "1 kg = 1000 g. 12 * 1000 = 12000. <answer>12000</answer>" in prompt["reference"]
    assert "12*1=12. 12e(3+0) = 12000. <answer>12000</answer>" in prompt["scratchpad"]
    for other in ("reference", "units", "scratchpad", "calculator"):
        assert not any(reasoning in prompt[other] for _, reasoning in WORKED_EXAMPLES)
    assert "digit by digit" in prompt["scratchpad"] and "digit by digit" not in prompt["reference"]
    assert "with its unit" in prompt["units"] and "with its unit" not in prompt["reference"]


@pytest.mark.parametrize("reasoning", ["reference", "units", "partials", "scratchpad", "calculator"])
def test_rft_trains_on_the_chosen_reasoning(tiny_model_dir, db_path, monkeypatch, reasoning):
    """RFT on rows without reasoning trains on the task's reference chains, in the format the
    run's `reasoning` setting names, and its cot prompt shows that format."""
    seen = []
    encode = training.encode

    def spy(tokenizer, task, examples, mode):
        seen.extend((task.prompt(e.question, mode, tokenizer), task.completion(e, mode)) for e in examples)
        return encode(tokenizer, task, examples, mode)

    monkeypatch.setattr(training, "encode", spy)
    store = RunStore(db_path)
    spec = RunSpec(
        kind="rft", model=tiny_model_dir, data=str(UnitConversionTask().dataset_path("broad")), limit=3, batch_size=3, epochs=1, eval_limit=1,
        eval_interval=0, checkpoint_interval=0, reasoning=reasoning,
    )
    assert execute(store, store.create_run(spec).id).status == "completed"
    broad = get_task("unit_conversion").load("broad")[:3]
    assert [completion for _, completion in seen] == [REASONING[reasoning](e) for e in broad]
    assert all(get_task("unit_conversion", reasoning).worked_examples[0][1] in prompt for prompt, _ in seen)


# -- partial products: the units chain with its product worked by hand --

_PARTIALS = re.compile(
    r"1 (?P<head>.+?)\. (?P<value>[\d.]+) .+? = (?P=value) (?P<op>[*/]) (?P<factor>[\d.]+) "
    r"(?:.+? = (?P=value) \* (?P<inverse>[\d.]+) )?.+?\. (?P<steps>.*?)"
    r"About (?P<a>[\d.]+) \* (?P<b>[\d.]+) = (?P<c>[\d.]+), so (?P<product>[\d.]+) .+?\. "
    r"<answer>(?P<answer>[\d.]+)</answer>$"
)


def _significant(text: str) -> str:
    """The digits of a number between its first and last non-zero one: '0.0150' -> '15'."""
    return text.replace(".", "").strip("0")


def _checked_partials(chain: str, value: float, ratio: float) -> float:
    """Read a partials chain, asserting every step exact and the estimate placing the point in
    the one place it fits; returns its answer."""
    match = _PARTIALS.match(chain)
    assert match, chain
    multiplier = Decimal(match["inverse"] or match["factor"])
    if match["op"] == "/":
        assert match["inverse"] and float(match["factor"]) == pytest.approx(1 / ratio, rel=1e-5)
        assert leading_digits(Decimal(f"{ratio:.12g}")) == leading_digits(multiplier)
    else:
        assert match["inverse"] is None and float(match["factor"]) == pytest.approx(ratio, rel=1e-5)
    assert float(match["value"]) == value
    v_digits, _ = leading_digits(Decimal(match["value"]))
    f_digits, _ = leading_digits(multiplier)
    products = [(int(a), d, int(p)) for a, d, p in _PRODUCT.findall(match["steps"])]
    assert [(a, int(d)) for a, d, _ in products] == [(v_digits, int(d)) for d in str(f_digits)], chain
    assert all(a * int(d) == p for a, d, p in products)
    total = products[0][2]
    sums = [tuple(map(int, s)) for s in _SUM.findall(match["steps"])]
    assert len(sums) == len(products) - 1
    for (shifted, partial, result), (_, _, expected) in zip(sums, products[1:]):
        assert (shifted, partial, result) == (total * 10, expected, total * 10 + expected)
        total = result
    a, b, c = Decimal(match["a"]), Decimal(match["b"]), Decimal(match["c"])
    assert (a, b) == (one_digit(Decimal(match["value"])), one_digit(multiplier)) and a * b == c
    assert _significant(match["product"]) == str(total).rstrip("0")
    assert 10**-0.5 < float(match["product"]) / float(c) < 10**0.5  # the point fits in one place only
    assert match["product"] == match["answer"]
    return float(match["answer"])


@pytest.mark.parametrize(
    "reasoning, checked", [(scratchpad_reasoning, _checked_steps), (partials_reasoning, _checked_partials)],
    ids=["scratchpad", "partials"],
)
@given(conversion=conversions())
def test_every_step_is_exact_and_the_answer_passes_the_checker(reasoning, checked, conversion):
    source, target, value = conversion
    ratio = source.size / target.size
    answer = float(f"{value * ratio:.12g}")
    if not (value > 0 and SHIFTED_MIN_ANSWER <= answer <= MAX_ANSWER):
        return  # outside the range broad and shifted draw from
    question = f"Convert {format_number(value)} {source.names[0][value != 1]} to {target.names[0][1]}."
    chain = reasoning(Example(question, answer))
    assert is_correct(checked(chain, value, ratio), answer), chain


def test_partials_examples():
    assert partials_reasoning(Example("Convert 38.1 yd to mm.", 34838.64)) == (
        "1 yd = 914.4 mm. 38.1 yd = 38.1 * 914.4 mm. 381*9=3429. 381*1=381. 381*4=1524. 34290+381=34671. "
        "346710+1524=348234. About 40 * 900 = 36000, so 34823.4 mm. <answer>34823.4</answer>"
    )
    assert partials_reasoning(Example("What is 90 seconds in minutes?", 1.5)) == (
        "1 min = 60 s. 90 s = 90 / 60 min = 90 * 0.0166 min. 9*1=9. 9*6=54. 9*6=54. 90+54=144. 1440+54=1494. "
        "About 90 * 0.02 = 1.8, so 1.494 min. <answer>1.494</answer>"
    )
    assert partials_reasoning(Example("How many grams are in 12 kg?", 12000.0)) == (
        "1 kg = 1000 g. 12 kg = 12 * 1000 g. 12*1=12. About 10 * 1000 = 10000, so 12000 g. <answer>12000</answer>"
    )


def test_partials_refuse_a_zero_value_with_a_data_error():
    with pytest.raises(DataError, match="it converts 0"):
        partials_reasoning(Example("Convert 0 km to m.", 0.0))


@pytest.mark.parametrize(
    "x, expected",
    [("914.4", (914, 0)), ("0.0166667", (166, -4)), ("1000", (1, 3)), ("9996", (999, 1)), ("0.0254", (254, -4)),
     ("1.09728", (109, -2)), ("168000", (168, 3))],
)
def test_leading_digits_cut_instead_of_rounding(x, expected):
    assert leading_digits(Decimal(x)) == expected


@pytest.mark.parametrize("x, expected", [("38.1", "4E+1"), ("914.4", "9E+2"), ("0.0166", "0.02"), ("9.6", "1E+1"), ("1.5", "2")])
def test_one_digit_rounds_half_up(x, expected):
    assert one_digit(Decimal(x)) == Decimal(expected)


def test_partial_chains_get_room_to_finish():
    """Partial products are about twice as long as the other chains: generation's default cap
    follows the format, or the longest chains would be cut before their answer."""
    assert RunSpec(kind="eval", mode="cot", reasoning="partials").max_new_tokens == 224
    assert RunSpec(kind="eval", mode="cot", reasoning="units").max_new_tokens == 160
    assert RunSpec(kind="eval", mode="direct", reasoning="partials").max_new_tokens == 24
    assert RunSpec(kind="rft", reasoning="partials", max_new_tokens=100).max_new_tokens == 100
