"""A checkbox that draws its mark only when checked.

Textual's Checkbox draws an X in both states, told apart by colour alone, and in the app's
themes an unchecked box read as checked: this one shows ✓ when checked and an empty box when
not, so its state survives any theme, a monochrome terminal and a text capture.
"""

from __future__ import annotations

from textual.widgets import Checkbox


class StateCheckbox(Checkbox):
    CHECKED_MARK = "✓"

    @property
    def BUTTON_INNER(self) -> str:  # noqa: N802 (Textual's name for the mark)
        return self.CHECKED_MARK if self.value else " "
