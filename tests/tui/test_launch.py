"""Launching runs from the form: fields, enter, the review, adapters and datasets, clones."""

from __future__ import annotations

import json

from engine.core.spec import RunSpec
from engine.core.store import RunStore
from tests.tui.conftest import wait_for
from textual.widgets import Input, Select

from tui.screens.launch import LaunchScreen
from tui.screens.review import ReviewDialog
from tui.screens.runs import RunsScreen
from tui.widgets.runs_table import RunsTable
from tui.widgets.setting_field import SettingField
from tui.widgets.spec_form import SpecForm


def statuses(app) -> dict[int, str]:
    return {row.id: row.status for row in app.screen.query_one(RunsTable)._rows}


async def test_launched_run_reaches_completed_in_the_table(make_app, db_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen))
        app.screen.query_one("#input-name", Input).value = "from-form"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewDialog))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and statuses(app).get(1) == "completed")
        table = app.screen.query_one(RunsTable)
        assert table.current_run.id == 1
        assert table.current_run.name == "from-form"
    store = RunStore(db_path)
    run = store.get_run(1)
    assert run.status == "completed" and run.spec.kind == "eval"
    assert "fake engine: done" in (db_path.parent / "runs.db.runs" / "1" / "log.txt").read_text()


async def test_invalid_value_is_refused_inline_and_creates_no_run(make_app, db_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen))
        app.screen.query_one("#input-batch_size", Input).value = "0"
        await pilot.pause()
        field = app.screen.query_one("#setting-batch_size", SettingField)
        assert field.error == "must be at least 1 (got 0)"
        assert field.has_class("-invalid")
        notices, notify = [], app.notify
        app.notify = lambda message, **kwargs: (notices.append(message), notify(message, **kwargs))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: notices)  # the refusal, which returns before any run is created
        assert notices == ["Fix the highlighted settings first."]
        assert isinstance(app.screen, LaunchScreen)
        assert app.screen.focused is app.screen.query_one("#input-batch_size", Input)
    assert RunStore(db_path).list_runs() == []


async def test_kind_switch_rebuilds_the_form_and_keeps_edits(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await open_form(pilot)
        app.screen.query_one("#input-seed", Input).value = "7"
        # Waiting for the new form to settle, not just to appear: a test that ends while its
        # pickers still mount tears them down mid-mount, and Textual's Select then fails.
        await open_form_kind(pilot, "sft")
        assert app.screen.query("#input-lora_rank")
        assert app.screen.query_one("#input-seed", Input).value == "7"
        assert app.screen.query_one("#input-learning_rate", Input).value == str(RunSpec.default_for("sft", "learning_rate"))
        assert not app.screen.query("#setting-mode")


async def test_parent_run_is_offered_and_recorded(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen))
        picker = app.screen.query_one("#setting-adapter .parent-picker", Select)
        await wait_for(pilot, lambda: app.screen.query_one("#setting-adapter", SettingField).candidate_ids)
        assert app.screen.query_one("#setting-adapter", SettingField).candidate_ids == {1}
        picker.value = 1
        await pilot.pause()
        assert app.screen.query_one("#input-adapter", Input).value == "1"
        app.screen.query_one("#input-adapter", Input).value = "2"
        await pilot.pause()
        assert "not a completed run with an adapter" in app.screen.query_one("#setting-adapter", SettingField).error
        app.screen.query_one("#input-adapter", Input).value = "1"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and 7 in statuses(app))
    run = RunStore(seeded_db).get_run(7)
    assert run.parent_id == 1 and run.spec.adapter == "1"


def settled_form_of(screen: LaunchScreen, kind: str) -> bool:
    """Whether the screen holds one form, of `kind`, settled. Between removing the old form and
    mounting the new one the screen holds none, so this asks without `screen.form`, which fails
    then."""
    forms = list(screen.query(SpecForm))
    return len(forms) == 1 and forms[0].kind == kind and forms[0].settled


async def open_form(pilot, kind: str = "eval") -> LaunchScreen:
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, LaunchScreen))
    if kind != "eval":
        pilot.app.screen.query_one("#launch-kind", Select).value = kind
    await wait_for(pilot, lambda: settled_form_of(pilot.app.screen, kind))
    return pilot.app.screen


async def test_after_switching_kind_typing_lands_in_the_new_forms_first_field(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_form(pilot)
        screen.query_one("#launch-kind", Select).focus()
        screen = await open_form_kind(pilot, "sft")
        await wait_for(pilot, lambda: screen.focused is screen.query_one("#input-name", Input))
        await pilot.press(*"lr-try")
        assert screen.query_one("#input-name", Input).value == "lr-try"
        assert screen.query_one("#launch-kind", Select).value == "sft"


async def open_form_kind(pilot, kind: str) -> LaunchScreen:
    pilot.app.screen.query_one("#launch-kind", Select).value = kind
    await wait_for(pilot, lambda: settled_form_of(pilot.app.screen, kind))
    return pilot.app.screen


async def test_enter_moves_to_the_next_field_and_never_launches(make_app, db_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_form(pilot)
        assert screen.focused is screen.query_one("#input-name", Input)
        await pilot.press(*"quick", "enter")
        assert screen.focused is screen.query_one("#input-model", Input)
        screen.query_one("#input-limit", Input).focus()
        await pilot.press("2", "enter")
        await pilot.pause(0.3)
        assert screen.focused is not screen.query_one("#input-limit", Input)
        assert app.screen is screen
    assert RunStore(db_path).list_runs() == []


async def test_review_shows_the_run_escape_returns_enter_launches(make_app, db_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_form(pilot)
        await pilot.press(*"quick")
        screen.query_one("#input-limit", Input).value = "20"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewDialog))
        lines = app.screen.review.lines()
        assert lines[:4] == ["Kind      eval", "Model     smollm2-135m", "Adapter   none", "Dataset   valid, 200 questions, the first 20 used"]
        assert lines[5:] == ["Changed from the defaults", "  limit  20", "  name   quick"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
        await pilot.pause(0.3)
        assert RunStore(db_path).list_runs() == []
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewDialog))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and statuses(app).get(1) == "completed")
    run = RunStore(db_path).get_run(1)
    assert (run.name, run.spec.limit) == ("quick", 20)


async def test_picking_an_adapter_run_sets_its_model(make_app, seeded_db):
    RunStore(seeded_db).update_run(1, spec=RunSpec(kind="sft", model="other-model").to_json())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_form(pilot)
        adapter = screen.query_one("#setting-adapter", SettingField)
        await wait_for(pilot, lambda: adapter.candidate_ids == {1})
        assert screen.query_one("#input-model", Input).value == "smollm2-135m"
        screen.query_one("#setting-adapter .parent-picker", Select).value = 1
        await wait_for(pilot, lambda: screen.query_one("#input-model", Input).value == "other-model")
        await pilot.pause()
        assert adapter.error is None


async def test_adapter_trained_on_another_model_is_refused_inline(make_app, seeded_db):
    RunStore(seeded_db).update_run(1, spec=RunSpec(kind="sft", model="other-model").to_json())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_form(pilot)
        adapter = screen.query_one("#setting-adapter", SettingField)
        await wait_for(pilot, lambda: adapter.candidate_ids == {1})
        screen.query_one("#input-adapter", Input).value = "1"
        await pilot.pause()
        assert adapter.error == "run #1 was trained on other-model, not on smollm2-135m; set the model to match"
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
        assert app.screen is screen
        screen.query_one("#input-model", Input).value = "other-model"
        await wait_for(pilot, lambda: adapter.error is None)
    assert len(RunStore(seeded_db).list_runs()) == 6


async def test_dataset_is_checked_inline(make_app, db_path, tmp_path):
    not_a_list = tmp_path / "object.json"
    not_a_list.write_text('{"question": "answer"}')
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([["Convert 1 km to m.", 1000.0], ["Convert 2 km to m.", 2000.0]]))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_form(pilot)
        dataset = screen.query_one("#input-dataset", Input)
        field = screen.query_one("#setting-dataset", SettingField)
        dataset.value = str(tmp_path / "missing.json")
        await pilot.pause()
        assert field.error == (
            f"no file {tmp_path / 'missing.json'}; give 'train', 'broad', 'valid', 'shifted', 'selection' "
            "(or some joined by '+', e.g. 'train+broad') or an existing JSON file"
        )
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
        assert app.screen is screen and screen.focused is dataset
        dataset.value = str(not_a_list)
        await pilot.pause()
        assert field.error == f"{not_a_list} holds a JSON dict; a dataset is a list of rows"
        dataset.value = "shifted"  # every named split, not only train and valid
        await pilot.pause()
        assert field.error is None
        dataset.value = "valid+shifted"  # and named splits joined
        await pilot.pause()
        assert field.error is None
        dataset.value = str(rows)
        await pilot.pause()
        assert field.error is None
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewDialog))
        assert f"Dataset   {rows}, 2 questions" in app.screen.review.lines()
    assert RunStore(db_path).list_runs() == []


async def test_clone_prefills_the_form_with_the_runs_settings(make_app, seeded_db):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(RunsTable).run_ids) == 6)
        app.screen.query_one(RunsTable).select_run(4)  # rollout of adapter #1 with 4 samples
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen))
        screen = app.screen
        assert screen.form.kind == "rollout"
        assert screen.query_one("#input-adapter", Input).value == "1"
        assert screen.query_one("#input-num_samples", Input).value == "4"
        assert screen.query_one("#input-seed", Input).value == str(RunSpec.default_for("rollout", "seed"))
        await wait_for(pilot, lambda: screen.query_one("#setting-adapter", SettingField).candidate_ids == {1})
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewDialog))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and 7 in statuses(app))
    clone = RunStore(seeded_db).get_run(7)
    assert clone.spec.explicit_values() == {"adapter": "1", "num_samples": 4}
    assert clone.parent_id == 1


async def test_switching_kind_before_the_form_has_settled_leaves_one_form_of_the_last_kind(make_app):
    """Textual's Select fails if it is removed before its own mount handler has run: a kind
    switched while the first form is still mounting (a loaded machine, a quick user) waits for it."""
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LaunchScreen))
        kind = pilot.app.screen.query_one("#launch-kind", Select)
        kind.value = "sft"
        kind.value = "rft"
        screen = pilot.app.screen
        await wait_for(pilot, lambda: settled_form_of(screen, "rft"))
        assert screen.focused is screen.form.query(Input).first()
