import math
from pathlib import Path

import pytest

from engine.core.errors import DataError, SpecError
from engine.core.spec import DEFAULT_REASONING
from engine.tasks import TASKS, get_task
from engine.tasks.base import Example
from engine.tasks.unit_conversion import (
    FAMILIES,
    TEMPLATES,
    TRAIN_SIZE,
    VALID_SIZE,
    VALID_START,
    REASONING,
    WORKED_EXAMPLES,
    WORKED_QUESTIONS,
    UnitConversionTask,
    format_number,
    generate_questions,
    parse_question,
    reference_reasoning,
    units_reasoning,
    write_data,
)

DATA = Path(__file__).resolve().parent.parent / "data"


class FakeTokenizer:
    """Joins messages as 'role: content' lines, like a chat template, without a model."""

    def apply_chat_template(self, messages, tokenize=True, add_generation_prompt=False):
        assert tokenize is False
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>\n" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")


@pytest.fixture(scope="module")
def task():
    return UnitConversionTask()


@pytest.fixture(scope="module")
def splits(task):
    return task.load("train"), task.load("valid")


def _family(example):
    conversion = parse_question(example.question)
    assert conversion is not None, example.question
    return next(name for name, units in FAMILIES.items() if conversion.source in units)


def test_generator_is_deterministic_and_matches_committed_files(tmp_path):
    assert generate_questions(50, 3) == generate_questions(50, 3)
    assert generate_questions(50, 3) != generate_questions(50, 4)
    for path in write_data(tmp_path, seed=0):  # train, valid, shifted and broad
        assert path.read_bytes() == (DATA / path.name).read_bytes(), path.name


def test_split_sizes_and_no_overlap(splits):
    train, valid = splits
    assert (len(train), len(valid)) == (TRAIN_SIZE, VALID_SIZE)
    train_questions = {e.question for e in train}
    assert len(train_questions) == TRAIN_SIZE
    assert len({e.question for e in valid}) == VALID_SIZE
    assert not train_questions & {e.question for e in valid}


def test_every_family_in_both_splits(splits):
    for split in splits:
        assert {_family(e) for e in split} == set(FAMILIES)


def test_templates_are_varied(splits):
    train, valid = splits
    assert len(TEMPLATES) >= 15
    assert len({parse_question(e.question).template for e in train}) == len(TEMPLATES)
    assert len({parse_question(e.question).template for e in valid}) >= 15


def test_answers_agree_with_factor_tables(splits):
    for example in splits[0] + splits[1]:
        c = parse_question(example.question)
        assert math.isfinite(example.answer) and 0.01 <= abs(example.answer) <= 1e9
        assert c.source != c.target
        assert example.answer == pytest.approx(c.value * c.source.size / c.target.size, rel=1e-9)


@pytest.mark.parametrize(
    "question, answer",
    [
        ("Convert 5 mile to meter.", 8046.72),
        ("How many g are there per 6 kg?", 6000),
        ("What does 9 ft equal in mm terms?", 2743.2),
        ("How many seconds are in 3 hours?", 10800),
        ("What is 2.5 kg in pounds?", 5.51156),
        ("Convert 2 years to days.", 730.4844),
        ("How many fluid ounces are in 1 cup?", 8),
        ("Convert 1 gallon to liters.", 3.785411784),
        ("What is 10 m/s in km/h?", 36),
        ("What is 60 mph in ft/s?", 88),
        ("How many bits are in 2 kB?", 16000),
        ("Convert 1.5 GB to MB.", 1500),
        ("How many cc are in 1 L?", 1000),
        ("Convert 1 metric ton to pounds.", 2204.62262),
    ],
)
def test_hand_checked_conversions(question, answer):
    c = parse_question(question)
    assert c is not None
    assert c.value * c.source.size / c.target.size == pytest.approx(answer, rel=1e-6)


def test_unit_spellings_are_unambiguous():
    spellings = [s for units in FAMILIES.values() for u in units for s in u.all_spellings()]
    assert len(spellings) == len(set(spellings))


def test_parse_question_rejects_other_phrasings():
    assert parse_question("What is the capital of France?") is None
    assert parse_question("Convert 5 miles to kilograms.") is None  # different families


def test_direct_prompt_and_round_trip(task, splits):
    example = splits[0][0]
    prompt = task.prompt(example.question, "direct", FakeTokenizer())
    assert prompt == f"{example.question} <answer>"
    for example in splits[0][:50]:
        completion = task.completion(example, "direct")
        assert completion.endswith("</answer>")
        assert task.is_correct(task.parse(completion, "direct"), example.answer)


def test_cot_prompt_has_worked_examples_and_no_valid_question(task, splits):
    train, valid = splits
    question = valid[0].question
    prompt = task.prompt(question, "cot", FakeTokenizer())
    for worked_question, reasoning in WORKED_EXAMPLES:
        assert f"<user>{worked_question}</user>" in prompt
        assert f"<assistant>{reasoning}</assistant>" in prompt
    assert prompt.endswith(f"<user>{question}</user>\n<assistant>")
    assert prompt.count("<system>") == 1 and "<answer></answer>" in prompt
    others = [e.question for e in valid[1:]]
    assert not any(q in prompt for q in others)


def test_worked_examples_are_in_neither_split_and_match_the_default_format(splits):
    questions = {e.question for split in splits for e in split}
    assert [q for q, _ in WORKED_EXAMPLES] == [q for q, _ in WORKED_QUESTIONS]
    for (worked_question, reasoning), (_, answer) in zip(WORKED_EXAMPLES, WORKED_QUESTIONS):
        assert worked_question not in questions
        assert REASONING[DEFAULT_REASONING](Example(worked_question, answer)) == reasoning


def test_cot_completion_and_parse(task, splits):
    for example in splits[0][:50]:
        completion = task.completion(example, "cot")
        assert completion.startswith("1 ") and completion.count("<answer>") == 1
        assert task.is_correct(task.parse(completion, "cot"), example.answer)
    rft = Example("How many g are in 6 kg?", 6000.0, "6 * 1000 = 6000. <answer>6000</answer>")
    assert task.completion(rft, "cot") == rft.reasoning
    bare = Example("How many g are in 6 kg?", 6000.0, "6 * 1000 = 6000.")
    assert task.completion(bare, "cot") == "6 * 1000 = 6000. <answer>6000</answer>"


def test_reference_reasoning_formats():
    assert reference_reasoning(Example("Convert 5 mile to meter.", 8046.72)) == (
        "1 mi = 1609.34 m. 5 * 1609.34 = 8046.72. <answer>8046.72</answer>"
    )
    assert reference_reasoning(Example("What is 2 pounds in kg?", 0.90718474)) == (
        "1 lb = 0.453592 kg. 2 * 0.453592 = 0.907185. <answer>0.907185</answer>"
    )
    assert reference_reasoning(Example("Convert 3 qt to gal.", 0.75)) == (
        "1 gal = 4 qt. 3 / 4 = 0.75. <answer>0.75</answer>"
    )


def test_units_reasoning_writes_each_numbers_unit_beside_it():
    """The value's unit stands just before the operator, and the plural agrees with the number."""
    assert units_reasoning(Example("Convert 3 qt to gal.", 0.75)) == (
        "1 gal = 4 qt. 3 qt = 3 / 4 gal = 0.75 gal. <answer>0.75</answer>"
    )
    assert units_reasoning(Example("Convert 20 inches to centimeters.", 50.8)) == (
        "1 inch = 2.54 cm. 20 inches = 20 * 2.54 cm = 50.8 cm. <answer>50.8</answer>"
    )
    assert units_reasoning(Example("How many feet are in 1 inch?", 1 / 12)) == (
        "1 ft = 12 inches. 1 inch = 1 / 12 ft = 0.0833333 ft. <answer>0.0833333</answer>"
    )
    with pytest.raises(DataError, match="gives 8046.72"):
        units_reasoning(Example("Convert 5 mile to meter.", 8000.0))


def test_reference_reasoning_errors():
    with pytest.raises(DataError, match="not a generated phrasing"):
        reference_reasoning(Example("What is 2+2?", 4.0))
    with pytest.raises(DataError, match="gives 8046.72"):
        reference_reasoning(Example("Convert 5 mile to meter.", 8000.0))


def test_parse_modes(task):
    assert task.parse("6000</answer>", "direct") == 6000
    assert math.isnan(task.parse("6000 grams", "direct"))
    assert task.parse("1 kg = 1000 g. <answer>1,000</answer>", "cot") == 1000
    assert math.isnan(task.parse("6000</answer>", "cot"))


def test_unknown_mode(task):
    with pytest.raises(SpecError) as info:
        task.prompt("q", "fewshot", FakeTokenizer())
    assert info.value.field == "mode"
    with pytest.raises(SpecError):
        task.completion(Example("q", 1.0), "fewshot")
    with pytest.raises(SpecError):
        task.parse("1", "fewshot")


@pytest.mark.parametrize(
    "x, text",
    [
        (6000.0, "6000"),
        (0.0254, "0.0254"),
        (2.2046226218, "2.20462"),
        (8046.72, "8046.72"),
        (31556926.08, "31556926"),
        (1e9, "1000000000"),
        (0.01, "0.01"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (-0.0000001, "-0.0000001"),
        (9.9999996, "10"),
        (1 / 3, "0.333333"),
    ],
)
def test_format_number(x, text):
    assert format_number(x) == text


def test_load_paths_and_env_override(task, tmp_path, monkeypatch):
    monkeypatch.setenv("REASONLAB_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="valid.json not found"):
        task.load("valid")
    write_data(tmp_path, seed=1)
    stream = generate_questions(TRAIN_SIZE + VALID_SIZE, 1)
    assert task.load("valid") == stream[VALID_START : VALID_START + VALID_SIZE]
    assert task.load(str(tmp_path / "train.json")) == stream[:VALID_START] + stream[VALID_START + VALID_SIZE :]


def test_registry():
    assert isinstance(get_task("unit_conversion"), TASKS["unit_conversion"])
    with pytest.raises(SpecError, match="unknown task 'nope'; choose one of unit_conversion"):
        get_task("nope")
