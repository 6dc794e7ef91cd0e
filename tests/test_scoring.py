import math

import pytest

from engine.scoring import accuracy_summary, is_correct, parse_answer


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<answer>6000</answer>", 6000.0),
        ("<answer>1,000</answer>", 1000.0),
        ("<answer>1,234,567.5</answer>", 1234567.5),
        ("<answer>+5</answer>", 5.0),
        ("<answer>-2.5</answer>", -2.5),
        ("<answer>1.5e-3</answer>", 0.0015),
        ("<answer>1.5E+03</answer>", 1500.0),
        ("<answer>-2e2</answer>", -200.0),
        ("<answer>.5</answer>", 0.5),
        ("<answer>5.</answer>", 5.0),
        ("<answer>  42 \n</answer>", 42.0),
        ("1 kg = 1000 g. 6 * 1000 = 6000. <answer>6000</answer>", 6000.0),
        ("<answer>1</answer> then <answer>2</answer>", 1.0),
        ("<answer>\n3\n</answer>", 3.0),
    ],
)
def test_parse_answer_numbers(text, expected):
    assert parse_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "6000",  # no tag
        "<answer>6000",  # no closing tag
        "6000</answer>",  # no opening tag
        "<answer></answer>",
        "<answer>   </answer>",
        "<answer>about 6000</answer>",
        "<answer>6000 g</answer>",
        "<answer>six</answer>",
        "<answer>nan</answer>",
        "<answer>NaN</answer>",
        "<answer>inf</answer>",
        "<answer>-Infinity</answer>",
        "<answer>1,00</answer>",  # not a thousands grouping
        "<answer>1 000</answer>",
        "<answer>--5</answer>",
        "<answer>1e</answer>",
        "<answer>.</answer>",
        "<answer>abc</answer> <answer>5</answer>",  # only the first tag counts
        "",
    ],
)
def test_parse_answer_rejects(text):
    assert math.isnan(parse_answer(text))


@pytest.mark.parametrize(
    "answer, target, expected",
    [
        (100.0, 100.0, True),
        (104.9, 100.0, True),
        (95.1, 100.0, True),
        (105.0, 100.0, False),  # the 5% edge is excluded
        (95.0, 100.0, False),
        (106.0, 100.0, False),
        (-100.0, -100.0, True),
        (-104.0, -100.0, True),
        (100.0, -100.0, False),
        (0.0254, 0.0254, True),  # both round to 0.025
        (0.0249, 0.0254, True),
        (0.0124, 0.0118, True),  # 5.1% off, but both round to 0.012
        (0.0106, 0.0104, False),  # 1.9% off, but 0.011 vs 0.010 is 10%
        (0.0236, 0.0254, True),  # 7% off, but 0.024 vs 0.025 is 4%: the target is rounded too
        (104.9996, 100.0, False),  # rounds to 105.0: on the edge
        (0.0, 0.0, False),  # a target that rounds to 0 is never matched
        (0.0004, 0.0001, False),
        (math.nan, 1.0, False),
        (1.0, math.nan, False),
        (math.inf, 1.0, False),
        (-math.inf, -1.0, False),
        (math.inf, math.inf, False),
    ],
)
def test_is_correct(answer, target, expected):
    assert is_correct(answer, target) is expected


def test_accuracy_summary():
    summary = accuracy_summary([True, False, False, True], [1.0, math.nan, 2.0, 3.0])
    assert summary == {"accuracy": 0.5, "answer_rate": 0.75}
    assert accuracy_summary([], []) == {"accuracy": 0.0, "answer_rate": 0.0}
    assert accuracy_summary([False], [math.inf])["answer_rate"] == 0.0
    with pytest.raises(ValueError, match="1 correctness flags for 0 answers"):
        accuracy_summary([True], [])
