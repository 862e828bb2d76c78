"""How strong the evidence is, and the headline in plain words: pure functions of results.

Design level on the Maryland Scientific Methods Scale, certainty and verb on a GRADE-style
ladder, as DOMAIN.md ("Evidence strength") sets out.
"""

from __future__ import annotations

import math

import numpy as np

from .catalog import LEVEL_CHECKS, METHODS
from .results import Check, Estimate

SCALE_NAME = "Maryland Scientific Methods Scale (What Works Centre for Local Economic Growth version, 2016)"

#: design level of each method, before any check lowers it, with its plain label
METHOD_LEVEL = {name: (record.level, record.level_label) for name, record in METHODS.items()}

LEVEL_MEANING = {
    1: "a simple association, with no comparison",
    2: "before and after only: cannot rule out other causes",
    3: "compared with similar areas that did not change",
    4: "compared with similar areas, where timing was as good as random",
    5: "randomised rollout",
}

#: the estimand that carries each method's headline
HEADLINE_ESTIMAND = {name: record.headline_estimand for name, record in METHODS.items()}

#: checks whose failure lowers the design level (pre-trends, placebo tests)

VERBS = {
    "high": ("reduced", "increased"),
    "moderate": ("probably reduced", "probably increased"),
    "low": ("may have reduced", "may have increased"),
    "very low": ("the evidence is very uncertain", "the evidence is very uncertain"),
}


def _concerns(checks: list[Check], method: str, outcome: str) -> list[Check]:
    return [c for c in checks if c.status in ("warn", "fail") and c.method in (method, None)
            and c.outcome in (outcome, None)]


def design_level(method: str, checks: list[Check], outcome: str, concurrent: list | None = None) -> tuple[int, list[str]]:
    """The level on the scale for one analysis, and the reasons it was lowered."""
    level, _ = METHOD_LEVEL.get(method, (2, ""))
    reasons = []
    # a failed check lowers the level only when its test holds its size here (values["calibrated"])
    failed = [c for c in checks if c.name in LEVEL_CHECKS and c.status == "fail" and c.method == method
              and c.outcome == outcome and c.values.get("calibrated", True) is not False]
    if failed:
        reasons.append(f"{failed[0].name.replace('_', ' ')} check failed")
    if concurrent:
        reasons.append(f"a concurrent change overlaps the intervention ({concurrent[0]})")
    return max(1, level - (1 if reasons else 0)), reasons


def certainty(level: int, concerns: list[Check]) -> str:
    if level >= 5 and not concerns:
        return "high"
    if level >= 3 and not concerns:
        return "moderate"
    if level >= 2:
        return "low"
    return "very low"


#: the certainty ladder, surest first
CERTAINTY_STEPS = ("high", "moderate", "low", "very low")


def lower_certainty(cert: str) -> str:
    """One step down the ladder (very low stays very low)."""
    return CERTAINTY_STEPS[min(CERTAINTY_STEPS.index(cert) + 1, len(CERTAINTY_STEPS) - 1)]


def percent_words(x: float) -> str:
    """A change as a percentage; below 1% with its first significant figure, so a small but clear
    change never reads "0%"."""
    value = abs(x) * 100
    if 0 < value < 0.5:
        return f"{value:.1g}%"
    return f"{value:.0f}%"


def headline_sentence(intervention: str, outcome_label: str, estimate: Estimate, cert: str,
                      per_year: float | None, per_year_unit: str) -> str:
    """The headline in plain words; never "caused"; the interval as a likely range."""
    note = estimate.details.get("interval_note")
    if not _bounded(estimate) and note:
        # the declared inference could not bound the change: say why; the verdict follows its test
        if estimate.details.get("test_rejects") is False:
            return (f"{intervention}: little or no clear difference in {outcome_label} can be shown; the point "
                    f"estimate ({_describe(estimate)}) cannot be told from no change: {note}.")
        return f"{intervention}: {outcome_label} changed by an estimated {_describe(estimate)}, but {note}."
    if not _bounded(estimate):
        return (f"{intervention}: {outcome_label} changed by an estimated {_describe(estimate)}, but the data cannot "
                "put bounds on the change (too few areas or periods for an interval).")
    assert estimate.estimate is not None and estimate.ci_low is not None and estimate.ci_high is not None  # _bounded
    if estimate.scale != "ratio":
        return _difference_sentence(intervention, outcome_label, estimate, cert)
    change = estimate.estimate - 1.0
    low, high = estimate.ci_low - 1.0, estimate.ci_high - 1.0
    if low <= 0 <= high or estimate.details.get("test_rejects") is False:   # the verdict follows the declared test
        return (f"{intervention}: little or no clear difference in {outcome_label}; the data are consistent "
                f"with anything from {range_end_words(low)} to {range_end_words(high)}.")
    down = change < 0
    verb = VERBS[cert][0 if down else 1]
    direction = "fewer" if down else "more"
    likely = f"likely range {percent_words(min(abs(low), abs(high)))} to {percent_words(max(abs(low), abs(high)))} {direction}"
    absolute = ""
    if per_year is not None and abs(per_year) >= 0.5:
        absolute = f", about {round_for_prose(abs(per_year))} {direction} {per_year_unit} a year"
    if cert == "very low":
        return (f"{intervention}: the evidence is very uncertain; {outcome_label} changed by about "
                f"{percent_words(change)} ({likely}){absolute}.")
    return (f"{intervention} {verb} {outcome_label} by about {percent_words(change)} ({likely}){absolute}.")


def _bounded(estimate: Estimate) -> bool:
    values = (estimate.estimate, estimate.ci_low, estimate.ci_high)
    return all(v is not None and math.isfinite(v) for v in values)


def _describe(estimate: Estimate) -> str:
    if estimate.estimate is None or not math.isfinite(estimate.estimate):
        return "unknown amount"
    if estimate.scale == "ratio":
        return f"{percent_words(estimate.estimate - 1.0)} {'fall' if estimate.estimate < 1 else 'rise'}"
    return f"{estimate.estimate:+.3g}"


def range_end_words(x: float) -> str:
    if abs(x) < 0.005:
        return "no change"
    pct = percent_words(x)
    article = "an" if pct.startswith("8") or pct in ("11%", "18%") else "a"  # "an 8%", "an 11%"
    return f"{article} {pct} {'fall' if x < 0 else 'rise'}"


def _difference_sentence(intervention, outcome_label, estimate, cert) -> str:
    if estimate.ci_low <= 0 <= estimate.ci_high or estimate.details.get("test_rejects") is False:
        return (f"{intervention}: little or no clear difference in {outcome_label}; the data are consistent with "
                f"anything from {estimate.ci_low:+.3g} to {estimate.ci_high:+.3g}.")
    down = estimate.estimate < 0
    verb = VERBS[cert][0 if down else 1]
    if cert == "very low":
        verb = "the evidence is very uncertain, but may have changed"
    return (f"{intervention} {verb} {outcome_label} by about {abs(estimate.estimate):.3g} "
            f"(likely range {estimate.ci_low:+.3g} to {estimate.ci_high:+.3g}).")


#: time to found (survival_did): the hazard of being found above 1 = found sooner
FOUND_PHRASES = {
    "high": ("were found sooner", "were found later"),
    "moderate": ("were probably found sooner", "were probably found later"),
    "low": ("may have been found sooner", "may have been found later"),
    "very low": ("may have been found sooner", "may have been found later"),
}


def _hours(x: float) -> str:
    text = round_for_prose(abs(x))
    return f"{text} hour" if text == "1" else f"{text} hours"


def _hours_end(x: float) -> str:
    if abs(x) < 0.05:
        return "no change"
    return f"{_hours(x)} {'sooner' if x < 0 else 'later'}"


def found_sooner_sentence(intervention: str, hazard: Estimate, rmst: Estimate | None, cert: str) -> str:
    """The survival_did headline: found sooner or later, in hours within the horizon and as a hazard ratio.

    ``hazard`` is ``hazard_ratio_did`` (above 1 = found sooner); ``rmst`` is
    ``rmst_difference_did`` in hours (negative = found sooner), or None.
    """
    horizon = rmst.details.get("horizon_hours") if rmst is not None else None
    has_hours = rmst is not None and None not in (rmst.estimate, rmst.ci_low, rmst.ci_high) and horizon
    within = f" within the first {horizon:g} hours" if has_hours else ""
    # _finding passes a bounded hazard ratio (an unbounded one gets headline_sentence's words)
    assert hazard.estimate is not None and hazard.ci_low is not None and hazard.ci_high is not None
    low, high = hazard.ci_low - 1.0, hazard.ci_high - 1.0
    if low <= 0 <= high:
        if has_hours:
            assert rmst is not None and rmst.ci_low is not None and rmst.ci_high is not None  # has_hours
            span = f"anything from {_hours_end(rmst.ci_low)} to {_hours_end(rmst.ci_high)}{within}"
        else:
            span = f"anything from {range_end_words(low)} to {range_end_words(high)} in the chance of being found at any moment"
        return f"{intervention}: little or no clear difference in how soon missing children are found; the data are consistent with {span}."
    sooner = hazard.estimate > 1.0
    phrase = FOUND_PHRASES[cert][0 if sooner else 1]
    parts = []
    if has_hours:
        assert rmst is not None and rmst.estimate is not None and rmst.ci_low is not None and rmst.ci_high is not None
        lo, hi = rmst.ci_low, rmst.ci_high
        if hi <= 0:
            likely = f"{round_for_prose(abs(hi))} to {_hours(lo)} sooner"
        elif lo >= 0:
            likely = f"{round_for_prose(lo)} to {_hours(hi)} later"
        else:
            likely = f"{_hours_end(lo)} to {_hours_end(hi)}"
        if (rmst.estimate < 0) == sooner:
            parts.append(f"by about {_hours(rmst.estimate)}{within} (likely range {likely})")
        else:  # the hours disagree in direction with the hazard ratio (non-proportional hazards)
            parts.append(f"though{within} the average time to found changed by {_hours_end(rmst.estimate)} "
                         f"(likely range {likely})")
    ends = sorted((abs(low), abs(high)))
    parts.append(f"{'and ' if parts else ''}about {percent_words(hazard.estimate - 1.0)} {'more' if sooner else 'less'} "
                 f"likely to be found at any given moment (likely range {percent_words(ends[0])} to {percent_words(ends[1])})")
    uncertain = "the evidence is very uncertain; " if cert == "very low" else ""
    return f"{intervention}: {uncertain}missing children {phrase}, {', '.join(parts)}."


def synthetic_control_sentence(intervention: str, outcome_label: str, att: Estimate, placebo: Estimate | None,
                                cert: str) -> str:
    """The synthetic-control headline: the gap in per cent (counts) or units, and what the placebo test allows."""
    assert att.estimate is not None  # synthetic control always estimates the gap (its ATT)
    percent = att.details.get("percent")
    size = f"about {abs(percent):.0f}%" if percent is not None else f"about {abs(att.estimate):.3g}"
    per_year = att.details.get("per_year")
    counts = per_year is not None  # counts carry a yearly translation; continuous outcomes do not
    direction = ("fewer" if att.estimate < 0 else "more") if counts else ("lower" if att.estimate < 0 else "higher")
    absolute = f", about {round_for_prose(abs(per_year))} a year" if per_year is not None and percent is not None else ""
    p = f" (placebo p = {placebo.estimate:.2f})" if placebo is not None else ""
    if not att.details.get("ci_bounded", True) or att.ci_low is None or att.ci_high is None:
        return (f"{intervention}: {outcome_label} were {size} {direction} than in the synthetic comparison{absolute}, "
                f"but there are too few comparison areas for the placebo test to rule out no effect{p}.")
    if att.ci_low <= 0 <= att.ci_high:
        return (f"{intervention}: little or no clear difference in {outcome_label} against the synthetic comparison; "
                f"the data are consistent with anything from {att.ci_low:+.3g} to {att.ci_high:+.3g}{p}.")
    verb = VERBS[cert][0 if att.estimate < 0 else 1]
    if cert == "very low":
        return f"{intervention}: the evidence is very uncertain; {outcome_label} were {size} {direction}{absolute}{p}."
    return (f"{intervention} {verb} {outcome_label} by {size} against the synthetic comparison{absolute} "
            f"(likely range {att.ci_low:+.3g} to {att.ci_high:+.3g}){p}.")


def round_for_prose(x: float) -> str:
    if x >= 100:
        return f"{round(x, -1):,.0f}"
    if x >= 10:
        return f"{x:,.0f}"
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _finding(best, estimates, checks, intervention, outcome_labels, concurrent, calibration=None) -> dict:
    """Level, certainty and plain-words sentence for one analysis.

    ``calibration`` (optional) maps (method, outcome) to ``{"lower": bool, "words": str}``:
    a design diagnosis found this analysis's 95% interval too narrow on this design
    (``calibration: fail``), so certainty goes down one step and the words say why.
    """
    level, reasons = design_level(best.method, checks, best.outcome, concurrent)
    concerns = _concerns(checks, best.method, best.outcome)
    cert = certainty(level, concerns)
    lowered = []
    note = (calibration or {}).get((best.method, best.outcome))
    if note and note.get("lower"):
        cert = lower_certainty(cert)
        lowered.append(f"{note['words']}; certainty lowered")
    estimand = HEADLINE_ESTIMAND[best.method]
    estimate = next(e for e in estimates if e.method == best.method and e.outcome == best.outcome
                    and e.estimand == estimand and not (e.group or "").startswith("subgroup"))
    per_year = estimate.details.get("per_year")
    label = outcome_labels.get(best.outcome, best.outcome)
    if not _bounded(estimate) and best.method != "synthetic_control":
        sentence = headline_sentence(intervention, label, estimate, cert, per_year, label)
    elif best.method == "synthetic_control":
        placebo = next((e for e in estimates if e.method == best.method and e.outcome == best.outcome
                        and e.estimand == "placebo_p"), None)
        sentence = synthetic_control_sentence(intervention, label, estimate, placebo, cert)
    elif best.method == "survival_did":
        rmst = next((e for e in estimates if e.method == best.method and e.outcome == best.outcome
                     and e.estimand == "rmst_difference_did" and e.group is None), None)
        sentence = found_sooner_sentence(intervention, estimate, rmst, cert)
    else:
        sentence = headline_sentence(intervention, label, estimate, cert, per_year, label)
    return {
        "design_level": level,
        "design_level_label": METHOD_LEVEL.get(best.method, (level, ""))[1],
        "level_meaning": LEVEL_MEANING[level],
        "lowered_because": reasons,
        "certainty": cert,
        "certainty_lowered_because": lowered,
        "concerns": [f"{c.name}: {c.detail}" for c in concerns],
        "sentence": sentence,
        "method": best.method,
        "outcome": best.outcome,
        "outcome_label": label,
        "estimand": estimand,
    }


def _strongest(candidates: list):
    return max(candidates, key=lambda a: METHOD_LEVEL.get(a.method, (0, ""))[0])


def assess(estimates: list[Estimate], checks: list[Check], analyses: list, primary_outcome: str | None,
           intervention: str, outcome_labels: dict, concurrent: list | None = None,
           calibration: dict | None = None, sensitivity: list | None = None) -> dict:
    """Evidence for the run: design level, certainty, verb and headline of the primary outcome,
    and one finding per outcome (EMMIE's "Effect").

    Each finding comes from the strongest analysis of its outcome (highest design level;
    the first declared among equals). ``calibration`` lowers a finding's certainty when a
    design diagnosis found its interval too narrow (see :func:`_finding`; the report passes
    it, :func:`reassess`). ``sensitivity`` is the list :func:`parallel_trends_sensitivity`
    makes (computed here when not given).
    """
    usable = [a for a in analyses if a.method in HEADLINE_ESTIMAND]
    if not usable:
        return {"design_level": None, "certainty": "very low", "headline": "No analysis gives a headline.",
                "scale": SCALE_NAME, "effects": []}
    effects = []
    for outcome in dict.fromkeys(a.outcome for a in usable):
        best = _strongest([a for a in usable if a.outcome == outcome])
        effects.append(_finding(best, estimates, checks, intervention, outcome_labels, concurrent, calibration))
    primary = next((f for f in effects if f["outcome"] == primary_outcome), effects[0])
    if sensitivity is None:
        sensitivity = parallel_trends_sensitivity(analyses, checks, estimates)
    return {
        **{k: primary[k] for k in ("design_level", "design_level_label", "level_meaning", "lowered_because",
                                   "certainty", "certainty_lowered_because", "concerns")},
        "sensitivity": sensitivity,
        "scale": SCALE_NAME,
        "headline": primary["sentence"],
        "headline_method": primary["method"],
        "headline_outcome": primary["outcome"],
        "headline_estimand": primary["estimand"],
        "concurrent_changes": list(concurrent or []),
        "effects": effects,
    }


def reassess(results, calibration: dict) -> dict:
    """The run's evidence again, with a design diagnosis's calibration verdicts applied.

    Used by the report when it is given a diagnosis (``render_html(results, diagnosis)``):
    the same pure function of the results as at run time, so the headline's verb follows the
    lowered certainty. Keys assess does not make (economics) are kept as they were.
    """
    context, evidence = results.context, results.evidence or {}
    labels = {o["name"]: o.get("label", o["name"]) for o in context.get("outcomes", [])}
    primary = context.get("primary_outcome") or evidence.get("headline_outcome")
    again = assess(results.estimates, results.checks, results.analyses, primary,
                   (context.get("intervention") or {}).get("name", ""), labels,
                   concurrent=evidence.get("concurrent_changes"), calibration=calibration,
                   sensitivity=evidence.get("sensitivity") or [])   # never computed here: only what the record holds
    return {**evidence, **again}


# ----------------------------------------------------------------------------- parallel trends
#: Mbar values whose robust intervals the annex shows beside the breakdown value
SENSITIVITY_MBARS = (0.5, 1.0, 2.0)
COVARIANCE_NOT_RECORDED = (
    "approximate: the results record each coefficient's standard error but not their covariance (the pre-period "
    "bins come from the pre-trend check, the effect from the main estimate), so the coefficients are treated as "
    "independent")


def _pre_trend_bins(check: Check) -> tuple[list[float], list[float], str] | None:
    """The pre-trend check's bins, oldest first, as (estimates, standard errors, scale) on the
    scale the test used (log ratio for a ratio check), or None."""
    bins = (check.values or {}).get("bins") or []
    if not bins or any(b.get("estimate") is None or b.get("se") is None for b in bins):
        return None
    ratio = check.values.get("scale") == "ratio"
    if "years_before" in bins[0]:
        bins = sorted(bins, key=lambda b: -b["years_before"])       # did: years before, oldest first
    else:
        bins = list(reversed(bins))                                   # staggered_did: nearest first
    if ratio and any(b["estimate"] <= 0 for b in bins):
        return None
    values = [math.log(b["estimate"]) if ratio else float(b["estimate"]) for b in bins]
    return values, [float(b["se"]) for b in bins], "log ratio" if ratio else "difference"


def _post_effect(estimate: Estimate, scale: str) -> tuple[float, float] | None:
    """The headline effect on the pre-trend bins' scale, with its (analytic) standard error."""
    d = estimate.details or {}
    value: float | None
    se: float | None
    if scale == "log ratio":
        if estimate.scale != "ratio" or not estimate.estimate or estimate.estimate <= 0 or d.get("se_scale") != "log":
            return None
        value, se = math.log(estimate.estimate), estimate.se
    elif estimate.scale == "ratio":
        value, se = d.get("difference"), d.get("difference_se")   # staggered_did counts: the rate difference
    else:
        value, se = estimate.estimate, estimate.se
    if value is None or se is None or not (math.isfinite(value) and math.isfinite(se)) or se <= 0:
        return None
    return float(value), float(se)


def sensitivity_inputs(analysis, checks: list[Check], estimates: list[Estimate]) -> dict | None:
    """Event-study inputs for the relative-magnitudes bound of one did / staggered_did analysis.

    Prefers ``analysis.series["honest_inputs"]`` (``betahat``, ``sigma``, ``num_pre``,
    ``num_post``, ``scale``, optional ``target``: one event study with its joint covariance)
    when a method records it. Otherwise builds what the results hold: the pre-trend check's
    bins (years before adoption, the year before as reference) and the headline effect as the
    one post-period coefficient, with a diagonal covariance (``approximate``), on the
    check's scale (log ratio for counts under did; rate difference for staggered_did).
    """
    recorded = (analysis.series or {}).get("honest_inputs")
    if recorded:
        return {"betahat": [float(v) for v in recorded["betahat"]],
                "sigma": [[float(v) for v in row] for row in recorded["sigma"]],
                "num_pre": int(recorded["num_pre"]), "num_post": int(recorded["num_post"]),
                "target": recorded.get("target", "average"), "scale": recorded.get("scale", ""),
                "l_vec": [float(v) for v in recorded["l_vec"]] if recorded.get("l_vec") is not None else None,
                "covariance": "recorded", "approximate": False,
                "source": recorded.get("source", "the method's event study with its joint covariance")}
    index = (analysis.settings or {}).get("analysis")
    check = next((c for c in checks if c.name == "pre_trends" and c.method == analysis.method
                  and c.outcome == analysis.outcome), None)
    estimand = HEADLINE_ESTIMAND.get(analysis.method)
    head = next((e for e in estimates if e.method == analysis.method and e.outcome == analysis.outcome
                 and e.estimand == estimand and e.group in (None, "treated")
                 and (index is None or (e.details or {}).get("analysis", index) == index)), None)
    if check is None or head is None:
        return None
    pre = _pre_trend_bins(check)
    if pre is None:
        return None
    values, ses, scale = pre
    post = _post_effect(head, scale)
    if post is None:
        return None
    betahat = values + [post[0]]
    return {"betahat": betahat, "sigma": [[(ses + [post[1]])[i] ** 2 if i == j else 0.0 for j in range(len(betahat))]
                                          for i in range(len(betahat))],
            "num_pre": len(values), "num_post": 1, "target": "first", "scale": scale,
            "covariance": "diagonal", "approximate": True,
            "source": (f"the pre-trend check's {len(values)} bin(s) of years before adoption (the year before "
                       f"adoption the reference) and the headline {estimand} as one post-adoption coefficient; "
                       f"{COVARIANCE_NOT_RECORDED}")}


def _headline_rejects(analysis, estimates: list[Estimate], alpha: float) -> bool | None:
    """Whether the analysis's own headline test (its declared inference) rejects no effect; None when unknown."""
    index = (analysis.settings or {}).get("analysis")
    estimand = HEADLINE_ESTIMAND.get(analysis.method)
    head = next((e for e in estimates if e.method == analysis.method and e.outcome == analysis.outcome
                 and e.estimand == estimand and e.group in (None, "treated")
                 and (index is None or (e.details or {}).get("analysis", index) == index)), None)
    if head is None:
        return None
    rejects = (head.details or {}).get("test_rejects")
    if rejects is None and head.p_value is not None:
        rejects = head.p_value < alpha
    return None if rejects is None else bool(rejects)


def parallel_trends_sensitivity(analyses: list, checks: list[Check], estimates: list[Estimate],
                                alpha: float = 0.05) -> list[dict]:
    """Breakdown value of the relative-magnitudes bound (Rambachan & Roth 2023) for every did and
    staggered_did analysis whose results hold the inputs (:func:`sensitivity_inputs`).

    Mbar* is the largest Mbar at which the robust 95% interval still excludes no effect: the
    finding holds unless post-adoption departures from parallel trends are more than Mbar*
    times the largest seen between pre-adoption years (evalkit.inference.honest, checked
    against HonestDiD's published examples in tests/test_honest.py). 0 when the usual interval
    already includes no effect. Deterministic (the engine's fixed seed).
    """
    from .inference.honest import relative_magnitudes_breakdown, relative_magnitudes_ci

    out = []
    for a in analyses:
        if a.method not in ("did", "staggered_did"):
            continue
        inputs = sensitivity_inputs(a, checks, estimates)
        if inputs is None:
            continue
        b, V = np.array(inputs["betahat"]), np.array(inputs["sigma"])
        try:
            l_vec = inputs.get("l_vec")
            found = relative_magnitudes_breakdown(b, V, inputs["num_pre"], inputs["num_post"], alpha=alpha,
                                                  target=inputs["target"], l_vec=l_vec)
            robust = [relative_magnitudes_ci(b, V, inputs["num_pre"], inputs["num_post"], m, alpha=alpha,
                                             target=inputs["target"], l_vec=l_vec, grid_points=1000,
                                             search="bisect")
                      for m in SENSITIVITY_MBARS]
        except (ValueError, np.linalg.LinAlgError):
            continue
        check = next((c for c in checks if c.name == "pre_trends" and c.method == a.method and c.outcome == a.outcome),
                     None)
        out.append({"analysis": (a.settings or {}).get("analysis"), "method": a.method, "outcome": a.outcome,
                    "breakdown": found["breakdown"], "capped": found["capped"], "significant": found["significant"],
                    "estimate": found["estimate"], "original_ci": list(found["original_ci"]),
                    "robust_ci": [{"mbar": r.mbar, "ci": [_finite(r.lb), _finite(r.ub)]} for r in robust],
                    "scale": inputs["scale"], "num_pre": inputs["num_pre"], "num_post": inputs["num_post"],
                    "target": inputs["target"], "covariance": inputs["covariance"],
                    "approximate": inputs["approximate"], "inputs": inputs["source"],
                    "pre_trends": check.status if check is not None else None,
                    "headline_rejects": _headline_rejects(a, estimates, alpha),
                    "method_note": found["method"]})
    return out


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def sensitivity_words(record: dict) -> str:
    """The breakdown value in plain words (docs/methods/honest_did.md, "How it will be used").

    No conclusion to overturn when the event study's usual interval includes no effect, or
    when the analysis's own headline test (e.g. randomization inference) does not reject:
    the words never claim a finding the headline does not make.
    """
    if not record.get("significant") or record.get("headline_rejects") is False:
        return ("even if trends had stayed exactly parallel, this analysis shows no clear change, so there is no "
                "conclusion for a difference in trends to overturn")
    mbar = record["breakdown"]
    if mbar <= 0:
        return "its conclusion depends on trends staying exactly parallel after adoption"
    times = f"{mbar:.1f}".rstrip("0").rstrip(".")
    more = "more than 10 times" if record.get("capped") else f"more than {times} times"
    text = (f"the conclusion holds unless, after adoption, the difference in trends between adopting and comparison "
            f"areas was {more} the largest year-to-year difference seen before adoption")
    if mbar < 1:
        text += ("; trends before adoption already moved by about as much as would be needed to explain the result "
                 "away, so treat it with caution")
    return text


def subgroup_differences(estimates: list[Estimate], alpha: float = 0.05) -> list[Estimate]:
    """Does the effect differ between the subgroups of a moderator? One test per moderator.

    Cochran's Q across the subgroup estimates of one moderator (looked-after status, risk
    grade, age band), on the log scale for ratios and the natural scale for differences,
    weights 1/se^2: the usual test for subgroup differences. It treats the subgroup
    estimates as independent; they come from disjoint sets of episodes but share areas and
    periods, and the refits use analytic standard errors, which are too small with few
    areas, so the test is approximate and leans towards finding differences (the report
    calls a difference "a lead to examine, not a finding"). Q is chi-square with k - 1
    degrees of freedom when the effect is the same in every subgroup. Returned as estimates
    ``subgroup_difference`` (estimate = Q, p_value) with ``group`` "moderator: <name>",
    reported before the subgroup rows: a single subgroup's interval excluding no change is
    not evidence that it differs from the others.
    """
    from scipy import stats

    by_moderator: dict = {}
    left_out: dict = {}
    for e in estimates:
        moderator = e.details.get("moderator")
        if moderator is None:
            continue
        key = (moderator, e.outcome, e.method, e.estimand)
        y, se = _on_test_scale(e, alpha)
        if y is None:
            left_out.setdefault(key, []).append(e.details.get("subgroup"))
            continue
        by_moderator.setdefault(key, {}).setdefault(e.scale, []).append((e.details.get("subgroup"), y, se))
    out = []
    for key, by_scale in by_moderator.items():
        moderator, outcome, method, estimand = key
        # subgroups on another scale (a ratio withheld for too few counts) cannot enter one test
        scale, rows = max(by_scale.items(), key=lambda kv: (len(kv[1]), kv[0] == "ratio"))
        excluded = left_out.get(key, []) + [level for other, more in by_scale.items() if other != scale
                                            for level, _, _ in more]
        if len(rows) < 2:
            continue
        weights = [1.0 / se**2 for _, _, se in rows]
        pooled = sum(w * y for w, (_, y, _) in zip(weights, rows)) / sum(weights)
        q = sum(w * (y - pooled) ** 2 for w, (_, y, _) in zip(weights, rows))
        df = len(rows) - 1
        p = float(stats.chi2.sf(q, df))
        out.append(Estimate(outcome=outcome, method=method, estimand="subgroup_difference", scale="statistic",
                            estimate=float(q), p_value=p, group=f"moderator: {moderator}",
                            details={"test": "Cochran's Q across subgroups", "df": df, "of": estimand,
                                     "scale": "log ratio" if scale == "ratio" else "difference",
                                     "subgroups": [level for level, _, _ in rows], "left_out": excluded,
                                     "moderator": moderator, "differs": p < alpha}))
    return out


def _on_test_scale(e: Estimate, alpha: float):
    """(value, se) on the scale the subgroup test uses: log for ratios (se from the interval when
    it is not on the log scale already), natural for differences; (None, None) when unusable."""
    if e.estimate is None or not math.isfinite(e.estimate) or e.se is None or not math.isfinite(e.se) or e.se <= 0:
        return None, None
    if e.scale != "ratio":
        return e.estimate, e.se
    if e.estimate <= 0:
        return None, None
    se = e.se
    if e.details.get("se_scale") != "log":
        if not (e.ci_low and e.ci_high and e.ci_low > 0 and e.ci_high > 0):
            return None, None
        from statistics import NormalDist

        se = (math.log(e.ci_high) - math.log(e.ci_low)) / (2 * NormalDist().inv_cdf(1 - alpha / 2))
    return math.log(e.estimate), se


#: layouts whose count outcomes are missing episodes (what a police cost per episode prices)
MISSING_EPISODE_LAYOUTS = ("episodes", "ssda903", "dfe_published")


def economics(design, estimates: list, evidence: dict) -> dict | None:
    """Police time saved against the intervention's cost, from the headline's yearly effect.

    Only for counts of missing episodes (episode records, SSDA903 returns, DfE figures), or
    when the design declares its own ``intervention.cost_per_episode``: the default police
    cost of a missing episode means nothing for another count (heart attacks in Sicily).
    ``areas`` is the number of adopting areas the headline estimate covers, for per-area totals.
    """
    method, outcome = evidence.get("headline_method"), evidence.get("headline_outcome")
    if not method or design.outcome(outcome).measure != "count":
        return None
    declared = "cost_per_episode" in design.intervention.model_fields_set
    if design.data.layout not in MISSING_EPISODE_LAYOUTS and not declared:
        return None
    headline = next((e for e in estimates if e.method == method and e.outcome == outcome
                     and e.estimand == evidence["headline_estimand"] and not (e.group or "").startswith("subgroup")), None)
    if headline is None:
        return None
    per_year = headline.details.get("per_year")
    if per_year is None:
        return None
    cost = design.intervention.cost_per_episode
    saved = -per_year * cost
    details = headline.details
    covered = details.get("units") if isinstance(details.get("units"), list) else None
    areas = (len(covered) if covered else details.get("treated_units") or details.get("post_areas")
             or details.get("treated_areas") or None)
    record = {"reports_change_per_year": per_year, "cost_per_episode": cost, "police_cost_saved_per_year": saved,
              "annual_cost": design.intervention.annual_cost, "areas": int(areas) if areas else None}
    low, high = headline.details.get("per_year_ci_low"), headline.details.get("per_year_ci_high")
    if low is not None and high is not None:
        record["police_cost_saved_range"] = [-high * cost, -low * cost]
    if design.intervention.annual_cost:
        record["net_saving_per_year"] = saved - design.intervention.annual_cost
    return record
