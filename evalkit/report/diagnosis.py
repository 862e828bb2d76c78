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

#: a diagnosis's calibration verdict (diagnosands.calibration) in the report's table
CALIBRATION_WORDS = {"pass": "yes", "fail": "no", "not assessed": "not assessed"}


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


def calibration_words(verdict: str | None, reasons: list | None) -> str | None:
    """One plain sentence on a failed calibration (diagnosands.calibration), no statistics.

    "In simulations of this design the 95% range covered the true effect only 86% of the
    time, so the range may be too narrow"; None unless the verdict is ``fail``.
    """
    if verdict != "fail" or not reasons:
        return None
    narrow = [r for r in reasons if r.get("direction") == "too narrow"]
    if narrow:
        coverage = [r for r in narrow if r["rate"] == "coverage"]
        if coverage:
            worst = min(coverage, key=lambda r: r["value"])
            return (f"In simulations of this design the 95% range covered the true effect only "
                    f"{_pct(worst['value'])} of the time (it should be about 95%), so the range may be too narrow")
        worst = max(narrow, key=lambda r: r["value"])
        return (f"In simulations of this design with no real change, the analysis found a change "
                f"{_pct(worst['value'])} of the time (it should be about 5%), so the range may be too narrow")
    worst = max(reasons, key=lambda r: abs(r["value"] - sum(r["target"]) / 2))
    if worst["rate"] == "coverage":
        return (f"In simulations of this design the 95% range covered the true effect {_pct(worst['value'])} of "
                "the time, more than the 95% it should, so the range may be wider than it needs to be")
    return (f"In simulations of this design with no real change, the analysis found a change only "
            f"{_pct(worst['value'])} of the time (about 5% is expected), so the range may be wider than it needs to be")


def narrows(reasons: list | None) -> bool:
    """A failed calibration overstates certainty (coverage too low, or true nulls rejected too often)."""
    return any(r.get("direction") == "too narrow" for r in reasons or [])


def analysis_calibration(diagnosis: dict | None, method: str, outcome: str, index: int | None = None) -> dict | None:
    """{"verdict", "reasons", "estimand"} of one analysis's headline estimand in a diagnosis, or None.

    The analysis is found by its plan index when the results record one (two analyses may
    share a method and an outcome), else by method and outcome.
    """
    if not diagnosis:
        return None
    from ..evidence import HEADLINE_ESTIMAND

    estimand = HEADLINE_ESTIMAND.get(method)
    entries = [a for a in diagnosis.get("analyses") or [] if a.get("method") == method and a.get("outcome") == outcome]
    if index is not None and any(a.get("analysis") == index for a in entries):
        entries = [a for a in entries if a.get("analysis") == index]
    if not entries:
        return None
    entry = entries[0]
    verdict = (entry.get("calibration") or {}).get(estimand)
    if verdict is None:
        return None
    detail = (entry.get("calibration_reasons") or {}).get(estimand) or {}
    return {"verdict": verdict, "reasons": detail.get("reasons", []), "estimand": estimand,
            "analysis": entry.get("analysis"), "sims": (diagnosis.get("settings") or {}).get("sims")}


def calibration_by_analysis(results, diagnosis: dict | None) -> dict:
    """(method, outcome) -> {"verdict", "lower", "words", "reasons"} for every analysis of the
    results that the diagnosis judged (its headline estimand's ``calibration``).

    ``lower`` is True when the verdict is ``fail`` because the interval is too narrow
    (coverage below 93% or true nulls rejected more than 7% of the time, beyond Monte Carlo
    error): the report then lowers that finding's certainty by one step. A fail only because
    the interval is too wide (conservative) is said but lowers nothing: a range wider than it
    needs to be does not overstate certainty.
    """
    out: dict = {}
    if not diagnosis:
        return out
    for a in results.analyses:
        key = (a.method, a.outcome)
        if key in out:
            continue   # the first analysis of a method and outcome is the one a finding rests on
        found = analysis_calibration(diagnosis, a.method, a.outcome, (a.settings or {}).get("analysis"))
        if found is None:
            continue
        out[key] = {"verdict": found["verdict"], "reasons": found["reasons"],
                    "lower": found["verdict"] == "fail" and narrows(found["reasons"]),
                    "words": calibration_words(found["verdict"], found["reasons"])}
    return out


def report_section(results, diagnosis: dict | None) -> dict | None:
    """What the report shows about the diagnosis: the MDE sentence, the sentence added to the
    headline when it finds no clear difference, and each analysis's false-positive rate and
    coverage on this data."""
    if not diagnosis:
        return None
    headline = diagnosis.get("headline") or {}
    words = mde_words(headline)
    method = headline.get("method")
    name = METHOD_WORDS.get(method, method) if method else "headline analysis"
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
        verdict = (a.get("calibration") or {}).get(estimand)
        rows.append({
            "analysis": f"{METHOD_WORDS.get(a['method'], a['method'])} ({a['outcome'].replace('_', ' ')})",
            "estimand": estimand,
            "false_positive": _pct(null.get("false_positive_rate") if null else None),
            "coverage_null": _pct(null.get("coverage") if null else None),
            "coverage_planted": _pct(at.get("coverage")) if at else "not measured",
            "planted": f"a {round(100 * (1 - at['effect']))}% fall" if at else "",
            "calibration": CALIBRATION_WORDS.get(verdict, "not assessed") if verdict else "not assessed",
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


__all__ = ["load_diagnosis", "report_section", "mde_words", "calibration_words", "analysis_calibration", "narrows",
           "calibration_by_analysis"]
