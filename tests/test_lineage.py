"""The store's lineage queries: which runs a run was built from, which were built from it,
and the family (pipeline, sweep or lineage) it belongs to."""

from __future__ import annotations

import pytest

from engine.core.errors import ReasonlabError
from engine.core.spec import RunSpec
from engine.core.store import RunStore


def links(related) -> list[tuple[int, tuple[str, ...]]]:
    return [(r.id, r.via) for r in related]


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs.db")


def make_pipeline(store: RunStore) -> list[int]:
    """A pipeline and its stages, created the way engine/pipeline.py creates them."""
    pipe = store.create_run(RunSpec(kind="pipeline", rounds=1))
    tag = [f"pipeline:{pipe.id}"]
    sft = store.create_run(RunSpec(kind="sft"), parent_id=pipe.id, tags=tag)
    rollout = store.create_run(RunSpec(kind="rollout", adapter=str(sft.id)), parent_id=sft.id, tags=tag)
    rft = store.create_run(RunSpec(kind="rft", adapter=str(sft.id), data=str(rollout.id)), parent_id=rollout.id, tags=tag)
    return [pipe.id, sft.id, rollout.id, rft.id]


def test_a_stage_names_its_pipeline_and_the_runs_its_settings_name(store):
    pipe, sft, rollout, rft = make_pipeline(store)
    lineage = store.lineage(rft)
    assert links(lineage.parents) == [(pipe, ("pipeline",)), (sft, ("adapter",)), (rollout, ("data",))]
    assert lineage.children == ()
    assert links(store.lineage(sft).children) == [(rollout, ("adapter",)), (rft, ("adapter",))]
    assert links(store.lineage(pipe).children) == [(sft, ("pipeline",)), (rollout, ("pipeline",)), (rft, ("pipeline",))]
    assert store.lineage(pipe).parents == ()


def test_a_teacher_rollout_without_an_adapter_follows_the_previous_stage(store):
    pipe = store.create_run(RunSpec(kind="pipeline"))
    tag = [f"pipeline:{pipe.id}"]
    sft = store.create_run(RunSpec(kind="sft"), parent_id=pipe.id, tags=tag)
    rollout = store.create_run(RunSpec(kind="rollout", model="other-model"), parent_id=sft.id, tags=tag)
    assert links(store.lineage(rollout.id).parents) == [(pipe.id, ("pipeline",)), (sft.id, ("previous stage",))]


def test_a_path_is_no_link_and_a_recorded_parent_alone_is_one(store):
    base = store.create_run(RunSpec(kind="sft"))
    by_path = store.create_run(RunSpec(kind="eval", adapter=f"/models/{base.id}"))
    recorded = store.create_run(RunSpec(kind="eval"), parent_id=base.id)
    assert store.lineage(by_path.id).parents == ()
    assert links(store.lineage(base.id).children) == [(recorded.id, ("parent",))]
    assert store.lineage(recorded.id).parents[0].label == f"sft-{base.id}"


def test_a_deleted_parent_is_left_out_and_a_malformed_row_is_passed_over(store):
    base = store.create_run(RunSpec(kind="sft"))
    child = store.create_run(RunSpec(kind="eval", adapter=str(base.id)), parent_id=base.id)
    broken = store.create_run(RunSpec(kind="eval", adapter=str(base.id)))
    store.update_run(broken.id, spec="{not json", tags="[oops")
    assert links(store.lineage(base.id).children) == [(child.id, ("adapter",))]
    store.delete_run(base.id)
    assert store.lineage(child.id).parents == ()
    assert store.lineage(broken.id).parents == ()


def test_the_family_of_a_stage_is_its_pipeline_in_order(store):
    ids = make_pipeline(store)
    store.create_run(RunSpec(kind="eval", adapter=str(ids[-1])))  # built from it, not in it
    for run_id in ids:
        family = store.family(run_id)
        assert (family.kind, family.key) == ("pipeline", f"pipeline:{ids[0]}")
        assert [m.id for m in family.members] == ids


def test_the_family_of_a_sweep_run_is_the_sweep_with_its_results(store):
    base = store.create_run(RunSpec(kind="sft"))
    sweep = [store.create_run(RunSpec(kind="eval", adapter=str(base.id), seed=s), tags=["sweep:x1", "mine"]) for s in (1, 2)]
    store.create_run(RunSpec(kind="eval"), tags=["mine"])
    store.log_metrics(sweep[1].id, [(0, "accuracy", 0.5, 0.0)])
    family = store.family(sweep[0].id)
    assert (family.kind, family.key) == ("sweep", "sweep:x1")
    assert [m.id for m in family.members] == [r.id for r in sweep]
    assert family.members[1].summary == {"accuracy": 0.5} and family.members[0].summary == {}


def test_a_run_in_no_family_has_its_lineage_without_siblings(store):
    base = store.create_run(RunSpec(kind="sft"))
    child = store.create_run(RunSpec(kind="rft", adapter=str(base.id)), parent_id=base.id)
    sibling = store.create_run(RunSpec(kind="eval", adapter=str(base.id)), parent_id=base.id)
    grandchild = store.create_run(RunSpec(kind="eval", adapter=str(child.id)), parent_id=child.id)
    alone = store.create_run(RunSpec(kind="eval"))
    family = store.family(child.id)
    assert (family.kind, [m.id for m in family.members]) == ("lineage", [base.id, child.id, grandchild.id])
    assert sibling.id in [m.id for m in store.family(base.id).members]
    assert [m.id for m in store.family(alone.id).members] == [alone.id]


def test_a_missing_run_is_one_clear_error(store):
    with pytest.raises(ReasonlabError, match="No run with id 42"):
        store.lineage(42)
    with pytest.raises(ReasonlabError, match="No run with id 42"):
        store.family(42)
