"""The run: design -> data -> every analysis in the plan -> Results. Writes nothing."""

from __future__ import annotations

import platform
from importlib import metadata

from . import __version__
from .data import AnalysisData, load_data
from .data.progress import stage
from .design import Design
from .errors import EvalkitError
from .evidence import assess
from .methods import REGISTRY, get_method
from .report.disclosure import rule_from_design
from .results import Check, Results

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
        with stage(f"fit {spec.method} ({spec.outcome})"):
            result = get_method(spec.method)(design, data, spec, index)
        estimates += result.estimates
        checks += result.checks
        if result.analysis is not None:
            analyses.append(result.analysis)
    labels = {o.name: outcome_label(o) for o in design.outcomes}
    concurrent = overlapping_changes(design, data)
    evidence = assess(estimates, checks, analyses, design.primary.name, design.intervention.name, labels,
                      concurrent=concurrent)
    if evidence.get("headline_method") and data.episodes is not None:
        with stage("fit moderators (subgroups)"):
            moderator_estimates, moderator_checks = fit_moderators(design, data, evidence)
        estimates += moderator_estimates
        checks += moderator_checks
    evidence["economics"] = economics(design, estimates, evidence)
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


def overlapping_changes(design: Design, data: AnalysisData) -> list[str]:
    """Declared concurrent changes in force at any time from the first adoption to the data's end."""
    if not data.adoption:
        return []
    first, last = min(data.adoption.values()), data.periods[-1]
    names = []
    for i, change in enumerate(design.context.concurrent_changes):
        start = design.period(change.date, f"context.concurrent_changes[{i}].date")
        end = design.period(change.end, f"context.concurrent_changes[{i}].end") if change.end is not None else last
        if start <= last and end >= first:
            names.append(f"{change.name} ({start})")
    return names


def fit_moderators(design: Design, data: AnalysisData, evidence: dict):
    """Refit the headline analysis within each subgroup the episodes carry (EMMIE's Moderators)."""
    from dataclasses import replace

    from .data.subgroups import subgroup_data, subgroup_masks

    index = next(i for i, spec in enumerate(design.analysis)
                 if spec.method == evidence["headline_method"] and spec.outcome == evidence["headline_outcome"])
    spec = design.analysis[index]
    if design.outcome(spec.outcome).measure != "count":
        return [], []
    if getattr(spec, "inference", "analytic") != "analytic":
        # subgroup estimates are descriptive: analytic intervals, not thousands of refits per subgroup
        spec = spec.model_copy(update={"inference": "analytic"})
    fit = get_method(spec.method)
    estimates, skipped = [], []
    # a count outcome's refit reads only the recounted panel: each subgroup copies just the
    # columns the counts come from, not the whole episode frame (millions of rows nationally)
    counted = [c for c in ("unit", "period", "repeat", "person") if c in data.episodes.columns]
    slim = replace(data, episodes=data.episodes[counted])
    for moderator, level, mask in subgroup_masks(data.episodes):
        try:
            result = fit(design, subgroup_data(slim, design, mask), spec, index)
        except EvalkitError as exc:
            skipped.append(f"{level}: {exc.what}")
            continue
        for estimate in result.estimates:
            if estimate.estimand == evidence["headline_estimand"] and estimate.group in (None, "treated"):
                estimate.group = f"subgroup: {level}"
                estimate.details = {**estimate.details, "moderator": moderator, "subgroup": level,
                                    "episodes": int(mask.sum())}
                estimates.append(estimate)
    checks = []
    if skipped:
        checks.append(Check("moderators", "warn", "some subgroups could not be analysed: " + "; ".join(skipped),
                            method=spec.method, outcome=spec.outcome))
    return estimates, checks


def economics(design: Design, estimates: list, evidence: dict) -> dict | None:
    """Police time saved against the intervention's cost, from the headline's yearly effect."""
    method, outcome = evidence.get("headline_method"), evidence.get("headline_outcome")
    if not method or design.outcome(outcome).measure != "count":
        return None
    headline = next((e for e in estimates if e.method == method and e.outcome == outcome
                     and e.estimand == evidence["headline_estimand"] and not (e.group or "").startswith("subgroup")), None)
    per_year = headline.details.get("per_year") if headline else None
    if per_year is None:
        return None
    cost = design.intervention.cost_per_episode
    saved = -per_year * cost
    record = {"reports_change_per_year": per_year, "cost_per_episode": cost, "police_cost_saved_per_year": saved,
              "annual_cost": design.intervention.annual_cost}
    low, high = headline.details.get("per_year_ci_low"), headline.details.get("per_year_ci_high")
    if low is not None and high is not None:
        record["police_cost_saved_range"] = [-high * cost, -low * cost]
    if design.intervention.annual_cost:
        record["net_saving_per_year"] = saved - design.intervention.annual_cost
    return record


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
