"""Render report.html from Results: jinja2 templates (autoescape on), inline SVG figures,
disclosure control on every published count. Never fits a model; every number shown comes
from the Results record (and so from results.json).
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup

from ..periods import PERIODS_PER_YEAR
from ..results import Results, write_atomic
from .disclosure import SUPPRESSED, control_count, control_table, rule_from_dict
from .figures import acf_figure, event_study_figure, its_figure, km_figure, synth_figure

CHECK_MEANING = {
    "minimum_data": "Enough time points either side of the change to tell a trend from a jump.",
    "overdispersion": "Whether the counts vary more than a simple count model expects; if they do, intervals must widen.",
    "autocorrelation": "Whether one period's count follows on from the last; if it does, intervals must allow for it.",
    "seasonality": "Whether the usual seasonal rise and fall is accounted for, so it is not mistaken for an effect.",
    "pre_trends": "Whether the adopting and comparison areas were moving in step before the change; if not, the comparison may mislead.",
    "placebo": "Whether a fake intervention date or area shows an 'effect' too; if it does, the real one is doubtful.",
    "few_treated": "How many areas adopted; with few, ordinary standard errors are too small and special inference is needed.",
    "few_clusters": "How many areas the time-to-found comparison rests on; with few, its intervals are less reliable.",
    "censoring": "How many episodes were still open when the data were extracted; they count as missing at least that long.",
    "bacon_decomposition": "Whether a simple two-way comparison leans on already-treated areas as controls, which can bias it.",
    "proportional_hazards": "Whether the change in how soon children are found is steady over the hours missing, as the model assumes.",
    "moderators": "Whether every subgroup could be analysed.",
    "placebo_duplicates": "Whether some comparison areas are identical, which makes their placebo tests uninformative.",
    "missing_values": "Whether areas or periods had to be left out because values were missing.",
    "zero_counts": "Whether some areas or periods had no reports at all, which the model has to handle.",
    "pre_period_fit": "How closely the blend of other areas tracked this area before the change.",
    "convex_hull": "Whether this area lies within the range of the comparison areas; if not, no blend can match it.",
    "placebo_resolution": "Whether there are enough comparison areas for the placebo test to be able to show an effect.",
}

CHECK_LABEL = {"pre_trends": "pre-intervention trends", "few_treated": "number of adopting areas",
               "bacon_decomposition": "Goodman-Bacon decomposition", "proportional_hazards": "proportional hazards"}

#: checks shown in the evidence box: they bear on whether the comparison is fair
DESIGN_CHECKS = ("pre_trends", "placebo", "few_treated", "bacon_decomposition", "pre_period_fit", "convex_hull",
                 "placebo_resolution")

METHOD_NAMES = {"its": "interrupted time series", "controlled_its": "controlled interrupted time series",
                "did": "difference-in-differences", "staggered_did": "staggered difference-in-differences",
                "synthetic_control": "synthetic control", "survival_did": "time-to-found difference-in-differences"}

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

REFERENCES = {
    "survival_did": [
        "Cox DR (1972). Regression models and life-tables. Journal of the Royal Statistical Society B 34(2):187-220.",
        "Royston P, Parmar MKB (2013). Restricted mean survival time: an alternative to the hazard ratio. BMC Medical "
        "Research Methodology 13:152.",
        "Morris TP et al. (2019). Proposals on Kaplan-Meier plots in medical research and a survey of stakeholder "
        "views: KMunicate. BMJ Open 9:e030215.",
    ],
    "staggered_did": [
        "Callaway B, Sant'Anna PHC (2021). Difference-in-differences with multiple time periods. Journal of "
        "Econometrics 225(2):200-230.",
        "Sant'Anna PHC, Zhao J (2020). Doubly robust difference-in-differences estimators. Journal of Econometrics "
        "219(1):101-122.",
    ],
    "synthetic_control": [
        "Abadie A, Diamond A, Hainmueller J (2010). Synthetic control methods for comparative case studies. Journal "
        "of the American Statistical Association 105(490):493-505.",
        "Abadie A (2021). Using synthetic controls: feasibility, data requirements, and methodological aspects. "
        "Journal of Economic Literature 59(2):391-425.",
    ],
    "its": [
        "Lopez Bernal J, Cummins S, Gasparrini A (2017). Interrupted time series regression for the evaluation of "
        "public health interventions: a tutorial. International Journal of Epidemiology 46(1):348-355.",
        "Linden A (2015). Conducting interrupted time-series analysis for single- and multiple-group comparisons. "
        "The Stata Journal 15(2):480-500.",
        "Newey WK, West KD (1994). Automatic lag selection in covariance matrix estimation. Review of Economic "
        "Studies 61(4):631-653.",
    ],
}


def _template_dirs() -> list[str]:
    dirs = []
    repo = Path(__file__).resolve().parents[2] / "reports" / "templates"
    if repo.is_dir():
        dirs.append(str(repo))
    try:
        packaged = resources.files("evalkit") / "report" / "templates"
        if packaged.is_dir():
            dirs.append(str(packaged))
    except (ModuleNotFoundError, TypeError):
        pass
    return dirs


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_template_dirs()),
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


def _ratio_text(x: float) -> str:
    change = (x - 1.0) * 100
    return "no change" if abs(change) < 0.05 else f"{abs(change):.1f}% {'fewer' if change < 0 else 'more'}"


def _bounded(estimate) -> bool:
    return all(v is not None and math.isfinite(v) for v in (estimate.ci_low, estimate.ci_high))


def _value_text(estimate) -> tuple[str, str]:
    if estimate.ci_low is not None and not _bounded(estimate):
        return (_ratio_text(estimate.estimate) if estimate.scale == "ratio" else _number(estimate.estimate),
                "no bound (too few comparison areas)")
    if estimate.scale == "ratio" and estimate.estimand != "hazard_ratio_did":
        return _ratio_text(estimate.estimate), f"{_ratio_text(estimate.ci_low)} to {_ratio_text(estimate.ci_high)}"
    if estimate.ci_low is None:
        return _number(estimate.estimate), ""
    return _number(estimate.estimate), f"{_number(estimate.ci_low)} to {_number(estimate.ci_high)}"


def _figures(results: Results, rule, outcomes: dict) -> list[dict]:
    figures = []
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
                            + ("; grey: the comparison series." if comparison else ".")),
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
                                                 max_pre=2 * PERIODS_PER_YEAR.get(results.context.get("frequency"), 12))),
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
                "table": {"header": ["", ""] + [f"{h:g}h" for h in series.get("at_hours", [])], "rows": rows},
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


def _main_rows(results: Results, outcomes: dict) -> list[dict]:
    rows = []
    for e in results.estimates:
        if e.estimand in ESTIMAND_WORDS and e.group in (None, "treated"):
            value, span = _value_text(e)
            rows.append({"outcome": outcomes.get(e.outcome, {}).get("label", e.outcome), "what": ESTIMAND_WORDS[e.estimand],
                         "method": METHOD_NAMES.get(e.method, e.method), "estimate": value, "range": span})
    return rows


def _moderators(results: Results, rule) -> tuple[list[dict], str]:
    rows, method = [], ""
    for e in results.estimates:
        if (e.group or "").startswith("subgroup: "):
            value, span = _value_text(e)
            episodes = control_count(e.details.get("episodes"), rule)
            rows.append({"subgroup": e.group[len("subgroup: "):], "episodes": episodes, "estimate": value, "range": span})
            method = e.method
    return rows, method


def _economics(evidence: dict) -> dict | None:
    econ = evidence.get("economics")
    if not econ:
        return None
    change = econ["reports_change_per_year"]
    saved = econ["police_cost_saved_per_year"]
    words = (f"If the estimated change is real, about {_prose_count(abs(change))} "
             f"{'fewer' if change < 0 else 'more'} missing reports a year would "
             f"{'save' if saved >= 0 else 'cost'} about £{_prose_count(abs(saved))} of police time a year")
    span = econ.get("police_cost_saved_range")
    if span:
        low, high = span
        if low < 0 < high:
            words += f"; the likely range runs from a cost of £{_prose_count(-low)} to a saving of £{_prose_count(high)}"
        else:
            words += f" (likely range £{_prose_count(min(low, high))} to £{_prose_count(max(low, high))})"
    if econ.get("annual_cost"):
        net = econ.get("net_saving_per_year", 0.0)
        words += (f", against the intervention's cost of £{_prose_count(econ['annual_cost'])} a year "
                  f"(a net {'saving' if net >= 0 else 'cost'} of about £{_prose_count(abs(net))})")
    return {**econ, "sentence": words + "."}


def _prose_count(x: float) -> str:
    if x >= 1000:
        return f"{round(x, -3 if x >= 10000 else -2):,.0f}"
    return f"{round(x):,.0f}"


def view_model(results: Results) -> dict:
    context = results.context
    rule = rule_from_dict(context["disclosure"])
    outcomes = {o["name"]: o for o in context["outcomes"]}
    table = context.get("summary_counts", [])
    rows = [[r["group"], r["units"], r["before"], r["after"]] for r in table]
    controlled = []
    if rows:
        total = ["all", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows)]
        controlled = control_table(rows + [total], [2, 3], rule, total_row=len(rows))
    checks = [{"name": c.name, "label": CHECK_LABEL.get(c.name, c.name.replace("_", " ")), "status": c.status,
               "detail": c.detail, "method": METHOD_NAMES.get(c.method, c.method), "outcome": c.outcome,
               "meaning": CHECK_MEANING.get(c.name, "")}
              for c in results.checks]
    moderator_rows, moderator_method = _moderators(results, rule)
    adoption: dict = {}
    for unit, period in context.get("adoption", {}).items():
        adoption.setdefault(period, []).append(unit)
    methods = sorted({a.method for a in results.analyses})
    return {
        "r": results,
        "title": results.design.get("title"),
        "evidence": results.evidence,
        "context": context,
        "figures": _figures(results, rule, outcomes),
        "main_rows": _main_rows(results, outcomes),
        "design_checks": [c for c in checks if c["name"] in DESIGN_CHECKS],
        "other_concerns": [c for c in results.evidence.get("concerns", []) if c.split(":", 1)[0] not in DESIGN_CHECKS],
        "moderator_rows": moderator_rows,
        "moderator_method_name": METHOD_NAMES.get(moderator_method, moderator_method),
        "adoption_by_period": sorted(adoption.items()),
        "phase_in_excluded": all(a.settings.get("transition_mode", "exclude") == "exclude" for a in results.analyses),
        "economics": _economics(results.evidence),
        "summary_rows": controlled,
        "summary_label": table[0]["outcome"].replace("_", " ") if table else "",
        "disclosure_text": rule.describe(),
        "estimates": results.estimates,
        "checks": checks,
        "analyses": results.analyses,
        "technical_tables": [t for a in results.analyses for t in a.series.get("tables", [])]
        if context.get("audience") == "technical" else [],
        "references": [ref for m in methods for ref in REFERENCES.get(m, [])],
        "technical": context.get("audience") == "technical",
    }


def render_html(results: Results) -> str:
    return environment().get_template("report.html.j2").render(**view_model(results))


def render_report(results: Results, path) -> Path:
    """Render report.html for the results and write it atomically.

    Parameters
    ----------
    results : Results
    path : str or Path
        Where to write the HTML file.
    """
    return write_atomic(Path(path), render_html(results))
