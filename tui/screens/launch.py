"""The launch screen: pick a kind, fill in its settings, start the run."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from engine.core.spec import KINDS, RunSpec
from engine.core.store import Run
from tui.queries import open_store, parent_candidates
from tui.widgets.setting_field import PARENT_SETTINGS, SettingField
from tui.widgets.spec_form import SpecForm

if TYPE_CHECKING:
    from tui.app import ReasonlabApp

KIND_HELP = {
    "eval": "Evaluate a model (and adapter) on a question set.",
    "sft": "Fine-tune a LoRA adapter on worked solutions.",
    "rollout": "Sample k answers per question and keep the correct ones (RFT data).",
    "rft": "Fine-tune on the correct samples of a rollout run.",
    "pipeline": "SFT, then rounds of rollout and RFT.",
    "grpo": "Online RL (GRPO): sample groups of answers, reinforce the rewarded ones.",
}


class LaunchScreen(Screen):
    CSS_PATH = "launch.tcss"
    BINDINGS = [
        Binding("ctrl+s", "submit", "Launch", tooltip="Create the run and start the engine", id="launch.submit"),
        Binding("escape", "app.pop_screen", "Back", tooltip="Back without launching", id="launch.back"),
    ]

    class CandidatesRead(Message):
        """Runs that can be named as a parent, per setting."""

        def __init__(self, candidates: dict[str, list[tuple[str, int]]]) -> None:
            super().__init__()
            self.candidates = candidates

    class Created(Message):
        """The run is in the database, queued; the app starts it."""

        def __init__(self, run: Run) -> None:
            super().__init__()
            self.run = run

    app: ReasonlabApp

    def __init__(self, kind: str = "eval") -> None:
        super().__init__()
        self.kind = kind
        self.candidates: dict[str, list[tuple[str, int]]] = {}
        self._submitting = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="launch-bar"):
            yield Label("Kind", id="launch-kind-label")
            yield Select([(k, k) for k in KINDS], value=self.kind, allow_blank=False, compact=True, id="launch-kind")
            yield Button("Launch", variant="primary", compact=True, id="launch-submit")
        yield Static(KIND_HELP[self.kind], id="launch-kind-help")
        yield SpecForm(self.kind)
        yield Static(id="launch-help")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "New run"
        self._read_candidates()
        self.query_one(SpecForm).query(Input).first().focus()

    @property
    def form(self) -> SpecForm:
        return self.query_one(SpecForm)

    @work(thread=True, group="launch-read")
    def _read_candidates(self) -> None:
        with open_store(self.app.db_path) as store:
            candidates = {name: parent_candidates(store, name) for name in PARENT_SETTINGS}
        self.post_message(self.CandidatesRead(candidates))

    def on_launch_screen_candidates_read(self, message: CandidatesRead) -> None:
        self.candidates = message.candidates
        self._offer_candidates()

    def _offer_candidates(self) -> None:
        for form in self.query(SpecForm):  # none while the kind is being switched
            for name, runs in self.candidates.items():
                form.set_candidates(name, runs)

    @on(Select.Changed, "#launch-kind")
    async def _kind_changed(self, event: Select.Changed) -> None:
        if event.value == self.kind:
            return
        carried = self.form.edited()
        self.kind = str(event.value)
        self.query_one("#launch-kind-help", Static).update(KIND_HELP[self.kind])
        # Textual's Select fails if it is removed before its own mount handler has run.
        while not all(select.is_mounted for select in self.form.query(Select)):
            await asyncio.sleep(0.01)
        await self.form.remove()
        await self.mount(SpecForm(self.kind, carried), after="#launch-kind-help")
        self._offer_candidates()

    def on_setting_field_focused(self, message: SettingField.Focused) -> None:
        self.query_one("#launch-help", Static).update(f"{message.field.setting_name}: {message.field.help}")

    @on(Button.Pressed, "#launch-submit")
    @on(Input.Submitted)
    def action_submit(self) -> None:
        if self._submitting:
            return
        built = self.form.build()
        if built is None:
            self.notify("Fix the highlighted settings first.", severity="error")
            return
        self._submitting = True
        self._create(*built)

    @work(thread=True, group="launch-write")
    def _create(self, spec: RunSpec, parent_id: int | None) -> None:
        with open_store(self.app.db_path) as store:
            run = store.create_run(spec, parent_id=parent_id)
        self.post_message(self.Created(run))

    def on_launch_screen_created(self, message: Created) -> None:
        self.app.start_run(message.run)
