"""The one evalkit error type.

Every problem a user can fix (a design key, a data row, a missing file) is raised as
:class:`EvalkitError`. Its message has the form the CLI prints on one line::

    <file>[:<key or row>]: <what is wrong>; <how to fix it>
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


class EvalkitError(Exception):
    """A design or data problem the user can fix.

    Parameters
    ----------
    where : str
        The file the problem is in (a path as the user gave it, or ``"design"``).
    what : str
        What is wrong, in one short clause.
    fix : str
        How to fix it, in one short clause.
    key : str, optional
        The design key (``data.columns.unit``) or data row (``row 17``) at fault.
    """

    def __init__(self, where: str, what: str, fix: str, key: str | None = None):
        self.where = str(where)
        self.key = key
        self.what = what
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        place = self.where if not self.key else f"{self.where}:{self.key}"
        text = f"{place}: {self.what}; {self.fix}"
        # one line, always: a value quoted from a hostile file must not break it, and no
        # control character (a terminal escape sequence in a cell) reaches the terminal raw
        return printable(" ".join(text.split()))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control character shown escaped (``\\x1b``), never raw.

    A unit name, a cell or a design value may hold terminal escape sequences (which can
    recolour, hide or rewrite what a terminal shows) or bidirectional overrides; whatever
    evalkit prints passes through here. Tabs and line breaks are left to the caller.
    """
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), str(text))


#: The name SPEC.md uses for errors raised while loading a design; the same type.
DesignError = EvalkitError


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
