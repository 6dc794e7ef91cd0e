"""bench/bf16_training.py runs end to end (on the tiny model) and its memory column shows what
the engine's bf16 training relies on: no fp32 copies of the LoRA layers' inputs kept for backward."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("bf16_training", Path(__file__).parent.parent / "bench" / "bf16_training.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_the_bench_compares_all_four_ways_and_bf16_keeps_least(tiny_model_dir, monkeypatch, capsys):
    argv = ["bf16_training.py", "--model", tiny_model_dir, "--mode", "cot", "--steps", "2", "--batch-size", "2", "--threads", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    out = capsys.readouterr().out
    line = out.split("saved for backward, MiB:")[1].splitlines()[0]
    saved = dict(cell.strip().rsplit(" ", 1) for cell in line.split(", ") if cell.strip())
    speed = out.split("speed vs fp32:")[1].splitlines()[0]
    assert set(saved) == {"fp32", "bf16", "bf16 with fp32 LoRA inputs", "autocast"}, out
    assert all(f"{name} " in speed for name in saved)
    assert float(saved["bf16"]) < float(saved["bf16 with fp32 LoRA inputs"]) < float(saved["fp32"])
