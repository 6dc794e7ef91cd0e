"""Command palette entries for the main actions."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from engine.core.spec import KINDS
from engine.core.store import open_store
from tui.screens.runs import RunsScreen

if TYPE_CHECKING:
    from tui.app import ReasonlabApp

RUNS_SCREEN_ACTIONS = {
    "Compare selected runs": "compare",
    "Cancel the run under the cursor": "cancel_run",
    "Delete the selected runs": "delete",
    "Edit tags and notes": "edit",
    "Search runs": "search",
}


class ReasonlabCommands(Provider):
    """Launching, opening a run by name or id, help, and the runs screen's actions."""

    app: ReasonlabApp

    async def startup(self) -> None:
        self.runs = await asyncio.to_thread(self._recent_runs)

    def _recent_runs(self) -> list[tuple[int, str]]:
        with open_store(self.app.db_path) as store:
            return store.recent_runs()

    def _commands(self) -> list[tuple[str, object, str]]:
        commands: list[tuple[str, object, str]] = [
            (f"New {kind} run", partial(self.app.launch, kind), "Open the launch form") for kind in KINDS
        ]
        commands.append(("Help", self.app.action_help, "Keys and what each screen shows"))
        if isinstance(self.screen, RunsScreen):
            screen = self.screen
            commands += [
                (name, partial(screen.run_action, action), "Runs screen")
                for name, action in RUNS_SCREEN_ACTIONS.items()
            ]
        commands += [
            (f"Open run #{run_id} {label}", partial(self.app.open_run, run_id), "Show the run")
            for run_id, label in self.runs
        ]
        return commands

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            if not name.startswith("Open run"):
                yield DiscoveryHit(name, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)  # type: ignore[arg-type]
