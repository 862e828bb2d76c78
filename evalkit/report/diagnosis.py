"""The report's "Could this evaluation have detected a change?" section, from a diagnosis.

A report-layer reading of a diagnosis.json (evalkit.diagnose writes it). Used by
evalkit.report.render when a diagnosis is given (``evalkit run DESIGN --diagnose`` or
``evalkit report RESULTS --diagnosis DIR/diagnosis.json``). Only rates and planted effects
are shown (no count from the data).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..catalog import METHODS
from ..errors import EvalkitError

METHOD_WORDS = {name: record.display_name for name, record in METHODS.items()}


def load_diagnosis(path) -> dict:
    """Read a diagnosis.json (one-line error when it is not one)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalkitError(str(path), "the diagnosis file does not exist", "run evalkit diagnose DESIGN --out DIR first") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EvalkitError(str(path), "is not a diagnosis.json", "give the diagnosis.json that evalkit diagnose wrote") from None
    if not isinstance(record, dict) or not str(record.get("schema", "")).startswith("evalkit.diagnosis/"):
        raise EvalkitError(str(path), "is not a diagnosis.json", "give the diagnosis.json that evalkit diagnose wrote")
    return record


def _pct(x) -> str:
    return "not measured" if x is None else f"{100 * x:.0f}%"


def mde_words(headline: dict) -> str | None:
    """'this design would detect a fall of 15% or more 8 times in 10; smaller changes could be missed'."""
    mde = (headline or {}).get("mde")
    if mde is None or not isinstance(mde, (int, float)) or not math.isfinite(mde):
        return None
    return (f"this design would detect a fall of {round(100 * (1 - mde))}% or more 8 times in 10; "
            "smaller changes could be missed")


def report_section(results, diagnosis: dict | None) -> dict | None:
    """What the report shows about the diagnosis: the MDE sentence, the sentence added to the
    headline when it finds no clear difference, and each analysis's false-positive rate and
    coverage on this data."""
    if not diagnosis:
        return None
    headline = diagnosis.get("headline") or {}
    words = mde_words(headline)
    name = METHOD_WORDS.get(headline.get("method"), headline.get("method") or "headline analysis")
    sims = (diagnosis.get("settings") or {}).get("sims")
    if words:
        sentence = f"With the {name}, {words}."
    elif headline:
        sentence = (f"Even the largest fall tried would be detected less than 8 times in 10 by the {name}: "
                    "this design could miss large changes.")
    else:
        sentence = "The diagnosis gives no smallest detectable change for the headline analysis."
    rows = []
    cells = diagnosis.get("cells") or []
    from ..evidence import HEADLINE_ESTIMAND

    for a in diagnosis.get("analyses") or []:
        estimand = HEADLINE_ESTIMAND.get(a["method"])
        null = next((c for c in cells if c["analysis"] == a["analysis"] and c["estimand"] == estimand
                     and c["effect"] == 1.0), None)
        planted = [c for c in cells if c["analysis"] == a["analysis"] and c["estimand"] == estimand
                   and c["effect"] < 1.0 and c.get("coverage") is not None]
        strongest_default = min((diagnosis.get("settings") or {}).get("effects") or [1.0])
        at = next((c for c in planted if c["effect"] == strongest_default), planted[0] if planted else None)
        rows.append({
            "analysis": f"{METHOD_WORDS.get(a['method'], a['method'])} ({a['outcome'].replace('_', ' ')})",
            "estimand": estimand,
            "false_positive": _pct(null.get("false_positive_rate") if null else None),
            "coverage_null": _pct(null.get("coverage") if null else None),
            "coverage_planted": _pct(at.get("coverage")) if at else "not measured",
            "planted": f"a {round(100 * (1 - at['effect']))}% fall" if at else "",
        })
    addition = None
    if words and _headline_unclear(results):
        addition = words[0].upper() + words[1:] + "."
    return {"sentence": sentence, "rows": rows, "headline_addition": addition, "sims": sims,
            "model": (diagnosis.get("simulator") or {}).get("model")}


def _headline_unclear(results) -> bool:
    """The headline estimate's interval contains no change (or there is none)."""
    evidence = results.evidence or {}
    method, outcome, estimand = (evidence.get(k) for k in ("headline_method", "headline_outcome", "headline_estimand"))
    if not method:
        return False
    e = next((x for x in results.estimates if x.method == method and x.outcome == outcome and x.estimand == estimand
              and x.group in (None, "treated")), None)
    if e is None or e.ci_low is None or e.ci_high is None:
        return True
    null = 1.0 if e.scale == "ratio" else 0.0
    return e.ci_low <= null <= e.ci_high


__all__ = ["load_diagnosis", "report_section", "mde_words"]
