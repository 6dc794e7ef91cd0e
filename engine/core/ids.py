"""Run ids written as text (a setting's value, a command-line argument).

`str.isdigit()` accepts '²' and other Unicode digits that `int()` then refuses or reads
differently, and an id past SQLite's signed 64-bit integers fails inside the database; both are
settled here, once, for every place that reads an id from text."""

from __future__ import annotations

from engine.core.errors import ReasonlabError

MAX_ID = 2**63 - 1  # SQLite's largest integer


def is_run_id(text: str) -> bool:
    """Whether `text` names a run by id: ASCII digits only (not a path, not '²')."""
    return text.isascii() and text.isdigit()


def run_id_or_none(text: str) -> int | None:
    """`text` as a run id when it is one that can exist, else None."""
    text = text.strip()
    return int(text) if is_run_id(text) and len(text) <= 19 and int(text) <= MAX_ID else None


def parse_run_id(text: str, what: str = "run id") -> int:
    """`text` as a run id, or a one-line error saying what a run id looks like."""
    text = text.strip()
    if not is_run_id(text):
        raise ReasonlabError(f"{what}: {text!r} is not a run id; pass a whole number like 3 (see `python -m engine runs`).")
    if len(text) > 19 or int(text) > MAX_ID:
        raise ReasonlabError(f"{what}: {text} is past the largest run id ({MAX_ID}); see `python -m engine runs`.")
    return int(text)
