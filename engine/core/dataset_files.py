"""Where a spec's dataset lives and how many rows it holds, without loading the task.

The launch form checks a dataset as it is typed and its review shows the question count; both
need only the file, not the task's parser (which the engine applies when the run starts), so
this stays in the torch-free core.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import engine
from engine.core.errors import DataError

DATA_DIR_ENV = "REASONLAB_DATA_DIR"
TRAINING_SPLITS = ("train", "broad")
REPORTED_SPLITS = ("valid", "shifted")
"""The splits a model's quality is reported on, side by side."""
SELECTION_SPLIT = "selection"
"""The split models are chosen on (the pipeline's model among its stages), so that no choice
looks at a reported split: questions of valid's kind and of broad's, interleaved."""
HELD_OUT_SPLITS = (*REPORTED_SPLITS, SELECTION_SPLIT)
"""The splits that only ever score a model: never trained on, rolled out or shown as examples."""
NAMED_DATASETS = (*TRAINING_SPLITS, *HELD_OUT_SPLITS)
"""The splits `python -m engine data` writes to the data folder, named without their path."""


JOIN = "+"
"""Joins named splits into one dataset: 'train+broad' interleaves them row by row, so its first N
rows hold about N/2 of each (the generator's values with values it never makes)."""


def dataset_parts(dataset: str) -> list[str]:
    """The named splits a joined dataset interleaves; any other dataset (a file path may hold a
    '+') is its only part."""
    parts = dataset.split(JOIN)
    return parts if len(parts) > 1 and all(part in NAMED_DATASETS for part in parts) else [dataset]


def data_dir() -> Path:
    """Where the named splits live: $REASONLAB_DATA_DIR, else the repository's data folder."""
    override = os.environ.get(DATA_DIR_ENV)
    return Path(override) if override else Path(engine.__file__).resolve().parent.parent / "data"


def dataset_path(dataset: str) -> Path:
    """The file a dataset setting names: a named split's file, or the path itself (a joined
    dataset has no file of its own: its name stands for it in messages)."""
    return data_dir() / f"{dataset}.json" if dataset in NAMED_DATASETS else Path(dataset)


def count_rows(dataset: str) -> int:
    """The number of rows in a dataset file; a DataError (one line: what is wrong, what to do)
    when it is missing, unreadable, not JSON, not a list or empty."""
    if len(parts := dataset_parts(dataset)) > 1:
        return sum(map(count_rows, parts))
    path = dataset_path(dataset)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if dataset in NAMED_DATASETS:
            raise DataError(f"no {dataset} split at {path}; `python -m engine data` writes it") from None
        named = ", ".join(f"'{name}'" for name in NAMED_DATASETS)
        raise DataError(
            f"no file {path}; give {named} (or some joined by '+', e.g. 'train+broad') or an existing JSON file"
        ) from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder; give a JSON file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; give a JSON file") from None
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror}); give a readable JSON file") from None
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(rows, list):
        raise DataError(f"{path} holds a JSON {type(rows).__name__}; a dataset is a list of rows")
    if not rows:
        raise DataError(f"{path} has no rows; give a file with questions")
    return len(rows)
