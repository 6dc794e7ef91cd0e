"""The launch form for one kind of run, built from the engine's run spec."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll

from engine.core.errors import SpecError
from engine.core.ids import run_id_or_none
from engine.core.spec import RunSpec
from tui.widgets.setting_field import PARENT_SETTINGS, SettingField


def default_text(kind: str, name: str) -> str:
    return str(RunSpec.default_for(kind, name))


class SpecForm(VerticalScroll):
    """One `SettingField` per setting of `kind`, prefilled with the kind's defaults or with
    `carried` texts (what the user typed before switching kind)."""

    def __init__(self, kind: str, carried: dict[str, str] | None = None) -> None:
        super().__init__(id="spec-form")
        self.kind = kind
        self.carried = carried or {}

    def compose(self) -> ComposeResult:
        for setting in RunSpec.settings(self.kind):
            text = self.carried.get(setting.name, default_text(self.kind, setting.name))
            if setting.metadata["choices"] and text not in map(str, setting.metadata["choices"]):
                text = default_text(self.kind, setting.name)
            yield SettingField(self.kind, setting, text)

    @property
    def fields(self) -> list[SettingField]:
        return list(self.query(SettingField))

    def field(self, name: str) -> SettingField:
        return self.query_one(f"#setting-{name}", SettingField)

    def edited(self) -> dict[str, str]:
        """The texts that differ from this kind's defaults."""
        return {f.setting_name: f.text for f in self.fields if f.text != default_text(self.kind, f.setting_name)}

    def set_candidates(self, setting: str, candidates: list[tuple[str, int]]) -> None:
        if any(f.setting_name == setting for f in self.fields):
            self.field(setting).set_candidates(candidates)

    def build(self) -> tuple[RunSpec, int | None] | None:
        """The spec and parent run id, or None after showing why the form is refused (the
        first invalid field gets focus)."""
        fields = self.fields
        invalid = [f for f in fields if not f.validate()]
        if not invalid:
            try:
                spec = RunSpec.from_text(self.kind, {f.setting_name: f.text for f in fields})
            except SpecError as exc:
                field = self.field(exc.field)
                field.show_error(exc.reason)
                invalid = [field]
        if invalid:
            invalid[0].query_one(f"#input-{invalid[0].setting_name}").focus()
            return None
        parents = [getattr(spec, name) for name in PARENT_SETTINGS if name in {f.setting_name for f in fields}]
        parent_id = next((run_id_or_none(p) for p in parents if run_id_or_none(p) is not None), None)
        return spec, parent_id
