"""Plain records of what a run found, and results.json (SPEC.md, "results.json").

Values are kept at full precision; the report rounds. Serialisation is deterministic:
same records, same bytes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field, is_dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EvalkitError

if TYPE_CHECKING:  # pandas is imported only when a notebook asks for a table
    import pandas

SCHEMA = "evalkit.results/1"


@dataclass
class Estimate:
    """One estimate of one estimand.

    ``scale`` is ``ratio`` (1 = no change), ``difference`` (0 = no change) or ``count``.
    ``estimate`` is None when the fit gave no finite value (results.json has no NaN).
    """

    outcome: str
    method: str
    estimand: str
    scale: str
    estimate: float | None
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
            "estimates": self.estimates,
            "checks": self.checks,
            "evidence": self.evidence,
            "analyses": self.analyses,
            "context": self.context,
        }
        return json_ready(out)

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

    # -- for a notebook: tidy tables and a short representation (linearmodels / pyfixest style)
    SUMMARY_COLUMNS = ("outcome", "method", "estimand", "group", "scale", "estimate", "se", "ci_low", "ci_high",
                       "p_value")

    def summary(self) -> "pandas.DataFrame":
        """Every estimate as one row of a tidy pandas DataFrame.

        Columns: outcome, method, estimand, group, scale, estimate, se, ci_low, ci_high,
        p_value (missing values as NaN or None), in the order of results.json.
        """
        import pandas as pd

        rows = [{name: getattr(e, name) for name in self.SUMMARY_COLUMNS} for e in self.estimates]
        frame = pd.DataFrame(rows, columns=list(self.SUMMARY_COLUMNS))
        for name in ("estimate", "se", "ci_low", "ci_high", "p_value"):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
        return frame

    def checks_frame(self) -> "pandas.DataFrame":
        """Every check as one row: name, status, method, outcome, detail."""
        import pandas as pd

        return pd.DataFrame([{"name": c.name, "status": c.status, "method": c.method, "outcome": c.outcome,
                              "detail": c.detail} for c in self.checks],
                            columns=["name", "status", "method", "outcome", "detail"])

    def __repr__(self) -> str:
        title = self.design.get("title") or "evalkit results"
        methods = ", ".join(dict.fromkeys(a.method for a in self.analyses)) or "none"
        failed = sum(c.status == "fail" for c in self.checks)
        headline = self.evidence.get("headline") or ""
        return (f"<evalkit Results: {title!r}; {len(self.estimates)} estimates from {methods}; "
                f"{len(self.checks)} checks ({failed} failed); headline: {headline[:160]!r}>")

    def _repr_html_(self) -> str:
        import html

        headline = html.escape(self.evidence.get("headline") or "")
        level = self.evidence.get("design_level")
        main = self.summary()
        main = main[main["group"].isna() | (main["group"] == "treated")]
        main = main[~main["estimand"].str.startswith("event_")]
        table = main.to_html(index=False, float_format=lambda x: f"{x:.4g}", na_rep="", escape=True)
        return (f"<p><strong>{html.escape(str(self.design.get('title') or ''))}</strong><br>{headline}"
                f"{'' if level is None else f' (design level {html.escape(str(level))})'}</p>{table}"
                "<p><small>results.summary() for every estimate; results.checks_frame() for the checks</small></p>")

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
    problem = _shape_problem(raw)
    if problem:
        raise EvalkitError(where, f"results file is incomplete or was edited ({problem})", "run evalkit run again to rewrite it")
    try:
        return Results.from_dict(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EvalkitError(where, f"results file is incomplete ({str(exc)[:100]})", "run evalkit run again to rewrite it") from None


_SECTIONS = {"design": dict, "data": dict, "estimates": list, "checks": list, "evidence": dict, "context": dict}
_RECORD_TEXT = {"estimates": ("outcome", "method", "estimand", "scale"), "checks": ("name", "status", "detail"),
                "analyses": ("method", "outcome", "label")}
_NUMBERS = ("estimate", "se", "ci_low", "ci_high", "p_value")


def _shape_problem(raw: dict) -> str | None:
    """What is wrong with the shape of a results file (None: nothing), so that a file edited by
    hand or cut short is refused here with its key, not deep inside the report."""
    for name, kind in _SECTIONS.items():
        if not isinstance(raw.get(name), kind):
            return f"'{name}' is missing or not a {'list' if kind is list else 'mapping'}"
    if not isinstance(raw.get("analyses", []), list):
        return "'analyses' is not a list"
    for section, fields in _RECORD_TEXT.items():
        for i, record in enumerate(raw.get(section, [])):
            if not isinstance(record, dict):
                return f"{section}[{i}] is not a mapping"
            for field_name in fields:
                if not isinstance(record.get(field_name), str):
                    return f"{section}[{i}].{field_name} is missing or not text"
            if section == "estimates":
                for number in _NUMBERS:
                    value = record.get(number)
                    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                        return f"{section}[{i}].{number} is not a number"
                if not isinstance(record.get("details", {}), dict):
                    return f"{section}[{i}].details is not a mapping"
            if section == "analyses":
                for part in ("settings", "series"):
                    if not isinstance(record.get(part, {}), dict):
                        return f"{section}[{i}].{part} is not a mapping"
    context = raw["context"]
    disclosure = context.get("disclosure")
    if not isinstance(disclosure, dict) or not all(isinstance(disclosure.get(k), int) and not isinstance(disclosure.get(k), bool)
                                                   for k in ("min_count", "round_to")):
        return "context.disclosure is missing its min_count and round_to"
    if not isinstance(context.get("outcomes"), list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                                for o in context["outcomes"]):
        return "context.outcomes is missing or malformed"
    periods = raw["data"].get("periods")
    if not (isinstance(periods, list) and len(periods) == 2):
        return "data.periods is not [first, last]"
    return None


def json_ready(value: Any) -> Any:
    """JSON-ready: dataclasses to dicts of their fields, numpy scalars to Python, NaN and
    infinities to None (a national results.json has 70,000 values: the plain types a record
    mostly holds are recognised by their exact type first)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {(k if type(k) is str else str(k)): json_ready(v) for k, v in value.items()}
    if kind is list:
        return [json_ready(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_ready(getattr(value, f.name)) for f in dataclass_fields(value)}
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
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
