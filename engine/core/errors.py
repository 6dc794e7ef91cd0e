"""Errors a user can act on: each carries a one-line message saying what was wrong and what to do."""

from engine.core.text import visible


class ReasonlabError(Exception):
    """A failure caused by input or environment, reported to the user as one line."""


class SpecError(ReasonlabError, ValueError):
    """A run-spec setting is invalid; `field` names the setting so a form can show it inline."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{visible(field)}: {message}")  # a field name can come from anywhere
        self.field = field
        self.reason = message


class DataError(ReasonlabError):
    """A dataset file is missing or malformed."""


class ModelError(ReasonlabError):
    """A model or adapter cannot be resolved or loaded."""


class RunCancelled(BaseException):
    """Raised inside a run when the user asked it to stop (Ctrl-C or SIGTERM). A BaseException,
    like KeyboardInterrupt and for the same reason: the signal handler raises it wherever the
    run happens to be, and an `except Exception` there (the model loader's one-line errors, a
    library's fallback) must not turn a cancel into a failed run or swallow it."""
