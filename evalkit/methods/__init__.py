"""Estimators, one module per method, all behind one small protocol.

Each module exposes ``fit(design, data, spec) -> MethodResult``: it receives the
validated design, the :class:`~evalkit.data.AnalysisData` and the analysis entry of the
plan, and returns plain records. An estimator never reads a file or writes prose for the
report.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ..catalog import METHODS
from ..results import Analysis, Check, Estimate

#: method name -> module under evalkit.methods that implements it (from the catalogue)
REGISTRY = {name: record.module for name, record in METHODS.items()}


@dataclass
class MethodResult:
    estimates: list[Estimate] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    analysis: Analysis | None = None


def get_method(name: str):
    """The ``fit`` function of a method."""
    module = importlib.import_module(f"{__name__}.{REGISTRY[name]}")
    return module.fit


__all__ = ["REGISTRY", "MethodResult", "get_method"]
