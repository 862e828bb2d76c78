"""What results.json records about the run beside the estimates: the data's fingerprint, and the
context the report needs to re-render without the data (intervention, adoption schedule,
outcome labels, the disclosure rule, summary counts, package versions, the command)."""

from __future__ import annotations

import functools
import platform
from collections.abc import Mapping
from types import MappingProxyType
from importlib import metadata

from .data import AnalysisData
from .design import Design
from .mechanisms import as_list, main_mechanism
from .mechanisms import expand as expand_mechanisms
from .mechanisms import words as mechanism_words
from .version import __version__

PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "pydantic", "jinja2", "matplotlib")


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
    rows: list[dict] = []
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


@functools.lru_cache(maxsize=1)
def package_versions() -> Mapping[str, str]:
    """The installed versions of :data:`PACKAGES`, read once per process.

    Reading them scans the installed distributions' metadata (about 14 ms), which a design
    diagnosis or a benchmark that runs hundreds of fits in one process would pay each time;
    they do not change while it runs. Read-only: callers copy it."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return MappingProxyType(versions)


def context_record(design: Design, data: AnalysisData, labels: dict, command: str | None) -> dict:
    min_count, round_to, enabled = design.report.disclosure.resolved()
    versions = {"python": platform.python_version(), "evalkit": __version__, **package_versions()}
    intervention = design.intervention
    return {
        "intervention": {
            "name": intervention.name, "mechanism": main_mechanism(intervention.mechanism),
            "mechanism_words": mechanism_words(intervention.mechanism, intervention.mechanism_description),
            "mechanisms": expand_mechanisms(intervention.mechanism),
            "declared_mechanisms": as_list(intervention.mechanism),
            "mechanism_description": intervention.mechanism_description,
            "description": intervention.description,
            "cost_per_episode": intervention.cost_per_episode,
            "cost_per_episode_source": intervention.cost_per_episode_source,
            "cost_price_year": intervention.cost_price_year,
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
        "disclosure": {"min_count": min_count, "round_to": round_to, "enabled": enabled,
                       "preset": design.report.disclosure.preset},
        "summary_counts": summary_counts(design, data),
        "versions": versions,
        "command": command,
    }
