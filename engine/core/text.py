"""User strings shown on a terminal: control characters made visible, never executed.

Run names, tags, paths, error texts and model output can hold ANSI escapes, carriage returns,
bidirectional overrides or lone surrogates. Printed raw they recolour or rewrite the terminal,
or fail to encode; `visible` shows each as its Python escape (`\\x1b`, `\\r`, `\\u202e`)."""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, bidirectional embeddings/overrides/isolates, and lone surrogates.
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def visible(text: str) -> str:
    """`text` with every control character replaced by its visible escape."""
    return _HIDDEN.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
