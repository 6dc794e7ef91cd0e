"""The engine never imports the UI; the app and the run core never import model libraries or code.
Checked in fresh interpreters, since this test session itself has torch loaded."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "peft", "accelerate")
UI = ("textual", "textual_plotext", "tui")


def _modules_after_import(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


def _loaded_after_import(module: str) -> set[str]:
    return {name.split(".")[0] for name in _modules_after_import(module)}


@pytest.mark.parametrize("module", ["engine.core.store", "engine.core.processes", "engine.cli", "engine.runner"])
def test_light_engine_modules_import_no_model_libraries(module):
    assert not _loaded_after_import(module) & set(HEAVY)


def test_the_app_loads_only_the_run_core_of_the_engine():
    engine_modules = {m for m in _modules_after_import("tui.app") if m.split(".")[0] == "engine"}
    assert engine_modules and all(m in ("engine", "engine.core") or m.startswith("engine.core.") for m in engine_modules), engine_modules


def test_no_sql_in_the_app():
    """The store owns every SQL statement; the app only calls it."""
    sql = re.compile(r"\bselect\b.+\bfrom\b|\binsert into\b|\bupdate \w+ set\b|\bdelete from\b|\.execute\(|store\.db\b", re.I)
    app = Path(__file__).resolve().parents[1] / "tui"
    offenders = [
        f"{path.name}:{n}: {line.strip()}"
        for path in app.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if sql.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize("module", ["engine.cli", "engine.model", "engine.training", "engine.rollout", "engine.pipeline"])
def test_engine_never_imports_the_ui(module):
    assert not _loaded_after_import(module) & set(UI)


def test_import_linter_contracts_hold():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout
