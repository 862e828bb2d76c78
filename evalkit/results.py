"""Plain records of what a run found, and results.json (SPEC.md, "results.json").

Values are kept at full precision; the report rounds. Serialisation is deterministic:
same records, same bytes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EvalkitError

SCHEMA = "evalkit.results/1"


@dataclass
class Estimate:
    """One estimate of one estimand.

    ``scale`` is ``ratio`` (1 = no change), ``difference`` (0 = no change) or ``count``.
    """

    outcome: str
    method: str
    estimand: str
    scale: str
    estimate: float
    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    group: str | None = None
    details: dict = field(default_factory=dict)


@dataclass
class Check:
    """An assumption or data check: ``status`` is pass, warn or fail."""

    name: str
    status: str
    detail: str
    method: str | None = None
    outcome: str | None = None
    values: dict = field(default_factory=dict)


@dataclass
class Analysis:
    """What the report needs about one fitted analysis: its settings and figure series."""

    method: str
    outcome: str
    label: str
    settings: dict = field(default_factory=dict)
    series: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


@dataclass
class Results:
    """Everything a run found; :meth:`to_json` writes results.json."""

    design: dict
    data: dict
    estimates: list[Estimate]
    checks: list[Check]
    analyses: list[Analysis]
    evidence: dict
    context: dict
    evalkit_version: str = ""
    schema: str = SCHEMA

    def to_dict(self) -> dict:
        out = {
            "schema": self.schema,
            "evalkit_version": self.evalkit_version,
            "design": self.design,
            "data": self.data,
            "estimates": [asdict(e) for e in self.estimates],
            "checks": [asdict(c) for c in self.checks],
            "evidence": self.evidence,
            "analyses": [asdict(a) for a in self.analyses],
            "context": self.context,
        }
        return _plain(out)

    def to_json_text(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def to_json(self, path) -> Path:
        """Write results.json atomically (a temporary file renamed into place)."""
        return write_atomic(Path(path), self.to_json_text())

    @classmethod
    def from_dict(cls, raw: dict) -> Results:
        return cls(
            schema=raw["schema"],
            evalkit_version=raw.get("evalkit_version", ""),
            design=raw["design"],
            data=raw["data"],
            estimates=[Estimate(**e) for e in raw["estimates"]],
            checks=[Check(**c) for c in raw["checks"]],
            analyses=[Analysis(**a) for a in raw.get("analyses", [])],
            evidence=raw.get("evidence", {}),
            context=raw.get("context", {}),
        )

    def estimate(self, estimand: str, outcome: str | None = None, method: str | None = None,
                 group: str | None = None) -> Estimate | None:
        for e in self.estimates:
            if e.estimand == estimand and (outcome is None or e.outcome == outcome) \
                    and (method is None or e.method == method) and (group is None or e.group == group):
                return e
        return None


def load_results(path) -> Results:
    """Read a results.json written by :meth:`Results.to_json`."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise EvalkitError(where, "file not found", "give the results.json that evalkit run wrote")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalkitError(where, f"not valid JSON ({exc.__class__.__name__})", "give the results.json that evalkit run wrote") from None
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise EvalkitError(where, f"not an evalkit results file (schema is not {SCHEMA})", "give the results.json that evalkit run wrote")
    try:
        return Results.from_dict(raw)
    except (KeyError, TypeError) as exc:
        raise EvalkitError(where, f"results file is incomplete ({exc})", "run evalkit run again to rewrite it") from None


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def write_atomic(path: Path, text: str) -> Path:
    """Write text to path through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return path
