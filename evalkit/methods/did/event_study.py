"""The event study that ``did`` hands to the parallel-trends sensitivity (HonestDiD).

One regression of the same family as the headline (PPML with the exposure offset for
counts, least squares otherwise), with area and period effects and one coefficient per
bin of event time for the adopting areas, binned as the pre-trend check bins it
(:func:`evalkit.methods.did.checks.pre_trend_check`): years of event time (periods a year
of the data's frequency), the year before adoption the reference (no coefficient):

* pre-adoption bins: the year 2 before adoption (event times -2P..-P-1), 3, ... up to the
  check's limit (``MAX_PRE_BINS`` and the number of areas less 2); an adopting area's rows
  further back than the oldest bin are left out, as the check leaves them out;
* post-adoption bins: year 1 after adoption (event times 0..P-1), 2, ... up to
  :data:`MAX_POST_BINS`; the phase-in periods (``transition``) are left out, as the
  headline leaves them out, and so are the rows more than :data:`MAX_POST_BINS` years after
  adoption (the record says how many);
* comparison areas: every period; areas adopting later serve as comparisons before their
  own bins begin, as in any TWFE event study.

Covariance: cluster-robust by area, ``c H^-1 (sum_g s_g s_g') H^-1`` for the bins' block,
with the headline's small-sample factor ``c`` (G/(G-1) for Poisson; G/(G-1) (N-1)/(N-K) for
least squares). Checked against pyfixest (fepois / feols with ``i(bin, ref=...)`` and
CRV1 by area) in tests/test_honest_inputs.py.

Target: the post-adoption bins weighted by the headline's share of each: for Poisson the
counterfactual expected counts of the adopting areas' rows in each bin (to first order the
log of the headline's aggregated ratio), for least squares the number of rows.
"""

from __future__ import annotations

import numpy as np

from .bacon import NEVER
from .checks import MAX_PRE_BINS
from .estimate import DiDSample
from .twfe import FixedEffectsDesign, cluster_scores, compact, fit_ols, fit_poisson, separated, structured_solve

#: at most this many post-adoption years: each adds a nuisance parameter to the relative-magnitudes test
MAX_POST_BINS = 5


def event_bins(sample: DiDSample, positions: np.ndarray, per_year: int):
    """(cell code of each row, rows kept, labels oldest first, rows left out after the last post bin) or None.

    Labels are years of event time: -2, -3, ... before adoption (the year before, -1, is the
    reference) and 0, 1, ... after (0 = the first year after adoption).
    """
    adopt = positions[sample.unit]
    treated = adopt != NEVER
    time = sample.time
    pre = treated & (time < adopt)
    years_before = np.where(pre, (adopt - time - 1) // per_year, -1)     # 0: the reference year
    usable = sorted(set(years_before[pre].tolist()))
    tested = [b for b in usable if b > 0][: max(0, min(MAX_PRE_BINS, sample.n_units - 2))]
    if not tested:
        return None
    post = treated & (time >= adopt + sample.transition)
    years_after = np.where(post, (time - adopt) // per_year, -1)
    keep = ~(treated & (time >= adopt) & (time < adopt + sample.transition))   # the phase-in, as the headline
    keep &= ~(pre & (years_before > max(tested)))                               # older than the oldest bin
    beyond = post & (years_after >= MAX_POST_BINS)
    keep &= ~beyond
    post_labels = sorted(set(years_after[post & keep].tolist()))
    if not post_labels:
        return None
    labels = [-1 - b for b in reversed(tested)] + post_labels
    cell = np.full(len(sample.y), -1)
    for k, b in enumerate(reversed(tested)):
        cell[pre & (years_before == b)] = k
    for k, e in enumerate(post_labels):
        cell[post & keep & (years_after == e)] = len(tested) + k
    cell[~keep] = -1
    return cell, keep, labels, int(beyond.sum())


def binned_event_study(sample: DiDSample, positions: np.ndarray, per_year: int) -> dict | None:
    """Fit the binned event study (module docstring); None when it cannot be estimated.

    Returns
    -------
    dict or None
        ``betahat`` (log ratios for Poisson, differences for least squares), ``sigma``
        (their cluster-robust joint covariance), ``labels`` (years of event time),
        ``num_pre``, ``num_post``, ``l_vec``, ``rows_left_out``, ``correction``.
    """
    bins = event_bins(sample, positions, per_year)
    if bins is None:
        return None
    cell, keep, labels, beyond = bins
    n_cells = len(labels)
    full = FixedEffectsDesign(sample.unit, sample.time, cell, sample.n_units, sample.n_times, n_cells)
    poisson = sample.family == "poisson"
    if poisson:
        drop = separated(full.subset(keep), sample.y[keep])
        keep = keep.copy()
        keep[np.flatnonzero(keep)[drop]] = False
    fe, codes = compact(full, keep)
    if fe.n_cells != n_cells or fe.n_units < 3:
        return None
    y = sample.y[keep]
    try:
        if poisson:
            offset = np.log(sample.exposure[keep]) if sample.exposure is not None else None
            fitted = fit_poisson(fe, y, offset)
            if not fitted.converged:
                return None
        else:
            fitted = fit_ols(fe, y)
        s = fe.cell_slice
        weights = fitted.fitted if poisson else np.ones(len(y))
        rows_of_inverse = np.array([structured_solve(fe, weights, e) for e in np.eye(fe.n_params)[s]])
    except np.linalg.LinAlgError:
        return None
    G = fe.n_units
    if poisson:
        correction = G / (G - 1)
    else:
        n_obs, counted = len(y), fe.n_params - fe.n_nested + 1
        correction = G / (G - 1) * (n_obs - 1) / (n_obs - counted)
    half = rows_of_inverse @ cluster_scores(fe, fitted.residuals, fe.unit, G).T
    sigma = correction * (half @ half.T)
    betahat = fitted.params[s]
    num_pre = sum(1 for label in labels if label < 0)
    num_post = n_cells - num_pre
    post_cells = fe.cell - num_pre
    in_post = post_cells >= 0
    if poisson:   # the adopting areas' expected counts without the effect, by post bin
        without = fitted.fitted[in_post] * np.exp(-betahat[fe.cell[in_post]])
        weight = np.bincount(post_cells[in_post], weights=without, minlength=num_post)
    else:
        weight = np.bincount(post_cells[in_post], minlength=num_post).astype(float)
    if not (np.all(np.isfinite(betahat)) and np.all(np.isfinite(sigma)) and weight.sum() > 0):
        return None
    try:
        np.linalg.cholesky(sigma)      # the relative-magnitudes test needs a positive definite covariance
    except np.linalg.LinAlgError:
        return None
    return {"betahat": betahat.tolist(), "sigma": ((sigma + sigma.T) / 2).tolist(), "labels": labels,
            "num_pre": num_pre, "num_post": num_post, "l_vec": (weight / weight.sum()).tolist(),
            "rows_left_out": beyond, "correction": float(correction), "clusters": int(G), "rows": int(len(y))}


def honest_inputs(sample: DiDSample, positions: np.ndarray, per_year: int) -> dict | None:
    """``series["honest_inputs"]`` for evidence.parallel_trends_sensitivity, or None.

    None also when the event study cannot be fitted for a reason the headline survived (a
    singular design, a bin without counts): the sensitivity then falls back to the pre-trend
    check's bins (evalkit.evidence.sensitivity_inputs), and the run goes on.
    """
    try:
        found = binned_event_study(sample, positions, per_year)
    except (ValueError, ZeroDivisionError, np.linalg.LinAlgError):
        return None
    if found is None:
        return None
    poisson = sample.family == "poisson"
    unit = "year" if per_year > 1 else "period"
    pre, post = found["num_pre"], found["num_post"]
    left = (f"; {found['rows_left_out']} adopting area-period(s) more than {MAX_POST_BINS} {unit}s after adoption are left "
            "out" if found["rows_left_out"] else "")
    weights = "expected counts without the effect" if poisson else "area-periods"
    source = (f"did's event study ({'PPML, log ratios' if poisson else 'least squares'} with area and period effects): "
              f"{pre} pre-adoption and {post} post-adoption {unit}s of event time against the {unit} before adoption, "
              f"binned as the pre-trend check bins them, with their cluster-robust joint covariance; target: the "
              f"post-adoption {unit}s weighted by the adopting areas' {weights} in each (the headline's "
              f"aggregation){left}")
    return {"betahat": found["betahat"], "sigma": found["sigma"], "num_pre": pre, "num_post": post,
            "l_vec": found["l_vec"], "target": "att", "event_bins": found["labels"],
            "scale": "log ratio" if poisson else "difference", "cluster_correction_factor": found["correction"],
            "rows_left_out": found["rows_left_out"], "source": source}


__all__ = ["MAX_POST_BINS", "event_bins", "binned_event_study", "honest_inputs"]
