"""Kind, status and tag pickers and a search box above the runs table."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Select

from engine.core.spec import KINDS
from engine.core.store import ACTIVE_STATUSES, FINAL_STATUSES, RunFilter


class FilterBar(Horizontal):
    """Posts `FilterBar.Changed` with the whole filter whenever any part of it changes."""

    class Changed(Message):
        def __init__(self, run_filter: RunFilter) -> None:
            super().__init__()
            self.run_filter = run_filter

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._tags: list[str] = []

    def compose(self) -> ComposeResult:
        yield Select([(k, k) for k in KINDS], prompt="Any kind", id="filter-kind")
        yield Select(
            [(s, s) for s in (*ACTIVE_STATUSES, *FINAL_STATUSES)], prompt="Any status", id="filter-status"
        )
        yield Select([], prompt="Any tag", id="filter-tag")
        yield Input(placeholder="Search (/)", id="filter-search")

    @property
    def value(self) -> RunFilter:
        def chosen(select_id: str) -> str | None:
            value = self.query_one(select_id, Select).value
            return None if value == Select.NULL else str(value)

        return RunFilter(
            kind=chosen("#filter-kind"),
            status=chosen("#filter-status"),
            tag=chosen("#filter-tag"),
            search=self.query_one("#filter-search", Input).value,
        )

    def set_tags(self, tags: list[str]) -> None:
        """Offer `tags` in the tag picker, keeping the chosen one if it still exists."""
        if tags == self._tags:
            return
        self._tags = tags
        select = self.query_one("#filter-tag", Select)
        chosen = select.value
        with self.prevent(Select.Changed):
            select.set_options([(t, t) for t in tags])
            if chosen in tags:
                select.value = chosen
        if chosen != Select.NULL and chosen not in tags:
            self.post_message(self.Changed(self.value))

    def focus_search(self) -> None:
        self.query_one("#filter-search", Input).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.value))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.value))
