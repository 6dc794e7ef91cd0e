"""The launch form for one kind of run, built from the engine's run spec."""

from __future__ import annotations

import math

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Input, Select

from engine.core.errors import SpecError
from engine.core.ids import run_id_or_none
from engine.core.spec import RunSpec
from engine.core.sweep import SweepPlan, plan_sweep
from tui.widgets.setting_field import SettingField


def default_text(kind: str, name: str) -> str:
    """The text a field starts with: the kind's default, empty for a pipeline's per-stage one."""
    default = RunSpec.default_for(kind, name)
    return "" if default is None else str(default)


class SpecForm(VerticalScroll):
    """One `SettingField` per setting of `kind`, prefilled with the kind's defaults or with
    `carried` texts (what the user typed before switching kind, or a cloned run's settings).

    An adapter only fits the model it was trained on: picking an adapter run sets the model to
    that run's, and an adapter run typed by id whose model differs is refused inline."""

    def __init__(self, kind: str, carried: dict[str, str] | None = None) -> None:
        super().__init__(id="spec-form")
        self.kind = kind
        self.carried = carried or {}
        self.adapter_models: dict[int, str] = {}
        """The model each offered adapter run was trained on, by run id."""

    def compose(self) -> ComposeResult:
        for setting in RunSpec.settings(self.kind):
            text = self.carried.get(setting.name, default_text(self.kind, setting.name))
            if setting.metadata["choices"] and text not in map(str, setting.metadata["choices"]):
                text = default_text(self.kind, setting.name)
            cross_check = self._adapter_mismatch if setting.name == "adapter" else None
            yield SettingField(self.kind, setting, text, cross_check)

    @property
    def settled(self) -> bool:
        """Whether every field, and every picker in it, has finished mounting. Why: Textual's
        Select fails if it is removed before its own mount handler has run, and a field not yet
        composed has no text to carry, so a form is replaced (switching kind) only once settled."""
        fields = self.fields
        return (
            len(fields) == len(RunSpec.settings(self.kind))
            and all(field.is_mounted for field in fields)
            and all(select.is_mounted for select in self.query(Select))
        )

    @property
    def fields(self) -> list[SettingField]:
        return list(self.query(SettingField))

    def field(self, name: str) -> SettingField:
        return self.query_one(f"#setting-{name}", SettingField)

    def edited(self) -> dict[str, str]:
        """The texts that differ from this kind's defaults."""
        return {f.setting_name: f.text for f in self.fields if f.text != default_text(self.kind, f.setting_name)}

    def has(self, setting: str) -> bool:
        return any(f.setting_name == setting for f in self.fields)

    def set_candidates(self, setting: str, candidates: list[tuple[str, int]]) -> None:
        if self.has(setting):
            self.field(setting).set_candidates(candidates)

    def set_adapter_models(self, models: dict[int, str]) -> None:
        self.adapter_models = models
        if self.has("adapter"):
            self.field("adapter").validate()

    def _model(self) -> str:
        return self.field("model").text.strip() or str(RunSpec.default_for(self.kind, "model"))

    def _adapter_mismatch(self, text: str) -> str | None:
        """Why the adapter run `text` names cannot go with the form's model, or None."""
        run_id = run_id_or_none(text)
        trained_on = self.adapter_models.get(run_id) if run_id is not None else None
        if trained_on is None or not self.has("model") or trained_on == self._model():
            return None
        return f"run #{run_id} was trained on {trained_on}, not on {self._model()}; set the model to match"

    @on(Input.Changed, "#input-model")
    def _model_changed(self) -> None:
        if self.has("adapter"):
            self.field("adapter").validate()

    @on(SettingField.ParentPicked)
    def _parent_picked(self, event: SettingField.ParentPicked) -> None:
        """An adapter run picked from the list brings the model it was trained on."""
        model = self.adapter_models.get(event.run_id)
        if event.field.setting_name == "adapter" and model is not None and self.has("model"):
            self.query_one("#input-model", Input).value = model

    def grid_size(self) -> int:
        """How many runs the form's values make (a field that is refused counts once)."""
        return math.prod(f.value_count for f in self.fields)

    def build(self, sample: int | None = None, sample_seed: int = 0) -> SweepPlan | None:
        """The runs the form describes (one, or a sweep's grid or `sample` of it), or None after
        showing why the form is refused (the first invalid field gets focus). A refusal of the
        sample itself is raised as a SpecError naming 'sample'."""
        fields = self.fields
        invalid = [f for f in fields if not f.validate()]
        if not invalid:
            texts = {name: text for name, text in self.edited().items() if text.strip()}
            try:
                return plan_sweep(self.kind, texts, sample, sample_seed)
            except SpecError as exc:
                if not self.has(exc.field):
                    raise
                field = self.field(exc.field)
                field.show_error(exc.reason)
                invalid = [field]
        invalid[0].query_one(f"#input-{invalid[0].setting_name}").focus()
        return None
