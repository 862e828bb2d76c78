"""The event study that ``staggered_did`` hands to the parallel-trends sensitivity (HonestDiD).

Rambachan & Roth's relative-magnitudes bound (evalkit.inference.honest) needs one event
study: pre-period coefficients and post-period coefficients against ONE reference period,
with their joint covariance. This module builds it from the group-time effects with a
universal base period, binned in event time with the pre-trend check's bin width
(:func:`evalkit.methods.staggered.pretrend.bin_width`; the check itself pools at most two
pre-adoption bins, the last open-ended, where this keeps up to three whole ones): bins of ``width``
periods (a year of periods, or per period on yearly data; halves of the longest
pre-period when no cohort has two years before adoption), event time counted from the
(anticipated) adoption ``g - anticipation``:

* the reference bin is the ``width`` periods before adoption (the year before adoption on
  monthly data, the period before on yearly data, as HonestDiD recommends);
* each pre-period bin b = -2, -3, ... (at most :data:`MAX_PRE_BINS`) and each post-period
  bin b = 0, 1, ... (the first year after adoption, the second, ...; at most
  :data:`MAX_POST_BINS`) is the cohort-share-weighted average, over the ATT(g,t) cells whose
  event time falls in the bin, of ``ATT(g,t) - R_g``, with ``R_g`` the mean of cohort g's
  cells in the reference bin. With a universal base (every cell compares period t with
  g - anticipation - 1) ``ATT(g,t) - R_g`` is the cohort's difference in the change of the
  outcome from its reference bin to t. On yearly data ``R_g`` is the reference cell, 0.
* a cohort enters a pre-period bin only with every period of the bin in the window; post
  bins hold every post-adoption cell that enters the headline (the phase-in excluded), so
  the last one may be partial.

Why universal: ATT(g,t) with R did's default ``base_period = "varying"`` compares a
pre-period t with t - 1 (one-period changes), while post-period cells compare t with
g - 1; those pre-period coefficients are not on the post-period coefficients' footing, and
the relative-magnitudes restriction (which bounds the period-to-period changes of one
path relative to one reference) would read them wrongly. HonestDiD's own staggered
example therefore re-runs ``att_gt(base_period = "universal")``; so do we, whatever the
analysis's ``base_period`` (the post-period cells are the same under both).

Influence functions: each bin's influence function is the share-weighted average of the
cells' influence functions (``IF(g,t) - IF(R_g)``) plus the estimated-share term, as R
did's ``aggte`` computes it (:func:`evalkit.methods.staggered.aggte.grouped_average`), so
the joint covariance ``IF' IF / n^2`` gives each bin the analytic standard error the event
study's own standard errors use.

Target: weights ``l`` on the post bins proportional to the share-weighted number of cells in
each, so that ``l' beta`` is ``att_simple`` (the headline) measured from the reference bin:
exactly att_simple on yearly data, att_simple minus the cohorts' reference-year level on
monthly data. Post-adoption cells beyond :data:`MAX_POST_BINS` bins are left out (the
record says how many), and then the target is the average over the first bins only.
"""

from __future__ import annotations

import numpy as np

from .aggte import Plan, grouped_average
from .att_gt import GroupTime
from .pretrend import bin_width

#: at most this many pre-period bins before the reference (years 2..4 before adoption); did's pre-trend check's limit
MAX_PRE_BINS = 3
#: at most this many post-period bins (years 1..5 after adoption): each adds a nuisance parameter to the ARP test
MAX_POST_BINS = 5


def binned_event_study(gt: GroupTime, plan: Plan, width: int, anticipation: int) -> dict | None:
    """Binned universal-base event study with its joint covariance (module docstring), or None.

    Parameters
    ----------
    gt : GroupTime
        Group-time effects with ``base_period="universal"``.
    plan : Plan
        ``make_plan(gt, transition)``: which post-adoption cells enter the headline.
    width : int
        Periods per bin (:func:`bin_width`).

    Returns
    -------
    dict or None
        ``betahat``, ``sigma`` (the joint covariance), ``num_pre``, ``num_post``, ``l_vec``,
        ``bins`` (event-time label of each coefficient, oldest first), ``cells_left_out``,
        ``influence`` (n, num_pre + num_post); None without a reference bin or without a
        pre-period and a post-period bin.
    """
    valid = plan.valid
    rel = gt.period - (gt.cohort - anticipation)             # event time from the (anticipated) adoption
    b = np.floor_divide(rel, width)
    n_cohorts = gt.cohorts.size
    cohort = gt.cohort_index
    # R_g: the mean of each cohort's reference-bin cells, all of them estimated and inside the window
    in_ref = (b == -1) & valid
    ref_count = np.bincount(cohort[in_ref], minlength=n_cohorts)
    has_ref = ref_count == width
    if not has_ref.any():
        return None
    ref_cells = np.flatnonzero(in_ref)
    ref_value = np.bincount(cohort[ref_cells], weights=gt.att[ref_cells], minlength=n_cohorts) / np.maximum(ref_count, 1)
    ref_influence = np.zeros((gt.n, n_cohorts))
    np.add.at(ref_influence.T, cohort[ref_cells], gt.influence[:, ref_cells].T)
    ref_influence /= np.maximum(ref_count, 1)[None, :]
    # pre bins: complete (every period of the bin estimated) for a cohort with a reference
    component = np.full(gt.att.size, -1)
    pre_labels = []
    for k in range(MAX_PRE_BINS):
        label = -2 - k
        here = (b == label) & valid & has_ref[cohort]
        complete = np.bincount(cohort[here], minlength=n_cohorts) == width
        here &= complete[cohort]
        if not here.any():
            break
        pre_labels.append((label, here))
    post = plan.post & has_ref[cohort] & (b >= 0)
    post_labels = []
    for label in range(MAX_POST_BINS):
        here = post & (b == label)
        if not here.any():
            break
        post_labels.append((label, here))
    if not pre_labels or not post_labels:
        return None
    ordered = list(reversed(pre_labels)) + post_labels        # oldest first
    for j, (_, here) in enumerate(ordered):
        component[here] = j
    theta = gt.att - ref_value[cohort]
    influence = gt.influence - ref_influence[:, cohort]
    values, agg_influence = grouped_average(plan, component, len(ordered), theta, influence)
    n = gt.n
    sigma = agg_influence.T @ agg_influence / n ** 2
    num_pre, num_post = len(pre_labels), len(post_labels)
    # l: each post bin's share-weighted number of cells, so that l' beta is att_simple from the reference bin
    weight = np.array([float(plan.share[here].sum()) for _, here in post_labels])
    in_bins = np.zeros(gt.att.size, dtype=bool)
    for _, here in post_labels:
        in_bins |= here
    left_out = int(np.sum(plan.post & ~in_bins))
    # two reasons a post-adoption cell is out: too late for the bins kept, or its cohort has no
    # complete reference bin (adopted within a bin's width of the panel's start)
    no_reference = plan.post & ~has_ref[cohort]
    return {"betahat": values.tolist(), "sigma": ((sigma + sigma.T) / 2).tolist(), "num_pre": num_pre,
            "num_post": num_post, "l_vec": (weight / weight.sum()).tolist(),
            "bins": [int(label) for label, _ in ordered], "cells_left_out": left_out,
            "cells_beyond_bins": int(np.sum(plan.post & has_ref[cohort] & ~in_bins)),
            "cohorts_without_reference": int(np.unique(cohort[no_reference]).size), "influence": agg_influence}


__all__ = ["MAX_PRE_BINS", "MAX_POST_BINS", "bin_width", "binned_event_study"]
