"""The engine never imports the UI, and the modules the UI uses never import model libraries.
Checked in fresh interpreters, since this test session itself has torch loaded."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "peft", "accelerate")
UI = ("textual", "textual_plotext", "tui")


def _loaded_after_import(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in json.loads(out)}


@pytest.mark.parametrize("module", ["engine.core.store", "engine.core.spec", "engine.cli", "engine.core.tracker", "engine.runner"])
def test_light_engine_modules_import_no_model_libraries(module):
    assert not _loaded_after_import(module) & set(HEAVY)


@pytest.mark.parametrize("module", ["engine.cli", "engine.model", "engine.training", "engine.rollout", "engine.pipeline"])
def test_engine_never_imports_the_ui(module):
    assert not _loaded_after_import(module) & set(UI)


def test_import_linter_contracts_hold():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout
