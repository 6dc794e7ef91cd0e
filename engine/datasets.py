"""Dataset files: a JSON list of [question, answer] or [question, answer, reasoning] rows."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from engine.core.errors import DataError
from engine.tasks.base import Example

_SHAPE = "expected [question, answer] or [question, answer, reasoning]"


def load_examples(path: str | os.PathLike) -> list[Example]:
    """Read and validate a dataset file; any problem is a DataError naming the file (and row)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(
            f"Dataset file {path} not found; run `python -m engine data` or pass an existing path."
        ) from None
    except IsADirectoryError:
        raise DataError(f"Dataset path {path} is a directory; pass a JSON file.") from None
    except UnicodeDecodeError as e:
        raise DataError(
            f"Dataset file {path} is not UTF-8 text ({e.reason}); pass a JSON file."
        ) from None
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"Dataset file {path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
            "fix or regenerate it."
        ) from None
    if not isinstance(rows, list):
        raise DataError(
            f"Dataset file {path} holds a JSON {type(rows).__name__}; {_SHAPE} rows in a list."
        )
    if not rows:
        raise DataError(f"Dataset file {path} has no rows; add some or pass another file.")
    return [_example(path, i, row) for i, row in enumerate(rows)]


def _example(path: Path, index: int, row: object) -> Example:
    where = f"Dataset file {path}, row {index}"
    if (
        not isinstance(row, list)
        or len(row) not in (2, 3)
        or not isinstance(row[0], str)
        or not row[0].strip()
        or (len(row) == 3 and not isinstance(row[2], str))
    ):
        raise DataError(f"{where}: {_SHAPE} with text question and reasoning, found {_short(row)}.")
    answer = row[1]
    # bool is an int subclass, but true/false is never a meant answer.
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise DataError(f"{where}: answer must be a number, found {_short(answer)}.")
    if not math.isfinite(answer):
        raise DataError(f"{where}: answer must be finite, found {answer}.")
    return Example(row[0], float(answer), row[2] if len(row) == 3 else None)


def _short(value: object, limit: int = 80) -> str:
    """A one-line JSON rendering of `value`, cut to `limit` characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def save_examples(path: str | os.PathLike, examples: Iterable[Example]) -> None:
    """Write examples one row per line, atomically (a reader never sees a half-written file)."""
    path = Path(path)
    rows = [
        [e.question, e.answer] if e.reasoning is None else [e.question, e.answer, e.reasoning]
        for e in examples
    ]
    body = ",\n".join("  " + json.dumps(row, ensure_ascii=False) for row in rows)
    text = f"[\n{body}\n]\n" if rows else "[]\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would otherwise stick to the dataset
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
