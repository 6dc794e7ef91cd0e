"""bench/formats.py's error analysis reads the factor every chain format states: if a format's
wording changes, the bench's "factor right" column must not silently read nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from engine.tasks import get_task
from engine.tasks.unit_conversion import parse_question

_spec = importlib.util.spec_from_file_location("formats", Path(__file__).parent.parent / "bench" / "formats.py")
formats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(formats)


@pytest.mark.parametrize("reasoning", ["reference", "units", "partials", "scratchpad", "calculator"])
def test_the_factor_of_every_reference_chain_is_read_and_right(reasoning):
    task = get_task("unit_conversion", reasoning)
    examples = task.load("broad")[:300]
    samples = [{"question": e.question, "output": task.completion(e, "cot"), "correct": True} for e in examples]
    for sample in samples:
        conversion = parse_question(sample["question"])
        ratio = conversion.source.size / conversion.target.size
        assert formats.stated_multiplier(sample["output"]) == pytest.approx(ratio, rel=0.02), sample["output"]
    assert formats.factor_scores(samples) == (1.0, 1.0)


def test_a_wrong_factor_and_a_wrong_product_are_told_apart():
    samples = [
        {"question": "Convert 3 km to m.", "output": "1 km = 1000 m. 3 * 1000 = 3000. <answer>3000</answer>", "correct": True},
        {"question": "Convert 4 km to m.", "output": "1 km = 1000 m. 4 * 1000 = 400. <answer>400</answer>", "correct": False},
        {"question": "Convert 5 km to m.", "output": "1 km = 100 m. 5 * 100 = 500. <answer>500</answer>", "correct": False},
        {"question": "Convert 6 km to m.", "output": "6000", "correct": False},
    ]
    assert formats.factor_scores(samples) == (0.5, 0.5)
    assert formats.stated_multiplier("1 h = 60 min. 90 / 60 = 1.5.") == pytest.approx(1 / 60)
    assert formats.stated_multiplier("1 s ~ 167e-4 min. 90 = 9e1.") == pytest.approx(0.0167)
    assert formats.stated_multiplier("1 h = 60 min. 90 min = 90 / 60 h = 1.5 h.") == pytest.approx(1 / 60)
    assert formats.stated_multiplier("1 h = 60 min. 90 min = 90 * 60 h = 5400 h.") == pytest.approx(60)


def test_the_mixed_arm_interleaves_the_splits_so_its_first_questions_hold_half_of_each(tmp_path):
    task = get_task("unit_conversion", "units")
    path = formats._training_file(task, "train+broad", 6, tmp_path / "runs.db.runs")
    assert path.parent == tmp_path / "runs.db.runs"
    train, broad = task.load("train"), task.load("broad")
    assert [e.question for e in task.load(str(path))] == [
        train[0].question, broad[0].question, train[1].question, broad[1].question, train[2].question, broad[2].question,
    ]
    assert formats._training_file(task, "broad", 6, tmp_path) == task.dataset_path("broad")
