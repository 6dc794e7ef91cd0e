"""The TUI must never pull in the model libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tui

CHECK = """
import importlib, pkgutil, sys
import tui
for module in pkgutil.walk_packages(tui.__path__, "tui."):
    if module.name != "tui.__main__":  # importing it runs the app
        importlib.import_module(module.name)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "transformers", "peft", "accelerate"})
print(",".join(heavy))
"""


def test_tui_imports_no_model_libraries():
    root = Path(tui.__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=root, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
