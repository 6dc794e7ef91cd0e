"""Run folders: each database owns one folder for its runs' logs, checkpoints and artifacts.

The folder sits beside the database and is named after its file (`runs.db` keeps its runs in
`runs.db.runs/<id>/`), so two databases in one directory never share a run folder. Nothing is
written or deleted outside it: every path is resolved (links followed) and checked first.
"""

from __future__ import annotations

from pathlib import Path

from engine.core.errors import ReasonlabError

FOLDER_SUFFIX = ".runs"
LEGACY_RUNS_FOLDER = "runs"
"""Where runs lived before each database had its own folder: `runs/` beside every database."""


def runs_root(db_path: Path) -> Path:
    db_path = Path(db_path).resolve()
    return db_path.with_name(db_path.name + FOLDER_SUFFIX)


def checked_run_folder(root: Path, run_id: int, run_dir: str) -> Path:
    """`run_dir`, resolved, when it lies inside `root`; otherwise a one-line refusal."""
    folder = Path(run_dir).resolve() if run_dir else None
    if folder is None or folder == root.resolve() or not folder.is_relative_to(root.resolve()):
        raise ReasonlabError(
            f"Run {run_id}'s folder {run_dir or '(none)'} is outside this database's runs folder {root}; "
            "reasonlab neither writes nor deletes there. Move the files into place or delete the run's row "
            f"with `python -m engine delete {run_id} --keep-files`."
        )
    return folder
