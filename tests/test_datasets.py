import json

import pytest

from engine.datasets import interleave, load_examples, save_examples
from engine.core.errors import DataError
from engine.tasks.base import Example


def _write(tmp_path, text):
    path = tmp_path / "rows.json"
    path.write_text(text, encoding="utf-8")
    return path


def _error(path) -> str:
    with pytest.raises(DataError) as info:
        load_examples(path)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    return message


def test_missing_file(tmp_path):
    message = _error(tmp_path / "nope.json")
    assert "nope.json not found" in message and "python -m engine data" in message


def test_directory(tmp_path):
    assert "is a directory" in _error(tmp_path)


def test_invalid_json_names_the_line(tmp_path):
    message = _error(_write(tmp_path, '[\n  ["q", 1],\n  ["r" 2]\n]\n'))
    assert "not valid JSON" in message and "line 3" in message


def test_not_utf8(tmp_path):
    path = tmp_path / "rows.json"
    path.write_bytes(b'[["\xff", 1]]')
    assert "not UTF-8" in _error(path)


def test_not_a_list(tmp_path):
    assert "holds a JSON dict" in _error(_write(tmp_path, '{"q": 1}'))


def test_empty_list(tmp_path):
    assert "has no rows" in _error(_write(tmp_path, "[]"))


@pytest.mark.parametrize(
    "bad_row",
    [
        '"just text"',
        '["q"]',
        '["q", 1, "r", "extra"]',
        "[1, 2]",
        '["", 2]',
        '["q", 2, 3]',
        '{"question": "q", "answer": 2}',
    ],
)
def test_wrong_shape_names_the_row(tmp_path, bad_row):
    message = _error(_write(tmp_path, f'[["ok", 1], ["ok2", 2], {bad_row}]'))
    assert "row 2" in message and "expected [question, answer]" in message


@pytest.mark.parametrize("answer", ['"6000"', "null", "true", "[1]"])
def test_non_numeric_answer(tmp_path, answer):
    message = _error(_write(tmp_path, f'[["ok", 1], ["q", {answer}]]'))
    assert "row 1" in message and "must be a number" in message


@pytest.mark.parametrize("answer", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_answer(tmp_path, answer):
    message = _error(_write(tmp_path, f'[["q", {answer}]]'))
    assert "row 0" in message and "finite" in message


def test_long_row_is_cut_in_message(tmp_path):
    path = _write(tmp_path, json.dumps([["q\nwith newline" * 50]]))
    message = _error(path)
    assert len(message.replace(str(path), "")) < 250  # the 650-character row is cut; the path can be long


def test_round_trip_with_reasoning(tmp_path):
    examples = [
        Example("Convert 5 mile to meter.", 8046.72),
        Example("How many g are in 6 kg?", 6000.0, "6 * 1000 = 6000. <answer>6000</answer>"),
        Example("Ünïcode \"quoted\"\nquestion?", -0.5, ""),
    ]
    path = tmp_path / "sub" / "out.json"
    save_examples(path, examples)
    assert load_examples(path) == examples
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == len(examples) + 2
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]  # no temp file left


def test_integer_answers_load_as_float(tmp_path):
    [example] = load_examples(_write(tmp_path, '[["q", 3]]'))
    assert example == Example("q", 3.0) and isinstance(example.answer, float)


def test_interleave_takes_one_row_of_each_group_in_turn_then_the_rest():
    a, b = [Example(f"a{i}", i) for i in range(3)], [Example("b0", 0)]
    assert [e.question for e in interleave([a, b])] == ["a0", "b0", "a1", "a2"]
    assert interleave([]) == []
