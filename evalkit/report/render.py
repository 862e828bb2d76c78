"""Render report.html from Results: jinja2 templates (autoescape on), inline SVG figures,
disclosure control on every published count. Never fits a model; every number shown comes
from the Results record (and so from results.json).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import jinja2
from markupsafe import Markup

from ..catalog import CHECKS, METHODS
from ..periods import PERIODS_PER_YEAR
from ..resources import templates_dir
from ..results import Results, write_atomic
from .disclosure import (
    control_count,
    control_table,
    control_text,
    control_values,
    published_count_text,
    rule_from_dict,
)
from .figures import acf_figure, event_study_figure, its_figure, km_figure, synth_figure
from .words import (adoption_schedule, analysis_name, check_plain, disagreements, economics_words, estimate_words,
                    headline_source, method_does, sensitivity_notes, setting_text, strip_statistics, what_this_means)

CHECK_MEANING = CHECKS

CHECK_LABEL = {"pre_trends": "pre-intervention trends", "few_treated": "number of adopting areas",
               "bacon_decomposition": "Goodman-Bacon decomposition", "proportional_hazards": "proportional hazards",
               "duration_resolution": "time resolution", "dfe_caveat": "DfE recording caveat",
               "dfe_suppressed": "suppressed published figures", "missing_code": "blank or unknown MISSING codes",
               "dfe_codes_unknown": "authority codes newer than the lookup",
               **{f"dfe_rule_{code}": f"DfE validation rule {code}" for code in
                  ("564", "567", "570", "574", "577", "581", "586")}}

#: checks shown in the evidence box: they bear on whether the comparison is fair
DESIGN_CHECKS = ("pre_trends", "placebo", "few_treated", "bacon_decomposition", "pre_period_fit", "convex_hull",
                 "placebo_resolution")

METHOD_NAMES = {name: record.display_name for name, record in METHODS.items()}

#: estimand -> words, for the main estimates table
ESTIMAND_WORDS = {
    "level_change": "Immediate change at the intervention",
    "slope_change": "Change in trend per period after the intervention",
    "cumulative_effect": "Average effect over the post-intervention period",
    "level_change_difference": "Immediate change, compared with the comparison areas",
    "slope_change_difference": "Change in trend, compared with the comparison areas",
    "att": "Average effect in the adopting areas",
    "att_simple": "Average effect in the adopting areas",
    "att_dynamic": "Average effect after adoption (event study)",
    "hazard_ratio_did": "Chance of being found at any moment (hazard ratio; above 1 = sooner)",
    "rmst_difference_did": "Change in average hours missing within the horizon",
    "placebo_p": "Share of comparison areas with as large a change (placebo p)",
}

REFERENCES = {name: list(record.references) for name, record in METHODS.items()}


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = _number
    env.filters["setting"] = _setting
    env.filters["pct"] = lambda x: "" if x is None else f"{(x - 1) * 100:+.1f}%"
    env.filters["p"] = lambda p: "" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")
    env.filters["plain"] = strip_statistics
    env.filters["does"] = lambda method, settings=None: analysis_name(method, settings)
    return env


def _setting(value) -> str:
    """A method setting in words: lists and records flattened, numbers rounded."""
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')} {_setting(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_setting(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(value, 4)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _number(value, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "no bound" if abs(value) == math.inf else ""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:,.{max(digits - 1, 0)}f}".rstrip("0").rstrip(".")


def _published_observed(series: dict, rule, prefix: str = "") -> list:
    """Observed values as the report may show them: from disclosure-controlled counts."""
    counts = series.get(f"{prefix}_counts" if prefix else "observed_counts")
    observed = series[f"{prefix}_observed" if prefix else "observed"]
    if counts is None:
        return observed
    out = []
    for count, value in zip(counts, observed):
        controlled = control_count(count, rule)
        if not isinstance(controlled, int) or count == 0:
            out.append(None if controlled != 0 else 0.0)
        else:
            out.append(value * controlled / count)
    return out


def _figures(results: Results, rule, outcomes: dict) -> list[dict]:
    figures: list[dict] = []
    acf_by_method = {(c.method, c.outcome): c.values.get("acf") for c in results.checks if c.name == "autocorrelation"}
    for analysis in results.analyses:
        outcome = outcomes.get(analysis.outcome, {})
        label = outcome.get("label", analysis.outcome)
        if analysis.method in ("its", "controlled_its") and analysis.series:
            per = outcome.get("per")
            y_label = f"{label} per {per:,.0f}" if analysis.settings.get("exposure") and per else label
            comparison = analysis.series.get("comparison_observed")
            figures.append({
                "kind": "its",
                "title": f"{label.capitalize()}: observed, and expected without the intervention",
                "caption": (f"{analysis.label}. Dots: observed{' (from rounded counts)' if rule.enabled else ''}; "
                            "blue line: model; red dashed line: what the model expects without the intervention, "
                            "with its likely range shaded"
                            + ("; grey: the comparison series" if comparison else "")
                            + (f"; crosses on a shaded band: {', '.join(map(str, analysis.settings['excluded_periods']))} "
                               "left out of the fit (declared exclusions)" if analysis.settings.get("excluded_periods")
                               else "") + "."),
                "svg": Markup(its_figure(analysis.series, _published_observed(analysis.series, rule), y_label,
                                         f"{label}: observed and counterfactual",
                                         comparison=_published_observed(analysis.series, rule, "comparison")
                                         if comparison else None)),
            })
            acf = acf_by_method.get((analysis.method, analysis.outcome))
            if acf and results.context.get("audience") == "technical":
                figures.append({"kind": "acf", "title": "Residual autocorrelation",
                                "caption": "Autocorrelation of the model's residuals by lag, with approximate 95% limits "
                                           "(plus or minus 1.96 / square root of the number of periods).",
                                "svg": Markup(acf_figure(acf, analysis.settings.get("n_periods") or len(acf) * 3,
                                                         "Residual autocorrelation"))})
        if analysis.series.get("kind") == "event_study":
            scale = analysis.series.get("scale")
            y_label = f"change in {label}" + (" rate" if scale == "rate_difference" else "")
            figures.append({
                "kind": "event_study",
                "title": f"{label.capitalize()}: effect by time since adoption",
                "caption": (f"{analysis.label}. Each point compares adopting areas with areas not (yet) adopting, "
                            "by periods since adoption (the two years before adoption are shown); bars are 95% "
                            "intervals; before adoption the points should sit near zero."),
                "svg": Markup(event_study_figure(analysis.series, y_label, f"{label}: event study",
                                                 max_pre=2 * PERIODS_PER_YEAR.get(results.context.get("frequency") or "month", 12))),
            })
        if analysis.method == "survival_did" and analysis.series.get("curves"):
            series = analysis.series
            rows = []
            for curve in series["curves"]:
                for what, key in (("still missing", "at_risk"), ("found", "found_by"), ("censored", "censored_by")):
                    rows.append([curve["label"], what] + [control_count(v, rule) for v in curve.get(key, [])])
            figures.append({
                "kind": "kaplan_meier",
                "title": "How soon missing children were found, before and after adoption",
                "caption": (f"{analysis.label}. Share of episodes in which the child had been found, by hours since the "
                            "report (Kaplan-Meier; shaded: 95% interval). Solid lines: after adoption; dotted: before. "
                            "Blue: adopting areas; grey: comparison areas. Table: episodes still missing, found and "
                            "censored (open at extraction) by each hour shown."),
                "svg": Markup(km_figure(series["curves"], series.get("display_hours") or series.get("horizon_hours") or 72,
                                        "Kaplan-Meier: share found", series.get("horizon_hours"))),
                "table": {"header": ["Areas and period", "Episodes"] + [f"{h:g}h" for h in series.get("at_hours", [])],
                          "rows": rows},
            })
        if analysis.method == "synthetic_control" and analysis.series.get("synthetic") is not None:
            series = analysis.series
            treated = series["treated"]
            counts = series.get("observed_counts")
            if counts is not None:
                treated = _published_observed({"observed": treated, "observed_counts": counts}, rule)
            figures.append({
                "kind": "synthetic_control",
                "title": f"{label.capitalize()}: the adopting area and its synthetic comparison",
                "caption": (f"{analysis.label}. Top: the adopting area and a weighted blend of comparison areas "
                            "that tracks it before the change. Bottom: the gap between them, with every comparison "
                            "area's gap when treated as if it had adopted (grey)."),
                "svg": Markup(synth_figure(series, treated, series.get("y_unit") or label, f"{label}: synthetic control")),
            })
    return figures


def analysis_of(estimate, analyses) -> object | None:
    """The analysis an estimate comes from: by its plan index when recorded (two analyses may share a
    method and an outcome, e.g. never- and not-yet-treated comparisons), else by method and outcome."""
    index = estimate.details.get("analysis") if isinstance(estimate.details, dict) else None
    if index is not None:
        for a in analyses:
            if a.settings.get("analysis") == index:
                return a
    return next((a for a in analyses if a.method == estimate.method and a.outcome == estimate.outcome), None)


def _main_rows(results: Results, outcomes: dict) -> list[dict]:
    rows = []
    for e in results.estimates:
        if e.estimand in ESTIMAND_WORDS and e.group in (None, "treated"):
            value, span = estimate_words(e, outcomes.get(e.outcome, {}), results.context.get("frequency"))
            rows.append({"outcome": outcomes.get(e.outcome, {}).get("label", e.outcome),
                         "what": ESTIMAND_WORDS[e.estimand].replace("per period", f"per {results.context.get('frequency') or 'period'}"),
                         "method": analysis_name(e.method, getattr(analysis_of(e, results.analyses), "settings", None)),
                         "estimate": value, "range": span})
    return rows


def _estimate_groups(results: Results) -> list[dict]:
    """The annex's estimates grouped by analysis, with event-study rows folded apart."""
    groups, placed = [], set()
    for a in results.analyses:
        mine = [e for e in results.estimates if id(e) not in placed and analysis_of(e, results.analyses) is a]
        placed |= {id(e) for e in mine}
        groups.append({"method": a.method, "outcome": a.outcome, "label": control_text(a.label, results_rule(results)),
                       "main": [e for e in mine if not e.estimand.startswith("event_")],
                       "events": [e for e in mine if e.estimand.startswith("event_")]})
    rest = [e for e in results.estimates if id(e) not in placed]
    if rest:
        groups.append({"method": "", "outcome": "", "label": "Other estimates",
                       "main": [e for e in rest if not e.estimand.startswith("event_")],
                       "events": [e for e in rest if e.estimand.startswith("event_")]})
    return groups


def results_rule(results: Results):
    return rule_from_dict(results.context["disclosure"])


def _methods_text(analyses) -> list[dict]:
    """Each analysis's settings for the annex: seeds as written, options in words."""
    out = []
    for a in analyses:
        items = []
        for k, v in a.settings.items():
            if v is None or v == [] or v == {}:
                continue
            special = setting_text(k, v, a.method)
            items.append(f"{k.replace('_', ' ')}: {special if special is not None else _setting(v)}")
        out.append({"label": a.label, "settings": "; ".join(items)})
    return out


MODERATOR_WORDS = {"looked_after": "Looked-after and other children", "risk": "Risk grades",
                   "age_band": "Age bands"}


def _moderator_tests(results: Results) -> list[str]:
    """One plain sentence per moderator from its test of subgroup differences (evidence.subgroup_differences)."""
    sentences = []
    for e in results.estimates:
        if e.estimand != "subgroup_difference":
            continue
        moderator = str(e.details.get("moderator", ""))
        who = MODERATOR_WORDS.get(moderator, moderator.replace("_", " "))
        if e.details.get("differs"):
            sentences.append(f"{who}: the change appears to differ between them, more than chance would usually "
                             "give; treat this as a lead to examine, not a finding.")
        else:
            sentences.append(f"{who}: no clear sign that the change differs between them; the gaps between their "
                             "results below could be chance.")
    return sentences


def _moderators(results: Results, rule) -> tuple[list[dict], str]:
    rows, method = [], ""
    outcomes = {o["name"]: o for o in results.context.get("outcomes", [])}
    for e in results.estimates:
        if e.group is not None and e.group.startswith("subgroup: "):
            value, span = estimate_words(e, outcomes.get(e.outcome, {}), results.context.get("frequency"))
            episodes = control_count(e.details.get("episodes"), rule)
            rows.append({"subgroup": e.group[len("subgroup: "):], "episodes": episodes, "estimate": value, "range": span})
            method = e.method
    return rows, method


def view_model(results: Results, diagnosis: dict | None = None) -> dict:
    """Everything the template shows. ``diagnosis`` (optional, a design diagnosis record with
    ``headline.mde``) adds the smallest detectable change to "What this means", and its
    calibration verdicts: an analysis whose interval it found too narrow has its certainty
    lowered by one step (evidence.reassess) and the evidence box says why."""
    from .diagnosis import calibration_by_analysis

    calibration = calibration_by_analysis(results, diagnosis)
    if any(v["lower"] for v in calibration.values()):
        from ..evidence import reassess

        results = replace(results, evidence=reassess(results, calibration))
    context = results.context
    rule = rule_from_dict(context["disclosure"])
    outcomes = {o["name"]: o for o in context["outcomes"]}
    table = context.get("summary_counts", [])
    rows = [[r["group"], r["units"], r["before"], r["after"]] for r in table]
    controlled = []
    if rows:
        total = ["all", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows)]
        controlled = control_table(rows + [total], [2, 3], rule, total_row=len(rows))
    # every count of episodes, children or rows anywhere in the text passes the same rule as the tables
    checks = [{"name": c.name, "label": CHECK_LABEL.get(c.name, c.name.replace("_", " ")), "status": c.status,
               "detail": control_text(c.detail, rule),
               "method": METHOD_NAMES.get(c.method, c.method) if c.method else c.method,
               "outcome": c.outcome, "meaning": CHECK_MEANING.get(c.name, ""),
               "plain": check_plain(c.name, c.status), "analysis": method_does(c.method, next(
                   (a.settings for a in results.analyses if a.method == c.method and a.outcome == c.outcome), {}))
               if c.method else ""}
              for c in results.checks]
    evidence = control_values(results.evidence, rule)
    analyses = [replace(a, label=control_text(a.label, rule), settings=control_values(a.settings, rule),
                        notes=control_values(a.notes, rule)) for a in results.analyses]
    moderator_rows, moderator_method = _moderators(results, rule)
    adoption: dict = {}
    for unit, period in context.get("adoption", {}).items():
        adoption.setdefault(period, []).append(unit)
    methods = sorted({a.method for a in results.analyses})
    return {
        "r": results,
        "title": results.design.get("title"),
        "evidence": evidence,
        "context": context,
        "figures": _figures(results, rule, outcomes),
        "main_rows": _main_rows(results, outcomes),
        "design_checks": [c for c in checks if c["name"] in DESIGN_CHECKS],
        "moderator_rows": moderator_rows,
        "moderator_tests": _moderator_tests(results),
        "moderator_method_name": METHOD_NAMES.get(moderator_method, moderator_method),
        "adoption_by_period": sorted(adoption.items()),
        "phase_in_excluded": all(a.settings.get("transition_mode", "exclude") == "exclude" for a in results.analyses),
        "economics": economics_words(results),
        "means": what_this_means(results, diagnosis),
        "diagnosis": diagnosis,
        "diagnosis_section": _diagnosis_section(results, diagnosis),
        "disagreements": disagreements(results, calibration),
        "headline_source": headline_source(results),
        "calibration_notes": _calibration_notes(results, calibration),
        "sensitivity_notes": sensitivity_notes(results),
        "sensitivity_rows": _sensitivity_rows(results),
        "headline_text": strip_statistics(evidence.get("headline", "")),
        "schedule": adoption_schedule(context.get("adoption", {})),
        "estimate_groups": _estimate_groups(results),
        "methods_text": _methods_text(analyses),
        "concern_checks": [c for c in checks if c["status"] in ("warn", "fail") and c["name"] not in DESIGN_CHECKS
                           and (c["method"], c["outcome"]) in {(METHOD_NAMES.get(f["method"], f["method"]), f["outcome"])
                                                               for f in evidence.get("effects", [])}],
        "summary_rows": controlled,
        "summary_label": table[0]["outcome"].replace("_", " ") if table else "",
        "disclosure_text": rule.describe(),
        "estimates": results.estimates,
        "checks": checks,
        "analyses": analyses,
        "published_rows": published_count_text(results.data.get("rows"), rule),
        "technical_tables": [t for a in results.analyses for t in a.series.get("tables", [])]
        if context.get("audience") == "technical" else [],
        "references": [ref for m in methods for ref in REFERENCES.get(m, [])],
        "technical": context.get("audience") == "technical",
    }


def _calibration_notes(results: Results, calibration: dict) -> list[str]:
    """Evidence-box lines on a diagnosis's calibration beyond the headline's own lowered certainty:
    another outcome's finding lowered too, or a finding's range found wider than it needs to be."""
    notes = []
    evidence = results.evidence or {}
    for f in evidence.get("effects", []):
        v = calibration.get((f["method"], f["outcome"]))
        if not v or not v["words"]:
            continue
        name = analysis_name(f["method"], next((a.settings for a in results.analyses if a.method == f["method"]
                                                and a.outcome == f["outcome"]), None))
        if not v["lower"]:
            notes.append(f"For {f['outcome_label']} ({name}): {v['words'][0].lower()}{v['words'][1:]}; certainty "
                         "not lowered, since a wider range does not overstate it")
        elif f["outcome"] != evidence.get("headline_outcome"):
            notes.append(f"For {f['outcome_label']} ({name}): {v['words'][0].lower()}{v['words'][1:]}; its "
                         f"certainty lowered to {f['certainty']}")
    return notes


def _sensitivity_rows(results: Results) -> list[dict]:
    """The annex's sensitivity to parallel trends (evidence.parallel_trends_sensitivity), one row per analysis."""
    rows = []
    for record in (results.evidence or {}).get("sensitivity") or []:
        analysis = next((a for a in results.analyses if a.method == record["method"] and a.outcome == record["outcome"]
                         and a.settings.get("analysis", record.get("analysis")) == record.get("analysis")), None)
        robust = "; ".join(f"{r['mbar']:g}: {_number(r['ci'][0], 4)} to {_number(r['ci'][1], 4)}"
                           if r["ci"][0] is not None else f"{r['mbar']:g}: empty" for r in record["robust_ci"])
        rows.append({"label": control_text(analysis.label, results_rule(results)) if analysis is not None
                     else record["method"],
                     "scale": record["scale"], "estimate": _number(record["estimate"], 4),
                     "usual": f"{_number(record['original_ci'][0], 4)} to {_number(record['original_ci'][1], 4)}",
                     "breakdown": ("not significant under parallel trends" if not record["significant"] else
                                   f"{'at least ' if record['capped'] else ''}{record['breakdown']:.2f}"
                                   + (" (of the event study's analytic interval; the headline's own test does not "
                                      "reject, so there is no conclusion to overturn)"
                                      if record.get("headline_rejects") is False else "")),
                     "robust": robust, "pre_trends": record.get("pre_trends") or "",
                     "inputs": f"{record['num_pre']} pre-period and {record['num_post']} post-period coefficient(s): "
                               f"{record['inputs']}"})
    return rows


def _diagnosis_section(results: Results, diagnosis: dict | None) -> dict | None:
    """The section "Could this evaluation have detected a change?" from a design diagnosis (evalkit.report.diagnosis)."""
    if not diagnosis:
        return None
    from .diagnosis import report_section

    return report_section(results, diagnosis)


def render_html(results: Results, diagnosis: dict | None = None) -> str:
    return environment().get_template("report.html.j2").render(**view_model(results, diagnosis))


def render_report(results: Results, path) -> Path:
    """Render report.html for the results and write it atomically.

    Parameters
    ----------
    results : Results
    path : str or Path
        Where to write the HTML file.
    """
    return write_atomic(Path(path), render_html(results))
