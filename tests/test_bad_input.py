"""Bad input of every kind ends in one error line (naming the file, row, setting or run at
fault and what to do), a non-zero exit and a failed run, never a traceback; user strings are
printed as text."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest

from engine.cli import main
from engine.core.errors import DataError, ReasonlabError, SpecError
from engine.core.ids import MAX_ID, is_run_id, parse_run_id, run_id_or_none
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.datasets import MAX_TEXT_CHARS, load_examples


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _data_error(tmp_path, text: str) -> str:
    path = tmp_path / "rows.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_examples(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


# -- datasets ------------------------------------------------------------------------------


@pytest.mark.parametrize("digits", [400, 5000])  # past a float, and past Python's int parsing limit
def test_huge_integer_answer_names_the_row(tmp_path, digits):
    message = _data_error(tmp_path, f'[["Convert 1 km to m.", 1000], ["q", {"9" * digits}]]')
    assert f"row 1: answer is a {digits}-digit integer" in message and "fix or remove the row" in message


def test_deep_nesting_is_one_line(tmp_path):
    message = _data_error(tmp_path, "[" * 100_000 + "]" * 100_000)
    assert "nests JSON" in message and "expected [question, answer]" in message


def test_a_deeply_nested_row_is_shown_cut(tmp_path):
    message = _data_error(tmp_path, "[" + "[" * 900 + "]" * 900 + "]")
    assert "row 0" in message and "[[[[..." in message and len(message) < 400


@pytest.mark.parametrize(("row", "field"), [('["Convert \\ud800 km", 1]', "question"), ('["q", 1, "a\\udfffb"]', "reasoning")])
def test_lone_surrogate_is_refused_and_shown_escaped(tmp_path, row, field):
    message = _data_error(tmp_path, f'[["ok", 1], {row}]')
    assert f"row 1: the {field} holds a lone surrogate" in message
    message.encode("utf-8")  # printable: the surrogate is shown as an escape


def test_text_longer_than_any_context_is_refused_without_a_model(tmp_path):
    message = _data_error(tmp_path, json.dumps([["ok", 1], ["x" * (MAX_TEXT_CHARS + 1), 2]]))
    assert "row 1: the question is" in message and "shorten or remove the row" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"rows": []}', "holds a JSON dict; expected [question, answer] or [question, answer, reasoning] rows"),
        ('[["q", 1], ["q"]]', "row 1: expected [question, answer]"),
        ('[["q", NaN]]', "row 0: answer must be a finite number, found NaN"),
        ('[["q", -Infinity]]', "row 0: answer must be a finite number"),
        ('[["q", 1e999]]', "row 0: answer must be a finite number"),
    ],
)
def test_shape_and_number_errors_keep_their_brackets(capsys, db_path, tmp_path, tiny_model_dir, text, expected):
    assert expected in _data_error(tmp_path, text)
    code, _, err = _run(capsys, "eval", "--model", tiny_model_dir, "--dataset", str(tmp_path / "rows.json"))
    assert code == 1 and expected in _error_line(err)  # the CLI prints the brackets too


def _long_question() -> str:
    return "Convert " + "12 km and " * 600 + "5 km to m."  # ~3,000 tokens: the tiny model reads 1,024


def test_question_longer_than_the_context_is_refused_by_row(capsys, db_path, tmp_path, tiny_model_dir):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([["Convert 1 km to m.", 1000], ["Convert 2 km to m.", 2000], [_long_question(), 1]]))
    code, _, err = _run(capsys, "eval", "--model", tiny_model_dir, "--mode", "direct", "--dataset", str(path))
    line = _error_line(err)
    assert code == 1 and f"Dataset file {path}, row 2: the question's prompt is" in line
    assert "reads at most 1,024" in line and "shorten or remove the row" in line
    store = RunStore(db_path)
    assert store.get_run(1).status == "failed" and store.samples(1) == []  # refused before any work


def test_training_row_longer_than_the_context_is_refused_by_row(capsys, db_path, tmp_path, tiny_model_dir):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([["Convert 7 km to m.", 7000], [_long_question(), 1]]))
    code, _, err = _run(capsys, "sft", "--model", tiny_model_dir, "--dataset", str(path), "--eval-limit", "1")
    assert code == 1 and f"Dataset file {path}, row 1: the row is" in _error_line(err)
    assert RunStore(db_path).metric_names(1) == []


# -- numbers -------------------------------------------------------------------------------


def test_a_temperature_too_small_to_sample_from_decodes_greedily(tiny_model_dir):
    from engine.generation import Sampling, generate
    from engine.model import load_model

    loaded = load_model(tiny_model_dir, device="cpu")
    prompts = ["Convert 5 km to m. <answer>", "How many g are in 3 kg? <answer>"]
    texts = {
        temperature: [c.text for (c,) in generate(loaded.model, loaded.tokenizer, prompts, Sampling(6, temperature))]
        for temperature in (0.0, 1e-300, 5e-5)
    }
    assert texts[1e-300] == texts[0.0] == texts[5e-5]


def _numeric_settings():
    return [f for f in dataclasses.fields(RunSpec) if f.type in ("int", "float")]


@pytest.mark.parametrize("field", _numeric_settings(), ids=lambda f: f.name)
def test_every_numeric_setting_has_a_maximum_that_sqlite_holds(field):
    maximum = field.metadata["maximum"]
    assert maximum is not None and maximum <= MAX_ID
    over = str(maximum + 1) if field.type == "int" else repr(maximum * 2 + 1)
    with pytest.raises(SpecError, match=f"{field.name}: must be at most"):
        RunSpec.from_text("eval", {field.name: over})


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sft", "--epochs", "1000000000"], "epochs: must be at most 100"),
        (["rollout", "--num-samples", "1000000000"], "num_samples: must be at most 1000"),
        (["eval", "--seed", str(2**63)], "seed: must be at most"),
        (["eval", "--seed", "9" * 400], "seed: must be at most"),
        (["eval", "--temperature", "1e400"], "temperature: must be at most 10"),
        (["eval", "--limit", "2**70"], "limit: expected an integer"),
        (["show", str(2**70)], "is not a run id"),
        (["start", str(2**70)], "is not a run id"),
        (["runs", "--limit", str(2**70)], "is not a whole number"),
        (["show", "²"], "is not a run id"),
    ],
)
def test_out_of_range_numbers_are_refused_before_a_run_exists(capsys, db_path, argv, expected):
    code, _, err = _run(capsys, *argv)
    assert code == 1 and expected in _error_line(err)
    assert RunStore(db_path).list_runs() == []


def test_a_saved_spec_with_a_huge_integer_is_a_spec_error():
    with pytest.raises(SpecError, match="seed: must be at most 1e\\+09 \\(got a number past 64 bits\\)"):
        RunSpec.from_dict({"kind": "eval", "seed": 10**400})


def test_run_ids_are_ascii_digits_within_sqlite_integers():
    assert is_run_id("12") and not is_run_id("²") and not is_run_id("٣") and not is_run_id("-1")
    assert run_id_or_none(str(MAX_ID)) == MAX_ID and run_id_or_none(str(MAX_ID + 1)) is None
    with pytest.raises(ReasonlabError, match="past the largest run id"):
        parse_run_id("9" * 5000, "adapter")


def test_a_unicode_digit_adapter_is_a_path_not_a_run_id(capsys, db_path, tiny_model_dir):
    code, _, err = _run(capsys, "eval", "--model", tiny_model_dir, "--adapter", "²", "--limit", "1")
    assert code == 1 and "adapter: ² is neither a run id nor an existing path" in _error_line(err)
    run = RunStore(db_path).get_run(1)
    assert run.status == "failed" and run.parent_id is None


# -- output: markup, control characters, --json, warnings ----------------------------------

NAMES = ["[/bold]x", "[link=http://x]y", "\x1b[31mred"]


def test_markup_and_escapes_in_user_strings_are_shown_as_text(capsys, db_path):
    store = RunStore(db_path)
    for name in NAMES:
        run = store.create_run(RunSpec(kind="eval", name=name, model="[bold]m"), tags=["[red]t", "a\rb"])
        store.mark_finished(run.id, "failed", "expected [question, answer] rows :smile:")
    code, out, _ = _run(capsys, "runs")
    assert code == 0
    for shown in ("[/bold]x", "[link=http://x]y", "\\x1b[31mred", "[bold]m"):
        assert shown in out
    for run_id, shown in enumerate(["[/bold]x", "[link=http://x]y", "\\x1b[31mred"], start=1):
        code, out, _ = _run(capsys, "show", str(run_id))
        assert code == 0 and shown in out
        assert "tags: [red]t, a\\rb" in out and "expected [question, answer] rows :smile:" in out
        assert "\x1b" not in out and "\r" not in out


def test_markup_in_the_db_path_and_dataset_path(capsys, tmp_path, tiny_model_dir):
    db = tmp_path / "[/x]" / "runs.db"
    db.parent.mkdir(parents=True)
    dataset = tmp_path / "[/y]" / "rows.json"
    code, _, err = _run(capsys, "eval", "--db", str(db), "--model", tiny_model_dir, "--dataset", str(dataset))
    assert code == 1 and f"Dataset file {dataset} not found" in _error_line(err) and f"in {db}" in err
    assert RunStore(db).get_run(1).status == "failed"  # not left queued


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["eval", "--bogus"], "unrecognized arguments: --bogus"),
        (["eval", "--mode", "loud"], "invalid choice: 'loud'"),
        (["eval", "--limit", "ten"], "limit: expected an integer"),
    ],
)
def test_json_errors_before_a_run_are_objects_on_stdout(capsys, db_path, argv, expected):
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 1 and expected in _error_line(err)
    result = json.loads(out)
    assert result["status"] == "error" and expected in result["error"] and result["run_id"] is None


def test_an_internal_error_in_a_run_is_one_line_and_a_json_object(capsys, db_path, monkeypatch):
    def broken_handler(kind):
        def handler(ctx):
            raise RuntimeError("boom\nsecond line")

        return handler

    monkeypatch.setattr("engine.runner._handler", broken_handler)
    code, out, err = _run(capsys, "eval", "--json")
    line = _error_line(err)
    assert code == 1 and "Internal error: RuntimeError: boom" in line and "second line" not in line
    result = json.loads(out)
    assert result["status"] == "failed" and result["run_id"] == 1 and "RuntimeError: boom" in result["error"]
    assert RunStore(db_path).get_run(1).status == "failed"


def test_an_internal_error_outside_a_run_is_one_line(capsys, db_path, monkeypatch):
    def broken(self):
        raise KeyError("oops")

    monkeypatch.setattr("engine.core.spec.RunSpec.parent_run_id", broken)
    code, out, err = _run(capsys, "eval", "--json")
    assert code == 1 and "Internal error: KeyError: 'oops'" in _error_line(err)
    assert json.loads(out)["status"] == "error"


def test_sft_prints_no_future_warning_and_records_its_base_model(db_path, tiny_model_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["sft", "--model", tiny_model_dir, "--limit", "4", "--batch-size", "4", "--epochs", "1",
                     "--eval-limit", "1", "--checkpoint-interval", "0"])
    assert code == 0
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []
    adapter = RunStore(db_path).artifact(1, "adapter")["path"]
    config = json.loads(open(f"{adapter}/adapter_config.json").read())
    assert config["base_model_name_or_path"] == tiny_model_dir  # the model as the run named it


def test_the_hidden_rank_command_outside_a_launch_is_one_line(capsys, db_path, monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    code, out, err = _run(capsys, "rank")
    assert code == 2 and "--processes N" in _error_line(err)
