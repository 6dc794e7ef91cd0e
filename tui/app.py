"""The reasonlab app: wires the screens to one runs database and the engine launcher."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from engine.core.errors import ReasonlabError
from engine.core.processes import ENGINE_COMMAND, Launcher
from engine.core.store import RESUMABLE_STATUSES, Run, RunStore, default_db_path, open_store
from tui.commands import ReasonlabCommands
from tui.screens.compare import CompareScreen
from tui.screens.family import FamilyScreen
from tui.screens.help import HelpScreen
from tui.screens.launch import LaunchScreen
from tui.screens.run import RunScreen
from tui.screens.runs import RunsScreen

HELP_SECTIONS = (
    ("Runs", "Every run with its status and key results, updated live. Filter by kind, status and "
     "tag, search, sort by any column (click a header, or s and r), select runs with space.",
     RunsScreen),
    ("Launch", "A form for each kind of run with the engine's defaults. Invalid values are refused "
     "as you type; adapter and data can name a completed run (pick it from the list) or a path. "
     "Enter moves to the next field; ctrl+s shows a review, and only its confirmation launches.",
     LaunchScreen),
    ("Run", "Live charts against steps, progress and ETA, generated samples (enter shows one in "
     "full), the log tail, the spec and the artifacts. Evals and rollouts open on their results: "
     "accuracy, answer rate and tokens/s, counted live while they run.", RunScreen),
    ("Compare", "Curves of every metric overlaid, the settings that differ, a summary, and each "
     "question's outcome per run.", CompareScreen),
    ("Family", "A pipeline (its run, then its stages) or a sweep as a whole: each run's kind, status, "
     "time and headline result; a finished pipeline's model, its stage best on the selection "
     "split, is marked. For a run in neither, its lineage: the runs it was built from and the "
     "runs built from it.", FamilyScreen),
)


class ReasonlabApp(App[None]):
    TITLE = "reasonlab"
    CSS_PATH = ["app.tcss", "widgets/widgets.tcss"]
    COMMANDS = App.COMMANDS | {ReasonlabCommands}
    BINDINGS = [
        Binding("f1", "help", "Help", tooltip="This help", id="app.help"),
        Binding("question_mark", "help", "Help", show=False, id="app.help-alt"),
    ]

    def __init__(
        self,
        db_path: str | Path,
        engine: Sequence[str] = ENGINE_COMMAND,
        poll_interval: float = 1.0,
        run_poll_interval: float = 0.5,
    ) -> None:
        super().__init__()
        self.db_path = Path(db_path).resolve()
        self.launcher = Launcher(self.db_path, engine)
        self.poll_interval = poll_interval
        self.run_poll_interval = run_poll_interval

    def on_mount(self) -> None:
        self.push_screen(RunsScreen())
        self.set_interval(1.0, self.launcher.reap)

    # -- navigation used by screens and the command palette -------------------------------

    def launch(self, kind: str = "eval") -> None:
        self.push_screen(LaunchScreen(kind))

    def clone(self, run: Run) -> None:
        """The launch form, prefilled with the settings `run` was given."""
        self.push_screen(LaunchScreen(initial=run.spec, title=f"New run, cloned from #{run.id} {run.label}"))

    def resume_run(self, run_id: int) -> bool:
        """Start the engine's `resume` on a cancelled or failed run; False when it was not
        started. The engine claims the run atomically, so a second resume of the same run is
        refused, never run twice."""
        try:
            with open_store(self.db_path) as store:
                run = store.get_run(run_id)
                if run.status not in RESUMABLE_STATUSES:
                    self.notify(f"Run #{run_id} is {run.status}; only cancelled or failed runs can be resumed.", severity="warning", markup=False)
                    return False
                self.launcher.start(store, run_id, resume=True)
        except (OSError, ReasonlabError) as exc:
            self.notify(f"Could not resume run #{run_id}: {exc}", severity="error", markup=False)
            return False
        self.notify(f"Resuming run #{run_id} ({run.kind}).", markup=False)
        return True

    def start_run(self, run: Run) -> None:
        """Start the engine on a run just created by the launch screen and show it in the list."""
        try:
            with open_store(self.db_path) as store:
                self.launcher.start(store, run.id)
        except (OSError, ReasonlabError) as exc:
            self.notify(f"Could not start the engine: {exc}", severity="error", markup=False)
        else:
            self.notify(f"Started run #{run.id} ({run.kind}).", markup=False)
        while not isinstance(self.screen, RunsScreen):
            self.pop_screen()
        self.screen.select_when_loaded(run.id)

    def open_run(self, run_id: int) -> None:
        self.push_screen(RunScreen(run_id))

    def compare(self, run_ids: list[int]) -> None:
        self.push_screen(CompareScreen(run_ids))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            sections = [(title, text, screen.BINDINGS) for title, text, screen in HELP_SECTIONS]
            sections.append(("Everywhere", "", self.BINDINGS))
            self.push_screen(HelpScreen(sections))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reasonlab", description="Terminal experiment manager for reasoning LMs.")
    parser.add_argument("--db", type=Path, default=None, help="Runs database (default: $REASONLAB_DB or ./runs.db).")
    args = parser.parse_args(argv)
    db_path = args.db or default_db_path()
    try:
        RunStore(db_path).close()  # creates the database or fails with a one-line reason
    except ReasonlabError as exc:
        sys.exit(f"reasonlab: {exc}")
    ReasonlabApp(db_path).run()
