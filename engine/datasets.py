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
# A backstop for when no model is at hand: the models this engine runs read at most 8192 tokens,
# and text needs well under 4 characters a token on average, so a longer field cannot fit any of
# them (a 200,000-character question once took 54 s and 10 GB on the tiny test model). The
# model-aware check in `engine.context` refuses what does not fit the loaded model.
MAX_TEXT_CHARS = 32_768
_FIX = "fix or remove the row"


class _HugeInteger(float):
    """An integer literal too large for a float; kept apart so the error can say so."""

    def __new__(cls, digits: str) -> "_HugeInteger":
        value = super().__new__(cls, digits)
        value.digits = len(digits.lstrip("-"))
        return value


def _parse_int(text: str) -> int | float:
    """JSON integers, where Python's own parsing would raise OverflowError or ValueError (over
    4300 digits) on a huge one, far from the row that holds it."""
    return int(text) if math.isfinite(float(text)) else _HugeInteger(text)


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
        rows = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as e:
        raise DataError(
            f"Dataset file {path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
            "fix or regenerate it."
        ) from None
    except RecursionError:
        raise DataError(
            f"Dataset file {path} nests JSON lists or objects too deeply; {_SHAPE} rows in one flat list."
        ) from None
    if not isinstance(rows, list):
        raise DataError(
            f"Dataset file {path} holds a JSON {type(rows).__name__}; {_SHAPE} rows in a list."
        )
    if not rows:
        raise DataError(f"Dataset file {path} has no rows; add some or pass another file.")
    return [_example(path, i, row) for i, row in enumerate(rows)]


def interleave(groups: list[list[Example]]) -> list[Example]:
    """One row of each group in turn, then the rest of the longer groups, so every prefix
    mixes the groups as evenly as their lengths allow."""
    rows = []
    for i in range(max(map(len, groups), default=0)):
        rows += [group[i] for group in groups if i < len(group)]
    return rows


def window(rows: list, offset: int, limit: int, source: str) -> list:
    """The rows a run uses: after the first `offset`, the next `limit` (0: all the rest). An
    offset past the last row is refused, not left to start a run with nothing to do."""
    if offset and offset >= len(rows):
        raise DataError(f"offset: {offset} skips all {len(rows)} rows of {source}; lower --offset.")
    return rows[offset : offset + limit] if limit else rows[offset:]


def row_name(path: str | os.PathLike, index: int) -> str:
    """How errors name a row: by file and 0-based position in its list."""
    return f"Dataset file {path}, row {index}"


def _example(path: Path, index: int, row: object) -> Example:
    where = row_name(path, index)
    if (
        not isinstance(row, list)
        or len(row) not in (2, 3)
        or not isinstance(row[0], str)
        or not row[0].strip()
        or (len(row) == 3 and not isinstance(row[2], str))
    ):
        raise DataError(f"{where}: {_SHAPE} with text question and reasoning, found {_short(row)}; {_FIX}.")
    answer = row[1]
    # bool is an int subclass, but true/false is never a meant answer.
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise DataError(f"{where}: answer must be a number, found {_short(answer)}; {_FIX}.")
    if isinstance(answer, _HugeInteger):
        raise DataError(f"{where}: answer is a {answer.digits}-digit integer, too large for a number; {_FIX}.")
    if not math.isfinite(answer):
        raise DataError(f"{where}: answer must be a finite number, found {_short(answer)}; {_FIX}.")
    for field, text in zip(("question", "reasoning"), row[::2]):
        _check_text(where, field, text)
    return Example(row[0], float(answer), row[2] if len(row) == 3 else None)


def _check_text(where: str, field: str, text: str) -> None:
    """Text a tokenizer can take: valid Unicode (JSON allows lone surrogates, which cannot be
    encoded) and no longer than any model's context."""
    if len(text) > MAX_TEXT_CHARS:
        raise DataError(
            f"{where}: the {field} is {len(text):,} characters, longer than any model's context "
            f"(at most {MAX_TEXT_CHARS:,}); shorten or remove the row."
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(
            f"{where}: the {field} holds a lone surrogate {_short(text[e.start])} at character {e.start}, "
            f"which is not text; {_FIX}."
        ) from None


def _short(value: object, limit: int = 80) -> str:
    """A one-line JSON rendering of `value`, cut to `limit` characters, that any terminal can
    print (lone surrogates shown as \\udxxx escapes)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (RecursionError, ValueError):
        text = f"a deeply nested {type(value).__name__}"
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
