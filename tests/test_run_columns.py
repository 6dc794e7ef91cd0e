"""The store's chosen columns (effective settings, final metrics), their sorting, and the rows
it reads for grouping runs."""

from __future__ import annotations

import pytest

from engine.core.columns import SETTING_NAMES, choosable_columns, is_valid_key
from engine.core.errors import ReasonlabError
from engine.core.spec import RunSpec, setting_text
from engine.core.store import RunFilter, RunOrder, RunStore


def _run(store: RunStore, spec: RunSpec, tags=(), **summary: float) -> int:
    run = store.create_run(spec, tags=tags)
    if summary:
        store.log_metrics(run.id, [(1, name, value, 0.0) for name, value in summary.items()])
    return run.id


def _values(store: RunStore, key: str) -> dict[int, object]:
    page = store.run_page(RunFilter(), RunOrder(), 100, [key])
    return {row.id: row.values[key] for row in page.rows}


def test_setting_columns_show_effective_values(db_path):
    store = RunStore(db_path)
    sft = _run(store, RunSpec(kind="sft", lora_rank=16))
    direct = _run(store, RunSpec(kind="eval", mode="direct"))
    rollout = _run(store, RunSpec(kind="rollout"))
    pipeline = _run(store, RunSpec(kind="pipeline"))
    grpo = _run(store, RunSpec(kind="grpo", learning_rate=5e-5))
    assert _values(store, "setting:lora_alpha") == {sft: 64, direct: None, rollout: None, pipeline: 32, grpo: 32}
    assert _values(store, "setting:max_new_tokens") == {
        sft: None, direct: 24, rollout: 224, pipeline: setting_text(None), grpo: 224,
    }
    assert _values(store, "setting:learning_rate") == {sft: 2e-3, direct: None, rollout: None, pipeline: 2e-3, grpo: 5e-5}
    assert _values(store, "setting:temperature")[rollout] == 0.8
    for name in SETTING_NAMES:  # every setting's SQL value is the spec's own
        for run_id in (sft, direct, rollout, grpo):
            run = store.get_run(run_id)
            applies = name in {f.name for f in RunSpec.settings(run.kind)}
            assert _values(store, f"setting:{name}")[run_id] == (getattr(run.spec, name) if applies else None), name


def test_metric_columns_read_the_summary_and_unknown_columns_are_refused(db_path):
    store = RunStore(db_path)
    first = _run(store, RunSpec(kind="eval"), accuracy=0.5, **{"accuracy/family=length": 0.25})
    second = _run(store, RunSpec(kind="eval"))
    assert _values(store, "metric:accuracy/family=length") == {first: 0.25, second: None}
    assert store.logged_metric_names() == ["accuracy", "accuracy/family=length"]
    keys = [c.key for c in choosable_columns(store.logged_metric_names())]
    assert "metric:accuracy/family=length" in keys and "setting:learning_rate" in keys
    for bad in ("setting:nope", "metric:not_declared", 'metric:accuracy/x"y', "summary", "metric:accuracy') --"):
        assert not is_valid_key(bad)
        with pytest.raises(ReasonlabError, match="Unknown column"):
            store.run_page(RunFilter(), RunOrder(), 10, [bad])


def test_sorting_by_a_chosen_column_runs_in_sql_with_missing_values_last(db_path):
    store = RunStore(db_path)
    low = _run(store, RunSpec(kind="sft", learning_rate=1e-3), loss=0.9)
    default = _run(store, RunSpec(kind="sft"), loss=0.4)
    high = _run(store, RunSpec(kind="sft", learning_rate=5e-3))
    ev = _run(store, RunSpec(kind="eval"), loss=0.1)

    def order(column: str, descending: bool) -> list[int]:
        return [r.id for r in store.run_page(RunFilter(), RunOrder(column, descending), 100).rows]

    assert order("setting:learning_rate", False) == [low, default, high, ev]
    assert order("setting:learning_rate", True) == [high, default, low, ev]
    assert order("metric:loss", False) == [ev, default, low, high]


def test_a_stored_spec_that_no_longer_reads_leaves_its_cells_empty(db_path):
    store = RunStore(db_path)
    broken = _run(store, RunSpec(kind="sft"))
    store.db.execute("update runs set spec = '{not json' where id = ?", [broken])
    odd = _run(store, RunSpec(kind="sft"))
    store.db.execute("update runs set spec = '{\"lora_rank\": \"x\"}' where id = ?", [odd])
    assert _values(store, "setting:lora_alpha") == {broken: None, odd: None}


def test_group_rows_by_sweep_pipeline_tag_and_setting(db_path):
    store = RunStore(db_path)
    swept = [_run(store, RunSpec(kind="sft", seed=s), tags=["sweep:3", "keep"], accuracy=a) for s, a in enumerate((0.8, 0.9))]
    pipe = _run(store, RunSpec(kind="pipeline"))
    stage = _run(store, RunSpec(kind="sft"), tags=[f"pipeline:{pipe}"])
    alone = _run(store, RunSpec(kind="eval"))

    def keys(grouping: str, run_filter: RunFilter = RunFilter()) -> set[tuple]:
        return {(key, run_id) for key, run_id, *_ in store.group_rows(run_filter, grouping, ["metric:accuracy"])}

    assert keys("sweep") == {("sweep:3", swept[0]), ("sweep:3", swept[1]), (None, pipe), (None, stage), (None, alone)}
    assert keys("pipeline") >= {(f"pipeline:{pipe}", pipe), (f"pipeline:{pipe}", stage), (None, alone)}
    assert keys("tag") == {
        ("sweep:3", swept[0]), ("keep", swept[0]), ("sweep:3", swept[1]), ("keep", swept[1]),
        (None, pipe), (f"pipeline:{pipe}", stage), (None, alone),
    }
    assert keys("setting:seed", RunFilter(kind="sft")) == {(0, swept[0]), (1, swept[1]), (0, stage)}
    rows = store.group_rows(RunFilter(ids=(swept[1], alone)), "sweep", ["metric:accuracy", "status"])
    assert sorted(rows, key=lambda r: r[1]) == [("sweep:3", swept[1], 0.9, "queued"), (None, alone, None, "queued")]


def test_a_filter_by_ids_and_column_values(db_path):
    store = RunStore(db_path)
    first, second, third = (_run(store, RunSpec(kind="sft", name=f"r{i}", seed=i), accuracy=i / 10) for i in range(3))
    page = store.run_page(RunFilter(ids=(first, third)), RunOrder(), 10)
    assert [r.id for r in page.rows] == [third, first] and page.total == 2
    assert store.column_values([third, first, 999], ["setting:seed", "metric:accuracy"]) == [
        (first, "r0", 0, 0.0), (third, "r2", 2, 0.2),
    ]
