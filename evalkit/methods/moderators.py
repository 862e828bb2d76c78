"""Moderators (EMMIE's "Moderators"): the headline analysis refitted within each subgroup of
episodes (looked-after status, risk grade, age band), on the same units, periods, exposure
and adoption dates (evalkit.data.subgroups)."""

from __future__ import annotations

from ..data import AnalysisData
from ..data.episodes import EpisodeCells
from ..data.sources import release_unused_memory
from ..data.subgroups import subgroup_data, subgroup_masks
from ..design import Design
from ..errors import EvalkitError
from ..results import Check
from . import get_method


def fit_moderators(design: Design, data: AnalysisData, evidence: dict):
    """Refit the headline analysis within each subgroup the episodes carry (EMMIE's Moderators)."""
    if data.episodes is None:  # a panel has no episodes to split into subgroups
        return [], []
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
    # a count outcome's refit reads only the recounted panel: the subgroups' data carry no
    # episode records (millions of rows nationally), only their counts from each episode's
    # cell and person, found once for every subgroup
    cells = EpisodeCells.of(data.episodes, data.units, data.periods)
    release_unused_memory()  # their construction's scratch, else resident through the refits
    for moderator, level, mask in subgroup_masks(data.episodes):
        try:
            result = fit(design, subgroup_data(data, design, mask, cells, keep_episodes=False), spec, index)
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
