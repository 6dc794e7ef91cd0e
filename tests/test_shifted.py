"""The shifted split: built to differ from train (phrasings, values, spellings), reproducible,
disjoint from everything a model is trained, prompted or rolled out on, and scored by category."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.core.errors import DataError, ReasonlabError
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.evaluation import category_accuracy
from engine.runner import execute
from engine.tasks.base import Example
from engine.core.dataset_files import count_rows, data_dir
from engine.tasks.unit_conversion import (
    _DECIMAL_VALUES,
    _PATTERNS,
    BROAD_EXPONENTS,
    BROAD_PREFIXES,
    BROAD_SIZE,
    BROAD_SUFFIXES,
    FAMILIES,
    SELECTION_SIZE,
    SHIFTED_MIN_ANSWER,
    SHIFTED_SIZE,
    SHIFTED_TEMPLATES,
    TEMPLATES,
    WORKED_EXAMPLES,
    UnitConversionTask,
    category,
    generate_broad,
    generate_shifted,
    parse_question,
    value_range,
    write_data,
)
from engine.training import training_questions

DATA = Path(__file__).resolve().parent.parent / "data"
TRAIN_VALUES = set(range(1, 11)) | set(_DECIMAL_VALUES)


@pytest.fixture(scope="module")
def task():
    return UnitConversionTask()


@pytest.fixture(scope="module")
def splits(task):
    return {name: task.load(name) for name in ("train", "valid", "shifted", "broad", "selection")}


def _combo(question: str) -> tuple[str, str, float]:
    c = parse_question(question)
    assert c is not None, question
    return c.source.key, c.target.key, c.value


def test_regenerating_gives_the_committed_files(tmp_path):
    paths = write_data(tmp_path, seed=0)
    assert [p.name for p in paths] == ["train.json", "valid.json", "shifted.json", "broad.json", "selection.json"]
    for path in paths:
        assert path.read_bytes() == (DATA / path.name).read_bytes(), path.name
    assert generate_shifted(20, 1) == generate_shifted(20, 1) != generate_shifted(20, 0)
    assert generate_broad(20, 1) == generate_broad(20, 1) != generate_broad(20, 0)


def test_shifted_uses_only_held_out_phrasings(splits):
    shifted = splits["shifted"]
    assert len(shifted) == SHIFTED_SIZE == len({e.question for e in shifted})
    assert not set(TEMPLATES) & set(SHIFTED_TEMPLATES)
    used = {parse_question(e.question).template for e in shifted}
    assert all(index >= len(TEMPLATES) for index in used)
    assert len(used) == len(SHIFTED_TEMPLATES)  # every held-out phrasing is exercised


def test_no_train_or_valid_question_reads_as_a_held_out_phrasing(splits):
    for example in splits["train"] + splits["valid"]:
        assert parse_question(example.question).template < len(TEMPLATES), example.question


def test_shifted_is_disjoint_from_train_valid_and_worked_examples(splits):
    shifted = splits["shifted"]
    seen = splits["train"] + splits["valid"] + [Example(q, 0.0) for q, _ in WORKED_EXAMPLES]
    assert not {e.question for e in shifted} & {e.question for e in seen}
    assert not {_combo(e.question) for e in shifted} & {_combo(e.question) for e in seen}


def test_shifted_values_are_ones_train_never_has(splits):
    assert {_combo(e.question)[2] for e in splits["train"]} == TRAIN_VALUES
    values = [_combo(e.question)[2] for e in splits["shifted"]]
    assert not set(values) & TRAIN_VALUES
    ranges = {value_range(v) for v in values}
    assert ranges == {"11-99", "100-9999", "10000+", "decimal", "below-0.1"}
    decimals = [v for v in values if not v.is_integer()]
    assert {len(format(v, "f").rstrip("0").split(".")[1]) for v in decimals} == {1, 2, 3}
    assert any("," in e.question for e in splits["shifted"])  # grouped thousands: '12,500'


def test_shifted_answers_are_in_range_and_right(splits):
    for example in splits["shifted"]:
        c = parse_question(example.question)
        assert SHIFTED_MIN_ANSWER <= example.answer <= 1e9
        assert example.answer == pytest.approx(c.value * c.source.size / c.target.size, rel=1e-9)


def _uses(question: str, spelling: str) -> bool:
    return re.search(rf"(?<![\w/^]){re.escape(spelling)}(?![\w/^])", question) is not None


def test_held_out_spellings_appear_only_in_shifted(splits):
    held_out = [s for units in FAMILIES.values() for u in units for s in u.held_out]
    assert len(held_out) >= 20

    for example in splits["train"] + splits["valid"] + splits["broad"]:
        assert not any(_uses(example.question, s) for s in held_out), example.question
    with_held_out = [e for e in splits["shifted"] if any(_uses(e.question, s) for s in held_out)]
    assert len(with_held_out) >= 60


def test_broad_shares_nothing_with_shifted_valid_or_the_worked_examples(splits):
    broad = splits["broad"]
    assert len(broad) == BROAD_SIZE == len({e.question for e in broad})
    held_out = [e.question for e in splits["shifted"] + splits["valid"]] + [q for q, _ in WORKED_EXAMPLES]
    assert not {e.question for e in broad} & set(held_out)
    shifted_or_worked = {_combo(e.question) for e in splits["shifted"]} | {_combo(q) for q, _ in WORKED_EXAMPLES}
    assert not {_combo(e.question) for e in broad} & shifted_or_worked
    shifted_patterns = _PATTERNS[len(TEMPLATES) : len(TEMPLATES) + len(SHIFTED_TEMPLATES)]
    for example in broad:
        assert parse_question(example.question).phrasing in ("train", "broad"), example.question
        cores = [
            example.question[len(prefix) : len(example.question) - len(suffix)]
            for prefix in BROAD_PREFIXES for suffix in BROAD_SUFFIXES
            if example.question.startswith(prefix) and example.question.endswith(suffix)
        ]
        assert not any(p.fullmatch(core) for p in shifted_patterns for core in cores), example.question


def test_selection_mixes_valids_kind_and_broads_and_shares_no_question_with_any_other_split(splits):
    selection = splits["selection"]
    assert len(selection) == SELECTION_SIZE == len({e.question for e in selection})
    others = [e for name in ("train", "valid", "shifted", "broad") for e in splits[name]]
    assert not {e.question for e in selection} & ({e.question for e in others} | {q for q, _ in WORKED_EXAMPLES})
    # Interleaved: even rows are the generator's (valid's kind), odd rows broad's kind, so the
    # first --eval-limit questions hold both alike.
    like_valid, like_broad = selection[0::2], selection[1::2]
    assert len(like_valid) == len(like_broad) == SELECTION_SIZE // 2
    train_values = {_combo(e.question)[2] for e in splits["train"]}
    assert all(parse_question(e.question).phrasing == "train" for e in like_valid)
    assert {_combo(e.question)[2] for e in like_valid} <= train_values
    # Broad's kind: none of its conversions is in any other split or the worked examples.
    others_combos = {_combo(e.question) for e in others} | {_combo(q) for q, _ in WORKED_EXAMPLES}
    assert not {_combo(e.question) for e in like_broad} & others_combos
    assert {parse_question(e.question).phrasing for e in like_broad} <= {"train", "broad"}
    assert len({value_range(_combo(e.question)[2]) for e in like_broad}) >= 5
    for example in selection:
        c = parse_question(example.question)
        assert example.answer == pytest.approx(c.value * c.source.size / c.target.size, rel=1e-9)


def test_broad_is_wide_and_cannot_be_memorised(splits):
    broad = splits["broad"]
    values = [_combo(e.question)[2] for e in broad]
    assert 10.0 ** BROAD_EXPONENTS[0] <= min(values) and max(values) <= 10.0 ** BROAD_EXPONENTS[1]
    assert {value_range(v) for v in values} == {"1-10", "11-99", "100-9999", "10000+", "decimal", "below-0.1"}
    assert len(set(values)) > 1500  # train has 18
    decimals = [v for v in values if not v.is_integer()]
    assert {len(format(v, "f").rstrip("0").split(".")[1]) for v in decimals} == {1, 2, 3}
    assert any("," in e.question for e in broad)
    phrasings = {parse_question(e.question).template for e in broad}
    assert len(phrasings) > len(TEMPLATES) + 15  # train's cores and broad's own
    assert {category(e)["family"] for e in broad} == set(FAMILIES)
    for example in broad:
        c = parse_question(example.question)
        assert SHIFTED_MIN_ANSWER <= example.answer <= 1e9
        assert example.answer == pytest.approx(c.value * c.source.size / c.target.size, rel=1e-9)


def test_broad_is_accepted_for_training(task, splits):
    assert training_questions(task, "broad", 10) == splits["broad"][:10]
    assert training_questions(task, str(data_dir() / "broad.json"), 0) == splits["broad"]


def test_every_family_in_shifted(splits):
    assert {category(e)["family"] for e in splits["shifted"]} == set(FAMILIES)


@pytest.mark.parametrize(
    "question, expected",
    [
        ("Convert 5 mile to meter.", {"family": "length", "values": "1-10", "phrasing": "train"}),
        ("Convert 2.5 kg to g.", {"family": "mass", "values": "decimal", "phrasing": "train"}),
        ("How many m/s would 64.3 km/hr be?", {"family": "speed", "values": "decimal", "phrasing": "held-out"}),
        ("What's 2,371 L in fluid oz?", {"family": "volume", "values": "100-9999", "phrasing": "held-out"}),
        ("41 gigabytes in KB?", {"family": "data", "values": "11-99", "phrasing": "held-out"}),
        ("Tell me 168,000 min in hours.", {"family": "time", "values": "10000+", "phrasing": "held-out"}),
        ("Calculate 0.05 kgs in gms.", {"family": "mass", "values": "below-0.1", "phrasing": "held-out"}),
        ("Hi! Can you turn 30 metres into feet? Thanks!", {"family": "length", "values": "11-99", "phrasing": "broad"}),
        ("Q: What is the equivalent of 9.03 gigabyte in kB?", {"family": "data", "values": "decimal", "phrasing": "train"}),
        ("What is the capital of France?", {}),
    ],
)
def test_category(question, expected):
    assert category(Example(question, 1.0)) == expected


def test_parse_reads_grouped_thousands():
    assert parse_question("Tell me 168,000 min in hours.").value == 168000
    assert parse_question("What's 2,371.5 L in fluid oz?").value == 2371.5


def test_category_accuracy_counts_each_category_value():
    examples = [Example(q, 1.0) for q in (
        "Convert 5 mile to meter.", "Convert 7 km to m.", "Convert 2.5 kg to g.", "What is the capital of France?",
    )]
    metrics = category_accuracy(UnitConversionTask(), examples, [True, False, True, True])
    assert metrics == {
        "accuracy/family=length": 0.5, "accuracy/family=mass": 1.0,
        "accuracy/phrasing=train": 2 / 3, "accuracy/values=1-10": 0.5, "accuracy/values=decimal": 1.0,
    }

    class NoCategories:
        pass

    assert category_accuracy(NoCategories(), examples, [True] * 4) == {}


def test_shifted_is_refused_for_training_and_rollouts_by_name_and_content(task):
    with pytest.raises(ReasonlabError, match="'shifted' is held out"):
        training_questions(task, "shifted", 0)
    with pytest.raises(ReasonlabError, match="'selection' is held out"):
        training_questions(task, "selection", 0)
    with pytest.raises(DataError, match="are selection questions"):
        training_questions(task, str(data_dir() / "selection.json"), 0)
    with pytest.raises(DataError, match="are shifted questions"):
        training_questions(task, str(data_dir() / "shifted.json"), 0)
    with pytest.raises(DataError, match="are valid questions"):
        training_questions(task, str(data_dir() / "valid.json"), 0)
    assert len(training_questions(task, "train", 10)) == 10


@pytest.mark.parametrize("kind", ["sft", "rollout"])
def test_runs_refuse_shifted(tiny_model_dir, db_path, kind):
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind=kind, model=tiny_model_dir, dataset="shifted"))
    with pytest.raises(ReasonlabError, match="'shifted' is held out for evaluation"):
        execute(store, run.id)
    assert store.get_run(run.id).status == "failed"


def test_rft_refuses_shifted_rows(tiny_model_dir, db_path, tmp_path, task):
    from engine.datasets import save_examples

    rows = tmp_path / "rft.json"
    save_examples(rows, [Example(e.question, e.answer, "1 = 1. <answer>1</answer>") for e in task.load("shifted")[:2]])
    store = RunStore(db_path)
    run = store.create_run(RunSpec(kind="rft", model=tiny_model_dir, data=str(rows)))
    with pytest.raises(DataError, match="shifted"):
        execute(store, run.id)


def test_cot_prompt_shows_no_shifted_question(task, splits):
    class JoiningTokenizer:
        def apply_chat_template(self, messages, **kwargs):
            return "\n".join(m["content"] for m in messages)

    prompt = task.prompt("Convert 5 mile to meter.", "cot", JoiningTokenizer())
    assert all(q in prompt for q, _ in WORKED_EXAMPLES)
    assert not any(e.question in prompt for e in splits["shifted"])


def test_eval_on_shifted_reports_accuracy_by_category(tiny_model_dir, db_path):
    store = RunStore(db_path)
    spec = RunSpec(kind="eval", model=tiny_model_dir, dataset="shifted", mode="direct", limit=6, max_new_tokens=4)
    run = execute(store, store.create_run(spec).id)
    assert run.status == "completed"
    samples = store.samples(run.id)
    shifted = UnitConversionTask().load("shifted")[:6]
    assert [s["question"] for s in samples] == [e.question for e in shifted]
    expected = category_accuracy(UnitConversionTask(), shifted, [bool(s["correct"]) for s in samples])
    assert {k: v for k, v in run.summary.items() if k.startswith("accuracy/")} == expected
    assert {k.split("=")[0] for k in expected} == {"accuracy/family", "accuracy/values", "accuracy/phrasing"}
    assert expected["accuracy/phrasing=held-out"] == run.summary["accuracy"]


@pytest.mark.parametrize(
    "kind, settings",
    [
        ("sft", dict(limit=4, batch_size=4, epochs=1)),
        ("grpo", dict(steps=1, questions_per_step=2, group_size=2, max_new_tokens=3, eval_interval=0)),
    ],
)
def test_training_scores_shifted_at_the_end_and_stores_its_samples_apart(kind, settings, tiny_model_dir, db_path, task):
    store = RunStore(db_path)
    spec = RunSpec(kind=kind, model=tiny_model_dir, eval_limit=3, checkpoint_interval=0, **settings)
    run = execute(store, store.create_run(spec).id)
    assert run.status == "completed"
    summary = run.summary
    for name in ("accuracy", "answer_rate", "shifted_accuracy", "shifted_answer_rate"):
        assert 0.0 <= summary[name] <= 1.0, name
    shifted_families = {category(e)["family"] for e in task.load("shifted")[:3]}
    assert {k for k in summary if k.startswith("shifted_accuracy/family=")} == {
        f"shifted_accuracy/family={f}" for f in shifted_families
    }
    assert "accuracy/phrasing=train" in summary and "shifted_accuracy/phrasing=held-out" in summary
    for split in ("valid", "shifted", "selection"):
        samples = store.samples(run.id, split=split)
        assert [s["question"] for s in samples] == [e.question for e in task.load(split)[:3]]
        assert summary["accuracy" if split == "valid" else f"{split}_accuracy"] == sum(s["correct"] for s in samples) / 3


@pytest.mark.parametrize(
    "kind, settings",
    [
        ("sft", dict(limit=8, batch_size=4, epochs=2, eval_interval=2)),
        ("grpo", dict(steps=2, questions_per_step=2, group_size=2, max_new_tokens=3, eval_interval=1)),
    ],
)
def test_training_scores_valid_and_shifted_at_every_interval_once(kind, settings, tiny_model_dir, db_path):
    store = RunStore(db_path)
    spec = RunSpec(kind=kind, model=tiny_model_dir, eval_limit=2, checkpoint_interval=0, log_interval=1, **settings)
    run = execute(store, store.create_run(spec).id)
    assert run.status == "completed"
    # 4 sft steps scored at 2 and 4; 2 grpo steps at 1 and 2: the last interval is the end, scored once.
    scored_at = [2, 4] if kind == "sft" else [1, 2]
    for name in ("accuracy", "shifted_accuracy", "shifted_accuracy/phrasing=held-out"):
        assert [step for step, _ in store.metric_series(run.id, name)] == scored_at, name
    assert sorted({s["step"] for s in store.samples(run.id)}) == scored_at
    # The selection split chooses between finished models: scored once, at the end.
    assert [step for step, _ in store.metric_series(run.id, "selection_accuracy")] == scored_at[-1:]
    assert {s["step"] for s in store.samples(run.id, split="selection")} == {scored_at[-1]}
    assert run.summary["shifted_accuracy"] == store.metric_series(run.id, "shifted_accuracy")[-1][1]


def test_a_joined_dataset_interleaves_its_splits_and_refuses_a_held_out_one(task):
    train, broad = task.load("train"), task.load("broad")
    joined = training_questions(task, "train+broad", 0)
    assert len(joined) == len(train) + len(broad) == count_rows("train+broad")
    assert [e.question for e in joined[:4]] == [train[0].question, broad[0].question, train[1].question, broad[1].question]
    with pytest.raises(ReasonlabError, match=r"^dataset: 'train\+shifted' joins 'shifted', which is held out"):
        training_questions(task, "train+shifted", 0)
    assert [e.question for e in task.load("valid+shifted")][:2] == [task.load("valid")[0].question, task.load("shifted")[0].question]

