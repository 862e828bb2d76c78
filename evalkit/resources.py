"""Files evalkit ships beside its code: the report templates and the shipped examples' data.

They live once, where the project's layout promises them (reports/templates/, examples/,
designs/), and are read from one place, this module. In a source checkout (an editable
install) they are read from the repository; a built wheel carries real copies under
``evalkit/_shipped/`` (setup.py copies them at build time: no symlinks, which break on
Windows checkouts and in some sdists).
"""

from __future__ import annotations

from pathlib import Path

from .errors import EvalkitError

#: what a wheel carries, by its path in the repository (setup.py's build step reads this list)
SHIPPED = (
    "reports/templates",
    "examples/sicily/sicily.csv",
    "designs/sicily_smoking_ban.yaml",
    "examples/geography/la_to_pfa.csv",
    "designs/ssda903_return_home.yaml",
)

_PACKAGED = Path(__file__).resolve().parent / "_shipped"
_REPOSITORY = Path(__file__).resolve().parents[1]


def shipped(relative: str) -> Path:
    """The shipped file or folder at ``relative`` (a repository path such as ``examples/sicily/sicily.csv``)."""
    for base in (_PACKAGED, _REPOSITORY):
        path = base / relative
        if path.exists():
            return path
    raise EvalkitError(relative, "this shipped file is not installed", "reinstall evalkit")


def templates_dir() -> Path:
    """The folder of the jinja2 templates (report, synthesis, diagnosis) and report.css."""
    return shipped("reports/templates")


__all__ = ["SHIPPED", "shipped", "templates_dir"]
