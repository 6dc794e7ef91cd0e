"""A run's settings, facts (times, the runs it was built from and that were built from it, tags,
notes, error) and artifacts."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Static

from engine.core.spec import setting_text
from engine.core.store import Lineage, RelatedRun, Run
from tui.data import format_bytes, format_duration, format_timestamp, format_value


def run_facts(run: Run, lineage: Lineage) -> str:
    lines = [
        f"Status    {run.status}",
        f"Created   {format_timestamp(run.created_at)}",
        f"Started   {format_timestamp(run.started_at) or '-'}",
        f"Finished  {format_timestamp(run.finished_at) or '-'}",
        f"Duration  {format_duration(run.duration) or '-'}",
        f"From      {relatives(lineage.parents)}",
        f"Used by   {relatives(lineage.children)}",
        f"Tags      {' '.join(run.tags) or '-'}",
        f"Folder    {run.run_dir}",
    ]
    if run.error:
        lines.append(f"Error     {run.error}")
    if run.notes:
        lines += ["", run.notes]
    return "\n".join(lines)


def relatives(runs: tuple[RelatedRun, ...]) -> str:
    """'#1 sft-baseline (sft, adapter), #4 rollout-4 (rollout, data)', or '-'."""
    return ", ".join(f"#{r.id} {r.label} ({r.kind}, {', '.join(r.via)})" for r in runs) or "-"


class RunDetails(Horizontal):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._spec: dict[str, Any] | None = None
        self._artifacts: list[dict[str, Any]] | None = None

    def compose(self) -> ComposeResult:
        spec = DataTable(cursor_type="row", id="spec-table")
        spec.add_columns("Setting", "Value")
        yield spec
        with Vertical(id="run-facts-box"):
            yield Static(id="run-facts", markup=False)
            yield Label("Artifacts", classes="section-title")
            artifacts = DataTable(cursor_type="row", id="artifacts-table")
            artifacts.add_columns("Kind", "Size", "Path")
            yield artifacts

    def show(self, run: Run, artifacts: list[dict[str, Any]], lineage: Lineage) -> None:
        self.query_one("#run-facts", Static).update(run_facts(run, lineage))
        spec = run.spec.relevant()
        if spec != self._spec:
            self._spec = spec
            table = self.query_one("#spec-table", DataTable)
            table.clear()
            for key, value in spec.items():
                table.add_row(key, Text(format_value(value) if value is not None else setting_text(value)))
        if artifacts != self._artifacts:
            self._artifacts = artifacts
            table = self.query_one("#artifacts-table", DataTable)
            table.clear()
            for a in artifacts:
                table.add_row(a["kind"], format_bytes(a["bytes"]), Text(a["path"]))
