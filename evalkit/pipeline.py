"""The run: design -> data -> every analysis in the plan -> Results. Writes nothing."""

from __future__ import annotations

from .version import __version__
from .data import AnalysisData, load_data
from .data.progress import stage
from .design import Design
from .errors import EvalkitError
from .evidence import assess, economics, subgroup_differences
from .methods import REGISTRY, get_method
from .methods.moderators import fit_moderators
from .record import context_record, data_record, outcome_label
from .results import Results


def check_plan(design: Design) -> None:
    """Refuse a plan naming a method this version does not implement."""
    for i, spec in enumerate(design.analysis):
        if spec.method not in REGISTRY:
            raise EvalkitError(design.where, f"method '{spec.method}' is not available in this version of evalkit",
                               "remove it from the plan; available: " + ", ".join(REGISTRY), key=f"analysis[{i}].method")


def run(design: Design, data=None, command: str | None = None) -> Results:
    """Fit every analysis in the design's plan.

    Parameters
    ----------
    design : Design
        From :func:`evalkit.load_design` or :func:`evalkit.design_from_dict`.
    data : pandas.DataFrame or AnalysisData, optional
        The data in the design's layout as a DataFrame (one row per episode, or per unit
        and period, with the columns ``data.columns`` names), read exactly as the same rows
        in a file would be; or already loaded data. Default: read ``data.source``.
    command : str, optional
        The command line that asked for the run, for the reproducibility footer.
    """
    # one BLAS thread: a multi-threaded BLAS sums in an order that depends on the thread count,
    # which changes the last bits of results; the same inputs must give the same bytes anywhere
    with single_threaded_blas():
        return _run(design, data, command)


def single_threaded_blas():
    """A context in which numpy's BLAS and OpenMP pools use one thread (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _run(design: Design, data, command: str | None) -> Results:
    check_plan(design)
    if data is None or not isinstance(data, AnalysisData):
        data = load_data(design, frame=data)
    estimates, checks, analyses = [], list(getattr(data, "checks", [])), []
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
        estimates += moderator_estimates + subgroup_differences(moderator_estimates, design.alpha)
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
