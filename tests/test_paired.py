"""Two runs compared question by question: the exact McNemar test, the pairing by split, and
`python -m engine compare`."""

from __future__ import annotations

import json
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.cli import main
from engine.core.paired import Outcome, compare_runs, mcnemar_p, outcomes, paired_splits
from engine.core.spec import RunSpec
from engine.core.store import RunStore


def test_mcnemar_p_matches_readme_figures():
    # "valid 35 / 18 (p = 0.027)" and "valid 2 gained / 96 lost (p = 3e-26)" in the README
    assert mcnemar_p(35, 18) == pytest.approx(0.027, abs=5e-4)
    assert mcnemar_p(2, 96) == pytest.approx(3e-26, rel=0.1)
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(19, 19) == 1.0


@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_p_is_the_two_sided_binomial_tail(gained, lost):
    n = gained + lost
    tail = sum(comb(n, j) for j in range(n + 1) if comb(n, j) <= comb(n, gained)) / 2**n if n else 1.0
    assert mcnemar_p(gained, lost) == pytest.approx(min(1.0, tail), rel=1e-9)
    assert mcnemar_p(gained, lost) == mcnemar_p(lost, gained)
    assert mcnemar_p(gained + 1, lost) <= mcnemar_p(gained, lost) or gained < lost


def _rows(split, right):
    return [{"split": split, "question": f"q{i}", "correct": c} for i, c in enumerate(right)]


def test_pairs_only_questions_both_runs_scored_per_split_valid_first():
    a = outcomes(_rows("shifted", [1, 0, 0]) + _rows("valid", [1, 1, 0, 0]) + _rows("broad", [1]))
    b = outcomes(_rows("shifted", [0, 1]) + _rows("valid", [1, 0, 1, 1, 1]) + _rows("train", [1]))
    found = [(p.split, p.questions, p.right_a, p.right_b, p.gained, p.lost) for p in paired_splits(a, b)]
    assert found == [("valid", 4, 2, 3, 2, 1), ("shifted", 2, 1, 1, 1, 1)]


def test_a_question_sampled_several_times_counts_as_right_on_a_majority():
    assert [Outcome(2, 3).right, Outcome(1, 2).right, Outcome(1, 1).right] == [True, False, True]


def _seed(db_path, per_run):
    store = RunStore(db_path)
    for splits in per_run:
        run = store.create_run(RunSpec(kind="sft"))
        for split, steps in splits.items():
            for step, right in steps.items():
                store.add_samples(run.id, [
                    {"step": step, "idx": i, "question": f"{split} q{i}", "target": 1.0, "output": "o",
                     "answer": 1.0, "correct": c} for i, c in enumerate(right)
                ], split=split)
    return store


def test_compare_pairs_each_runs_final_evaluation(capsys, db_path):
    store = _seed(db_path, [
        {"valid": {4: [0, 0, 0, 0], 8: [1, 1, 0, 0]}, "shifted": {8: [0, 0, 1]}},
        {"valid": {8: [1, 0, 1, 1]}, "shifted": {4: [1, 1, 1], 8: [0, 1, 0]}},
    ])
    assert [p.as_json()["gained"] for p in compare_runs(store, 1, 2)] == [2, 1]
    assert main(["compare", "1", "2", "--json", "--db", str(db_path)]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["splits"] == [
        {"split": "valid", "questions": 4, "accuracy_a": 0.5, "accuracy_b": 0.75, "gained": 2, "lost": 1,
         "p_value": 1.0},
        {"split": "shifted", "questions": 3, "accuracy_a": pytest.approx(1 / 3), "accuracy_b": pytest.approx(1 / 3),
         "gained": 1, "lost": 1, "p_value": 1.0},
    ]
    assert main(["compare", "1", "2", "--db", str(db_path)]) == 0
    table = capsys.readouterr().out
    assert "gained" in table and "shifted" in table and "0.750" in table


@pytest.mark.parametrize("argv, expected", [
    (["compare", "1", "2"], "no scored question in common"),
    (["compare", "1", "7"], "No run with id 7"),
])
def test_compare_refusals_are_one_line(capsys, db_path, argv, expected):
    _seed(db_path, [{"valid": {0: [1]}}, {"shifted": {0: [1]}}])
    assert main([*argv, "--db", str(db_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and expected in err


def test_compare_names_differing_scoring_conditions(capsys, db_path):
    """In bf16 the thread count alone changes some greedy chains (README, "Scoring numerics"):
    a paired test of runs scored under different conditions says so in one line; alike, or
    unrecorded (runs from before), it says nothing."""
    store = _seed(db_path, [{"valid": {1: [1, 0]}}] * 3)
    store.add_environment(1, {"numerics": {"device": "cpu", "dtype": "bfloat16", "threads": 1}})
    store.add_environment(2, {"numerics": {"device": "cpu", "dtype": "bfloat16", "threads": 2}})
    assert main(["compare", "1", "2", "--db", str(db_path)]) == 0
    note = "note: run 1 scored with cpu bfloat16, 1 thread, batch 32, run 2 with cpu bfloat16, 2 threads, batch 32;"
    assert note in capsys.readouterr().out.splitlines()[-1]
    store.add_environment(2, {"numerics": {"threads": 1}})  # merged into what is recorded
    assert store.get_run(2).environment["numerics"] == {"device": "cpu", "dtype": "bfloat16", "threads": 1}
    for pair in (["1", "2"], ["1", "3"]):
        assert main(["compare", *pair, "--json", "--db", str(db_path)]) == 0
        assert json.loads(capsys.readouterr().out)["note"] == ""


def test_a_run_records_the_numerics_it_scored_with(tiny_model_dir, db_path):
    import torch

    from engine.runner import execute

    store = RunStore(db_path)
    spec = RunSpec(kind="eval", model=tiny_model_dir, mode="direct", limit=2, max_new_tokens=4, dtype="float32")
    run = execute(store, store.create_run(spec).id)
    assert run.environment["numerics"] == {"device": "cpu", "dtype": "float32", "threads": torch.get_num_threads()}
    assert "python" in run.environment  # merged with what the claim recorded
