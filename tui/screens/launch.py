"""The launch screen: pick a kind, fill in its settings, review them, start the run.

Enter moves to the next field and never launches; ctrl+s (or the button) opens the review,
and only its confirmation creates the run. A setting given several values (`1e-3, 2e-3`, or
`0..2` for whole numbers) makes a sweep: the grid, or a seeded sample of it, is queued as
`engine sweep` queues it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from engine.core.errors import ReasonlabError, SpecError
from engine.core.spec import KINDS, PARENT_SETTINGS, RunSpec
from engine.core.store import Run, RunStore, open_store
from engine.core.sweep import MAX_SWEEP_RUNS, SweepPlan, queue_sweep, too_many_runs
from tui.screens.review import LaunchReview, ReviewDialog, read_review
from tui.screens.runs import RunsScreen
from tui.widgets.setting_field import SettingField
from tui.widgets.spec_form import SpecForm
from tui.screens.worker_errors import ReportsWorkerErrors

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


class LaunchScreen(ReportsWorkerErrors):
    CSS_PATH = "launch.tcss"
    BINDINGS = [
        Binding(
            "ctrl+s", "submit", "Review", tooltip="Review the run, then launch it (enter moves to the next field)",
            id="launch.submit",
        ),
        Binding("escape", "app.pop_screen", "Back", tooltip="Back without launching", id="launch.back"),
    ]

    class CandidatesRead(Message):
        """Runs that can be named as a parent, per setting, and the model each adapter run
        was trained on."""

        def __init__(self, candidates: dict[str, list[tuple[str, int]]], adapter_models: dict[int, str]) -> None:
            super().__init__()
            self.candidates = candidates
            self.adapter_models = adapter_models

    class Reviewed(Message):
        """The runs checked against the store: shown for confirmation, or refused inline."""

        def __init__(self, plan: SweepPlan, review: LaunchReview | None, refusal: SpecError | None) -> None:
            super().__init__()
            self.plan = plan
            self.review = review
            self.refusal = refusal

    class Created(Message):
        """The run is in the database, queued; the app starts it."""

        def __init__(self, run: Run) -> None:
            super().__init__()
            self.run = run

    class SweepQueued(Message):
        """A sweep's runs are in the database, each with an engine process waiting for a slot."""

        def __init__(self, kind: str, sweep_id: str, run_ids: list[int]) -> None:
            super().__init__()
            self.kind = kind
            self.sweep_id = sweep_id
            self.run_ids = run_ids

    app: ReasonlabApp

    def __init__(self, kind: str = "eval", initial: RunSpec | None = None, title: str = "New run") -> None:
        """`initial` prefills the form with a spec's given settings (a clone)."""
        super().__init__()
        self.kind = initial.kind if initial is not None else kind
        self.initial = {name: str(value) for name, value in initial.explicit_values().items()} if initial else {}
        self.title_text = title
        self.candidates: dict[str, list[tuple[str, int]]] = {}
        self.adapter_models: dict[int, str] = {}
        self._submitting = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="launch-bar"):
            yield Label("Kind", id="launch-kind-label")
            yield Select([(k, k) for k in KINDS], value=self.kind, allow_blank=False, compact=True, id="launch-kind")
            yield Button("Launch…", variant="primary", compact=True, id="launch-submit")
        yield Static(KIND_HELP[self.kind], id="launch-kind-help")
        with Horizontal(id="launch-sweep"):
            yield Label("sweep", id="launch-sweep-label")
            yield Static(id="launch-grid")
            yield Label("sample", classes="launch-sweep-hint")
            yield Input(placeholder="all", compact=True, id="launch-sample")
            yield Label("seed", classes="launch-sweep-hint")
            yield Input(placeholder="0", compact=True, id="launch-sample-seed")
        yield Static(id="launch-sweep-error")
        yield SpecForm(self.kind, self.initial)
        yield Static(id="launch-help")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = self.title_text
        self._read_candidates()
        self._show_grid()
        self.query_one(SpecForm).query(Input).first().focus()

    @property
    def form(self) -> SpecForm:
        return self.query_one(SpecForm)

    @work(thread=True, exit_on_error=False, group="launch-read")
    def _read_candidates(self) -> None:
        with open_store(self.app.db_path) as store:
            candidates = {name: store.parent_candidates(provides) for name, provides in PARENT_SETTINGS.items()}
            adapter_models = {}
            for name, provides in PARENT_SETTINGS.items():
                for _, run_id in candidates[name] if provides == "adapter" else ():
                    try:
                        adapter_models[run_id] = store.get_run(run_id).spec.model
                    except ReasonlabError:
                        pass  # deleted since it was listed; the form refuses its id
        self.post_message(self.CandidatesRead(candidates, adapter_models))

    def on_launch_screen_candidates_read(self, message: CandidatesRead) -> None:
        self.candidates = message.candidates
        self.adapter_models = message.adapter_models
        self._offer_candidates()

    def _offer_candidates(self) -> None:
        for form in self.query(SpecForm):
            if form.has_class("-replaced"):
                continue  # its pickers are going away: updating them races their removal
            for name, runs in self.candidates.items():
                form.set_candidates(name, runs)
            form.set_adapter_models(self.adapter_models)

    @on(Select.Changed, "#launch-kind")
    async def _kind_changed(self, event: Select.Changed) -> None:
        if event.value == self.kind:
            return
        old = self.form
        old.add_class("-replaced")
        while not old.settled:
            await asyncio.sleep(0.01)
        carried = old.edited()
        self.kind = str(event.value)
        self.query_one("#launch-kind-help", Static).update(KIND_HELP[self.kind])
        await old.remove()
        await self.mount(SpecForm(self.kind, carried), after="#launch-sweep-error")
        self._offer_candidates()
        self._show_grid()
        # The old form's fields are gone; typing goes on in the new form's first field.
        self.form.query(Input).first().focus()

    def on_setting_field_focused(self, message: SettingField.Focused) -> None:
        self.query_one("#launch-help", Static).update(f"{message.field.setting_name}: {message.field.help}")

    @on(Input.Changed)
    def _show_grid(self) -> None:
        """How many runs the form makes, shown while it is more than one, with the sample."""
        if not self.query(SpecForm) or self.form.has_class("-replaced"):
            return
        size = self.form.grid_size()
        self.query_one("#launch-sweep").display = size > 1
        try:
            sample, _ = self._sample(size)
            refusal = None
        except SpecError as exc:
            sample, refusal = None, exc.reason
        shown = f"{sample} of {size} runs" if sample is not None else f"{size} runs"
        self.query_one("#launch-grid", Static).update(shown)
        error = self.query_one("#launch-sweep-error", Static)
        error.update(refusal or "")
        error.display = size > 1 and refusal is not None

    def _sample(self, size: int) -> tuple[int | None, int]:
        """The sample size (None: the whole grid) and its seed, checked against a grid of
        `size` runs; a SpecError names 'sample' or 'sample_seed'."""
        if size <= 1:
            return None, 0
        sample_text = self.query_one("#launch-sample", Input).value.strip()
        seed_text = self.query_one("#launch-sample-seed", Input).value.strip()
        sample = _whole_number("sample", sample_text) if sample_text else None
        seed = _whole_number("sample_seed", seed_text) if seed_text else 0
        if sample is not None and not 1 <= sample <= min(size, MAX_SWEEP_RUNS):
            raise SpecError("sample", f"must be between 1 and {min(size, MAX_SWEEP_RUNS)} (got {sample})")
        if sample is None and size > MAX_SWEEP_RUNS:
            raise SpecError("sample", too_many_runs(size, f"sample {MAX_SWEEP_RUNS} or fewer of them"))
        return sample, seed

    @on(Input.Submitted)
    def _next_field(self, event: Input.Submitted) -> None:
        """Enter moves on, as in any form; only the review launches."""
        event.stop()
        self.focus_next()

    @on(Button.Pressed, "#launch-submit")
    def action_submit(self) -> None:
        if self._submitting:
            return
        try:
            plan = self.form.build(*self._sample(self.form.grid_size()))
        except SpecError as exc:
            self._show_grid()
            self.query_one("#launch-sample", Input).focus()
            self.notify(f"Sweep {exc.field.replace('_', ' ')}: {exc.reason}", severity="error", markup=False)
            return
        if plan is None:
            self.notify("Fix the highlighted settings first.", severity="error", markup=False)
            return
        self._submitting = True
        self._review(plan)

    @work(thread=True, exit_on_error=False, group="launch-read")
    def _review(self, plan: SweepPlan) -> None:
        with open_store(self.app.db_path) as store:
            try:
                review, refusal = read_review(store, plan), None
            except SpecError as exc:
                review, refusal = None, exc
        self.post_message(self.Reviewed(plan, review, refusal))

    def on_launch_screen_reviewed(self, message: Reviewed) -> None:
        if message.review is None:
            self._submitting = False
            refusal = message.refusal
            if self.form.has(refusal.field):
                self.form.field(refusal.field).show_error(refusal.reason)
                self.form.field(refusal.field).query_one(f"#input-{refusal.field}").focus()
            self.notify(str(refusal), severity="error", markup=False)
            return

        def launch_if_confirmed(confirmed: bool | None) -> None:
            if not confirmed:
                self._submitting = False
            elif message.plan.varying:
                self._queue_sweep(message.plan)
            else:
                self._create(message.plan)

        self.app.push_screen(ReviewDialog(message.review), launch_if_confirmed)

    @work(thread=True, exit_on_error=False, group="launch-write")
    def _create(self, plan: SweepPlan) -> None:
        spec = plan.specs[0]
        with open_store(self.app.db_path) as store:
            run = store.create_run(spec, parent_id=spec.parent_run_id())
        self.post_message(self.Created(run))

    @work(thread=True, exit_on_error=False, group="launch-write")
    def _queue_sweep(self, plan: SweepPlan) -> None:
        """Queue the sweep as `engine sweep` does, off the app's thread: fifty engine processes
        take seconds to spawn."""
        with open_store(self.app.db_path) as store:
            sweep_id, ids = queue_sweep(store, AppThreadStarter(self.app), plan)
        self.post_message(self.SweepQueued(plan.kind, sweep_id, ids))

    def on_launch_screen_sweep_queued(self, message: SweepQueued) -> None:
        ids = message.run_ids
        self.notify(
            f"Sweep {message.sweep_id}: {len(ids)} {message.kind} runs queued (#{ids[0]}-#{ids[-1]}), "
            f"tagged sweep:{message.sweep_id}.",
            markup=False,
        )
        while not isinstance(self.app.screen, RunsScreen):
            self.app.pop_screen()
        self.app.screen.select_when_loaded(ids[0])

    def worker_failed(self, worker) -> None:
        super().worker_failed(worker)
        if worker.group == "launch-write":
            self._submitting = False  # the form stays, to try again

    def on_launch_screen_created(self, message: Created) -> None:
        self.app.start_run(message.run)


class AppThreadStarter:
    """Starts runs for a worker with the app's launcher, on the app's thread, one at a time: the
    launcher keeps its processes to reap them there, so only that thread touches it."""

    def __init__(self, app: ReasonlabApp) -> None:
        self.app = app

    def start(self, store: RunStore, run_id: int) -> None:
        self.app.call_from_thread(self._start, run_id)

    def _start(self, run_id: int) -> None:
        with open_store(self.app.db_path) as store:
            self.app.launcher.start(store, run_id)


def _whole_number(field: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SpecError(field, f"expected a whole number, got {text!r}") from None
