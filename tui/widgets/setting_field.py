"""One run-spec setting in the launch form: a label, an input or picker, and its error."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select

from engine.core.dataset_files import count_rows
from engine.core.errors import DataError, SpecError
from engine.core.ids import run_id_or_none
from engine.core.spec import PARENT_SETTINGS, RunSpec, setting_text
from engine.core.sweep import setting_values

PLACEHOLDERS = {"data": "run id or JSON file", "adapter": "run id or adapter folder"}
PARENT_NOUNS = {"adapter": "run with an adapter", "rollout": "rollout run"}
"""What a parent setting's run must be, in words, by what it provides (see PARENT_SETTINGS)."""
FILE_SETTINGS = ("dataset", "data", "reference_dataset", "rollout_dataset")
"""Settings that may name a JSON file: checked as they are typed, so a missing or broken file is
refused before the run starts rather than a second after."""


class SettingField(Vertical):
    """Validates its own text as it changes, using the spec's rules for this one setting."""

    class Focused(Message):
        """The field got focus; the form shows its help."""

        def __init__(self, field: SettingField) -> None:
            super().__init__()
            self.field = field

    class ParentPicked(Message):
        """A run was picked from the parent picker (the form may follow it, e.g. its model)."""

        def __init__(self, field: SettingField, run_id: int) -> None:
            super().__init__()
            self.field = field
            self.run_id = run_id

    def __init__(
        self, kind: str, setting: dataclasses.Field, text: str,
        cross_check: Callable[[str], str | None] | None = None,
    ) -> None:
        """`cross_check` refuses a text that is valid alone but not with the rest of the form
        (a reason, or None)."""
        super().__init__(id=f"setting-{setting.name}", classes="setting")
        self.kind = kind
        self.setting = setting
        self.initial_text = text
        self.setting_name = setting.name
        self.cross_check = cross_check
        self.candidate_ids: set[int] = set()
        self.error: str | None = None
        self.value_count = 1
        """How many values the field holds: above 1 it is swept."""

    @property
    def help(self) -> str:
        meta = self.setting.metadata
        limits = []
        if meta["minimum"] is not None:
            limits.append(f"min {meta['minimum']:g}")
        if meta["maximum"] is not None:
            limits.append(f"max {meta['maximum']:g}")
        default = RunSpec.default_for(self.kind, self.setting_name)
        extra = f" Default: {setting_text(default)}." if default != "" else ""
        return meta["help"] + extra + (f" ({', '.join(limits)})" if limits else "")

    def compose(self) -> ComposeResult:
        choices = self.setting.metadata["choices"]
        with Horizontal(classes="setting-row"):
            yield Label(self.setting_name, classes="setting-label")
            if choices:
                yield Select(
                    [(str(c), str(c)) for c in choices], value=self.initial_text,
                    allow_blank=False, compact=True, id=f"input-{self.setting_name}",
                )
            else:
                if self.setting_name in PARENT_SETTINGS:
                    yield Select(
                        [], prompt=f"choose a {PARENT_NOUNS[PARENT_SETTINGS[self.setting_name]]}", compact=True,
                        classes="parent-picker",
                    )
                yield Input(
                    self.initial_text, placeholder=PLACEHOLDERS.get(self.setting_name, "(empty)"),
                    compact=True, id=f"input-{self.setting_name}",
                )
        yield Label("", classes="setting-error")

    @property
    def text(self) -> str:
        control = self.query_one(f"#input-{self.setting_name}")
        if isinstance(control, Select):
            return str(control.value)
        assert isinstance(control, Input)
        return control.value

    def show_error(self, reason: str | None) -> None:
        self.error = reason
        self.query_one(".setting-error", Label).update(reason or "")
        self.set_class(bool(reason), "-invalid")

    def set_candidates(self, candidates: list[tuple[str, int]]) -> None:
        """Offer these runs (label, id) in the parent picker."""
        self.candidate_ids = {run_id for _, run_id in candidates}
        self.query_one(".parent-picker", Select).set_options(candidates)
        self.validate()

    def validate(self) -> bool:
        """Show the reason the current text is refused, if it is; True when it is accepted.
        A typed field may hold several values (`1e-3, 2e-3`, `0..2`: a sweep), parsed as
        `engine sweep` parses them; each value is checked."""
        text = self.text.strip()
        reason = None
        try:
            values = [str(v) for v in setting_values(self.kind, self.setting_name, text)] if text else [""]
        except SpecError as exc:
            values, reason = [], exc.reason
        for value in values:
            reason = reason or self._refusal(value)
        self.value_count = len(values) if reason is None else 1
        self.show_error(reason)
        return reason is None

    def _refusal(self, text: str) -> str | None:
        """Why one value cannot be used beyond the spec's own rules, or None."""
        run_id = run_id_or_none(text)
        if self.setting_name in PARENT_SETTINGS and run_id is not None and run_id not in self.candidate_ids:
            return f"run #{run_id} is not a completed {PARENT_NOUNS[PARENT_SETTINGS[self.setting_name]]}"
        if self.setting_name in FILE_SETTINGS and text and run_id is None:
            try:
                count_rows(text)
            except DataError as exc:
                return str(exc)
        return self.cross_check(text) if self.cross_check is not None else None

    def on_input_changed(self, event: Input.Changed) -> None:
        """Validate; the event goes on up, so the form can check the settings that depend on
        this one."""
        self.validate()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.has_class("parent-picker") and event.value != Select.NULL:
            self.query_one(Input).value = str(event.value)
            self.post_message(self.ParentPicked(self, int(event.value)))

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self.post_message(self.Focused(self))
