"""The core's dataset check: row counts, and one-line reasons for files the engine would refuse."""

from __future__ import annotations

import json

import pytest

from engine.core.dataset_files import count_rows, dataset_parts
from engine.core.errors import DataError


@pytest.mark.parametrize("split", ["train", "broad", "valid", "shifted"])
def test_every_named_split_is_read_from_the_data_folder(tmp_path, monkeypatch, split):
    """The launch form checks a typed dataset with this: each split the engine names must pass."""
    monkeypatch.setenv("REASONLAB_DATA_DIR", str(tmp_path))
    (tmp_path / f"{split}.json").write_text(json.dumps([["q1", 1.0], ["q2", 2.0], ["q3", 3.0]]))
    assert count_rows(split) == 3


def test_a_missing_named_split_says_how_to_write_it(tmp_path, monkeypatch):
    monkeypatch.setenv("REASONLAB_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"^no train split at .*train\.json; `python -m engine data` writes it$"):
        count_rows("train")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[1, 2", r"is not valid JSON \(line 1: "),
        ('{"a": 1}', r"holds a JSON dict; a dataset is a list of rows$"),
        ("[]", r"has no rows; give a file with questions$"),
    ],
)
def test_files_that_are_not_a_list_of_rows_are_refused(tmp_path, content, reason):
    path = tmp_path / "data.json"
    path.write_text(content)
    with pytest.raises(DataError, match=reason):
        count_rows(str(path))


def test_missing_file_and_folder_are_refused(tmp_path):
    with pytest.raises(
        DataError, match=r"^no file .*nope\.json; give 'train', 'broad', 'valid', 'shifted', 'selection' \(or some joined by '\+', e.g. 'train\+broad'\) or an existing JSON file$"
    ):
        count_rows(str(tmp_path / "nope.json"))
    with pytest.raises(DataError, match=r"is a folder; give a JSON file$"):
        count_rows(str(tmp_path))


def test_a_file_whose_name_holds_a_plus_is_a_file(tmp_path):
    path = tmp_path / "train+broad"
    path.write_text(json.dumps([["Convert 1 km to m.", 1000.0]]))
    assert count_rows(str(path)) == 1
    assert dataset_parts(str(path)) == [str(path)]
    assert dataset_parts("train+nothing") == ["train+nothing"]
