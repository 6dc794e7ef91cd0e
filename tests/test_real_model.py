"""End to end on the real embedded SmolLM2-135M (built from the GGUF file on first use)."""

import json
import math

import pytest

from engine.cli import main
from engine.model import load_model
from engine.core.store import RunStore
from engine.tasks import get_task

pytestmark = pytest.mark.slow


def test_embedded_model_loads_as_plain_cached_model():
    loaded = load_model("smollm2-135m")
    assert 130e6 < loaded.parameter_count < 140e6
    assert not getattr(loaded.model, "is_quantized", False)
    assert loaded.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False).startswith("<|im_start|>")


@pytest.mark.parametrize("mode", ["direct", "cot"])
def test_eval_on_a_few_questions(capsys, db_path, mode):
    code = main(["eval", "--mode", mode, "--limit", "3", "--batch-size", "3", "--max-new-tokens", "48", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    store = RunStore(db_path)
    samples = store.samples(result["run_id"])
    assert len(samples) == 3 and all(s["output"] for s in samples)
    # Scored again here from the generated text alone, against the dataset's own targets.
    task = get_task("unit_conversion")
    answers = [task.parse(s["output"], mode) for s in samples]
    correct = [task.is_correct(a, ex.answer) for a, ex in zip(answers, task.load("valid")[:3])]
    assert [bool(s["correct"]) for s in samples] == correct
    assert result["metrics"]["accuracy"] == sum(correct) / 3
    assert result["metrics"]["answer_rate"] == sum(math.isfinite(a) for a in answers) / 3
