"""The run: design -> data -> every analysis in the plan -> Results. Writes nothing."""

from __future__ import annotations

import platform
from importlib import metadata

from . import __version__
from .data import AnalysisData, load_data
from .design import Design
from .errors import EvalkitError
from .evidence import assess
from .methods import REGISTRY, get_method
from .report.disclosure import rule_from_design
from .results import Results

MECHANISM_WORDS = {
    "information_sharing": "joint data-sharing protocols, so each agency knows what the other knows about a missing child",
    "cross_agency_technology": "shared technology (for example read-only access to each other's systems)",
    "single_point_of_contact": "a single point of contact between the police and children's social care",
    "multiagency_meetings": "regular multi-agency meetings about children who go missing",
    "shared_terminology": "shared terms and definitions across agencies",
    "roles_responsibilities": "clear roles and responsibilities for each agency",
    "joint_training": "joint training of police and social-care staff",
    "other": "a mechanism not among the scoping review's seven",
}

PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "pydantic", "jinja2", "matplotlib")


def check_plan(design: Design) -> None:
    """Refuse a plan naming a method this version does not implement."""
    for i, spec in enumerate(design.analysis):
        if spec.method not in REGISTRY:
            raise EvalkitError(design.where, f"method '{spec.method}' is not available in this version of evalkit",
                               "remove it from the plan; available: " + ", ".join(REGISTRY), key=f"analysis[{i}].method")


def run(design: Design, data: AnalysisData | None = None, command: str | None = None) -> Results:
    """Fit every analysis in the design's plan.

    Parameters
    ----------
    design : Design
        From :func:`evalkit.load_design`.
    data : AnalysisData, optional
        Already loaded data (loaded from the design when omitted).
    command : str, optional
        The command line that asked for the run, for the reproducibility footer.
    """
    check_plan(design)
    if data is None:
        data = load_data(design)
    estimates, checks, analyses = [], [], []
    for index, spec in enumerate(design.analysis):
        result = get_method(spec.method)(design, data, spec, index)
        estimates += result.estimates
        checks += result.checks
        if result.analysis is not None:
            analyses.append(result.analysis)
    labels = {o.name: outcome_label(o) for o in design.outcomes}
    evidence = assess(estimates, checks, analyses, design.primary.name, design.intervention.name, labels)
    return Results(
        evalkit_version=__version__,
        design={"path": str(design.path) if design.path else None, "title": design.title, "sha256": design.sha256},
        data=data_record(data),
        estimates=estimates,
        checks=checks,
        analyses=analyses,
        evidence=evidence,
        context=context_record(design, data, labels, command),
    )


def outcome_label(outcome) -> str:
    words = {"reports": "missing reports", "persons": "children reported missing",
             "repeat_reports": "repeat missing reports"}
    if outcome.measure == "count":
        return words.get(outcome.derive or outcome.name, outcome.name.replace("_", " "))
    return outcome.name.replace("_", " ")


def data_record(data: AnalysisData) -> dict:
    return {
        "sha256": data.sha256,
        "rows": data.rows,
        "units": len(data.units),
        "periods": [str(data.periods[0]), str(data.periods[-1])],
        "censored": data.censored,
    }


def summary_counts(design: Design, data: AnalysisData) -> list[dict]:
    """Reports per group and period side (before / after adoption), for the report's data table."""
    rows = []
    count_outcomes = [o for o in design.outcomes if o.measure == "count"]
    if not count_outcomes:
        return rows
    name = count_outcomes[0].name
    panel = data.panel
    for group, units in (("treated", data.treated_units), ("comparison", data.comparison_units)):
        if not units:
            continue
        part = panel[panel["unit"].isin(units)]
        if group == "treated":
            adopted = part["unit"].map(data.adoption)
            after = part["period"] >= adopted
        else:
            first = min(data.adoption.values())
            after = part["period"] >= first
        rows.append({"group": group, "units": len(units), "outcome": name,
                     "before": float(part.loc[~after, name].sum()), "after": float(part.loc[after, name].sum())})
    return rows


def context_record(design: Design, data: AnalysisData, labels: dict, command: str | None) -> dict:
    rule = rule_from_design(design.report.disclosure)
    versions = {"python": platform.python_version(), "evalkit": __version__}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    intervention = design.intervention
    return {
        "intervention": {
            "name": intervention.name, "mechanism": intervention.mechanism,
            "mechanism_words": MECHANISM_WORDS[intervention.mechanism],
            "description": intervention.description,
            "start": str(design.period(intervention.start, "intervention.start")) if intervention.start is not None else None,
            "transition": intervention.transition, "annual_cost": intervention.annual_cost,
        },
        "frequency": design.data.frequency,
        "layout": design.data.layout,
        "adoption": {str(u): str(p) for u, p in sorted(data.adoption.items(), key=lambda kv: (str(kv[1]), str(kv[0])))},
        "comparison_units": len(data.comparison_units),
        "outcomes": [{"name": o.name, "measure": o.measure, "per": o.per, "label": labels[o.name]} for o in design.outcomes],
        "primary_outcome": design.primary.name,
        "alpha": design.alpha,
        "seed": design.seed,
        "audience": design.report.audience,
        "disclosure": {"min_count": rule.min_count, "round_to": rule.round_to, "enabled": rule.enabled,
                       "preset": design.report.disclosure.preset},
        "summary_counts": summary_counts(design, data),
        "versions": versions,
        "command": command,
    }
