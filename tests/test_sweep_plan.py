"""Sweep plans: the grid's order and sample without listing the grid, what a review shows of
a plan, the limits on ranges and runs, and queue_sweep's runs (with a launcher that records)."""

from __future__ import annotations

import itertools

import pytest

from engine.core.errors import SpecError
from engine.core.store import RunStore
from engine.core.sweep import MAX_RANGE_VALUES, plan_sweep, queue_sweep, sweep_specs


def test_the_grid_follows_itertools_product_and_a_sample_picks_from_it():
    texts = {"seed": "0..3", "learning_rate": "1e-3,2e-3,3e-3", "lora_rank": "4,8"}
    plan = plan_sweep("sft", texts)
    product = list(itertools.product(range(4), (1e-3, 2e-3, 3e-3), (4, 8)))
    assert [(s.seed, s.learning_rate, s.lora_rank) for s in plan.specs] == product
    assert plan.grid_size == 24 and list(plan.varying) == ["seed", "learning_rate", "lora_rank"]
    sample = plan_sweep("sft", texts, sample=5, sample_seed=3)
    assert len(sample.specs) == 5 and set(sample.specs) <= set(plan.specs) and sample.grid_size == 24
    assert [plan.specs.index(s) for s in sample.specs] == sorted(plan.specs.index(s) for s in sample.specs)


def test_a_sample_of_a_huge_grid_is_drawn_without_listing_it():
    plan = plan_sweep("sft", {"seed": "0..9999", "lora_rank": "1..1000"}, sample=4, sample_seed=1)
    assert len(plan.specs) == 4 and plan.grid_size == 10_000_000


def test_common_holds_the_settings_every_run_shares():
    plan = plan_sweep("sft", {"name": "lr", "learning_rate": "1e-3,2e-3", "epochs": "2", "seed": "5"})
    assert plan.common == {"epochs": 2, "seed": 5}
    assert [s.name for s in plan.specs] == ["lr learning_rate=0.001", "lr learning_rate=0.002"]


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        ({"seed": f"0..{MAX_RANGE_VALUES}"}, f"holds more than {MAX_RANGE_VALUES} values"),
        ({"seed": "0..50"}, "the grid has 51 runs, more than 50"),
        ({"learning_rate": "1e-3, 5"}, "must be at most 1 (got 5)"),
    ],
)
def test_limits_are_one_line_errors(texts, expected):
    with pytest.raises(SpecError) as caught:
        plan_sweep("sft", texts)
    assert expected in str(caught.value)


def test_a_text_setting_takes_dots_as_text():
    assert [s.dataset for s in sweep_specs("eval", {"dataset": "../q.json, valid"})] == ["../q.json", "valid"]


class RecordingLauncher:
    def __init__(self):
        self.started = []

    def start(self, store, run_id, *, resume=False):
        assert store.get_run(run_id).status == "queued"
        self.started.append(run_id)


def test_queue_sweep_creates_tagged_runs_and_starts_each_in_order(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    plan = plan_sweep("eval", {"seed": "0..2", "limit": "4"})
    launcher = RecordingLauncher()
    sweep_id, ids = queue_sweep(store, launcher, plan, ["mine"])
    assert launcher.started == ids == [1, 2, 3]
    runs = [store.get_run(i) for i in ids]
    assert [run.spec for run in runs] == list(plan.specs)
    assert all(run.tags == ("mine", f"sweep:{sweep_id}") for run in runs)
    assert [run.spec.seed for run in runs] == [0, 1, 2] and all(run.spec.limit == 4 for run in runs)
