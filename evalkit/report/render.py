"""Render report.html from Results: jinja2 templates (autoescape on), inline SVG figures,
disclosure control on every published count. Never fits a model; every number shown comes
from the Results record (and so from results.json).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup

from ..results import Results, write_atomic
from .disclosure import SUPPRESSED, control_count, control_table, rule_from_dict
from .figures import its_figure

CHECK_MEANING = {
    "minimum_data": "Enough time points either side of the change to tell a trend from a jump.",
    "overdispersion": "Whether the counts vary more than a simple count model expects; if they do, intervals must widen.",
    "autocorrelation": "Whether one period's count follows on from the last; if it does, intervals must allow for it.",
    "seasonality": "Whether the usual seasonal rise and fall is accounted for, so it is not mistaken for an effect.",
}

ESTIMAND_WORDS = {
    "level_change": "Immediate change in level at the intervention",
    "slope_change": "Change in trend per period after the intervention",
    "pre_slope": "Trend per period before the intervention",
    "cumulative_effect": "Average effect over the whole post-intervention period",
}

REFERENCES = {
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
    env.filters["pct"] = lambda x: "" if x is None else f"{(x - 1) * 100:+.1f}%"
    env.filters["p"] = lambda p: "" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")
    return env


def _number(value, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:,.{max(digits - 1, 0)}f}".rstrip("0").rstrip(".")


def _published_observed(series: dict, rule) -> list:
    """Observed values as the report may show them: from disclosure-controlled counts."""
    counts = series.get("observed_counts")
    observed = series["observed"]
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


def view_model(results: Results) -> dict:
    context = results.context
    rule = rule_from_dict(context["disclosure"])
    outcomes = {o["name"]: o for o in context["outcomes"]}
    figures = []
    for analysis in results.analyses:
        if analysis.method in ("its", "controlled_its") and analysis.series:
            outcome = outcomes.get(analysis.outcome, {})
            per = outcome.get("per")
            label = outcome.get("label", analysis.outcome)
            y_label = f"{label} per {per:,.0f}" if analysis.settings.get("exposure") and per else label
            figures.append({
                "title": f"{label.capitalize()}: observed and without the intervention",
                "caption": (f"{analysis.label}. Dots: observed{' (from rounded counts)' if rule.enabled else ''}; "
                            "blue line: model; red dashed line: what the model projects without the intervention, "
                            "with its likely range shaded."),
                "svg": Markup(its_figure(analysis.series, _published_observed(analysis.series, rule), y_label,
                                         f"{label}: observed and counterfactual")),
            })
    table = context.get("summary_counts", [])
    rows = [[r["group"], r["units"], r["before"], r["after"]] for r in table]
    if rows:
        total = ["all", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows)]
        controlled = control_table(rows + [total], [2, 3], rule, total_row=len(rows))
    else:
        controlled = []
    estimates = [e for e in results.estimates]
    checks = [{"name": c.name, "status": c.status, "detail": c.detail, "method": c.method, "outcome": c.outcome,
               "meaning": CHECK_MEANING.get(c.name, "")} for c in results.checks]
    methods = sorted({a.method for a in results.analyses})
    return {
        "r": results,
        "title": results.design.get("title"),
        "evidence": results.evidence,
        "context": context,
        "figures": figures,
        "summary_rows": controlled,
        "suppressed": SUPPRESSED,
        "disclosure_text": rule.describe(),
        "estimates": estimates,
        "estimand_words": ESTIMAND_WORDS,
        "checks": checks,
        "analyses": results.analyses,
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
