"""The checks of ``did``: few treated areas, the Goodman-Bacon decomposition, pre-trends.

docs/methods/did.md ("Checks") sets out the rules and why the pre-trend test uses
Hotelling's small-sample reference or randomization.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ...design import Design
from ...inference.randomization import randomization_test
from ...periods import PERIODS_PER_YEAR
from ...results import Check
from .bacon import NEVER, bacon_decomposition
from .estimate import DiDFit, DiDSample
from .twfe import FixedEffectsDesign, cluster_scores, compact, fit_ols, fit_poisson, separated, structured_solve

FEW_TREATED = 6               # warn below this many treated areas (MacKinnon & Webb 2017)
#: inference: auto takes randomization below this many adopting areas: cluster-robust (analytic)
#: intervals covered 80.5% with 3 of 15 (benchmarks/did_inference_coverage.py) and 89.9% with 7 of
#: 13 (docs/diagnosis.md); randomization by test inversion covered 95.0%
AUTO_ANALYTIC_FROM = 20
FORBIDDEN_WEIGHT = 0.10       # Bacon: warn when later-vs-earlier comparisons carry more weight
FORBIDDEN_SIGN_WEIGHT = 0.05  # ... or carry at least this much with the opposite sign
MAX_ENUMERATE = 5000          # randomization: every assignment when there are at most this many


def few_treated_check(spec, n_treated: int, record: dict, alpha: float, common: dict) -> Check:
    values = {"treated_units": n_treated, "threshold": FEW_TREATED, "inference": spec.inference}
    notes = []
    status = "pass"
    if n_treated < FEW_TREATED:
        status = "warn"
        base = (f"only {n_treated} area(s) adopted (fewer than {FEW_TREATED}): cluster-robust standard errors "
                "are too small and tests over-reject")
        if spec.inference == "analytic":
            notes.append(base + "; declare inference: randomization (or wild_cluster for the linear family)")
        elif spec.inference == "wild_cluster" and n_treated <= 2:
            notes.append(base + f"; {spec.inference} was used, but with 1-2 treated areas the wild cluster bootstrap "
                         "is unreliable too (MacKinnon & Webb 2017): prefer inference: randomization")
        else:
            notes.append(base + f"; {spec.inference.replace('_', ' ')} inference was used instead")
    else:
        notes.append(f"{n_treated} areas adopted")
    if record.get("exhaustive") and record.get("smallest_p", 0) > alpha:
        status = "warn"
        notes.append(f"with only {record['n_assignments']} possible assignments the smallest attainable p-value is "
                     f"{record['smallest_p']:.3f}, above alpha = {alpha:g}: the test cannot reject")
        values["smallest_p"] = record["smallest_p"]
    return Check("few_treated", status, "; ".join(notes) + ".", values=values, **common)


def bacon_check(sample: DiDSample, positions: np.ndarray, observed: DiDFit, common: dict):
    if not sample.balanced:
        return Check("bacon_decomposition", "warn", "the TWFE estimate under staggered adoption could not be "
                     "decomposed: the panel has missing values (Goodman-Bacon needs a balanced panel).",
                     values={}, **common), None
    y = np.full((sample.n_units, sample.n_times), np.nan)
    y[sample.unit, sample.time] = sample.y
    decomposition = bacon_decomposition(y, positions)
    summary = decomposition.summary()
    forbidden = summary["later_vs_earlier"]
    estimate = decomposition.twfe
    opposite = forbidden["estimate"] is not None and np.sign(forbidden["estimate"]) != np.sign(estimate)
    warn = forbidden["weight"] > FORBIDDEN_WEIGHT or (opposite and forbidden["weight"] >= FORBIDDEN_SIGN_WEIGHT)
    table = [{**c, "treated": str(sample.periods[c["treated"]]),
              "control": "never" if c["control"] == NEVER else str(sample.periods[c["control"]])}
             for c in decomposition.comparisons]
    note = ""
    if sample.transition:
        note = (f" (decomposed: the TWFE with the {sample.transition} phase-in periods counted as treated, "
                f"{estimate:.4g}; the reported estimate leaves them out)")
    shares = ", ".join(f"{k.replace('_', ' ')} {v['weight']:.0%}" for k, v in summary.items() if v["weight"] > 0)
    if warn:
        detail = (f"later-adopting areas compared with already-treated ones carry {forbidden['weight']:.0%} of the TWFE "
                  f"weight{' with the opposite sign' if opposite else ''} ({shares}){note}: the TWFE estimate is biased "
                  "if effects change over time; use method: staggered_did (Callaway & Sant'Anna) or family: poisson.")
    else:
        detail = (f"Goodman-Bacon decomposition: {shares}{note}; comparisons with already-treated areas carry little "
                  "weight.")
    values = {"twfe": estimate, "summary": summary, "comparisons": table, "weights_sum": float(
        sum(c["weight"] for c in decomposition.comparisons))}
    return Check("bacon_decomposition", "warn" if warn else "pass", detail, values=values, **common), table


MAX_PRE_BINS = 3              # pre-trend test: at most this many earlier years


def pre_trend_check(design: Design, sample: DiDSample, positions: np.ndarray, spec, rng, common: dict) -> Check:
    """Placebo event study before adoption: yearly bins of pre-adoption event time, jointly zero.

    On the pre-adoption rows only (treated areas before adoption, comparison areas up to the
    last adoption), each treated area's rows get an effect per year of event time
    (-1..-P, -P-1..-2P, ...), the year before adoption the reference; at most
    ``MAX_PRE_BINS`` earlier years (and G - 2) are tested. Wald statistic W with the
    cluster-robust covariance. With ``inference: randomization`` its p-value is by
    randomization too (W recomputed for re-assigned adoption dates); otherwise Hotelling's
    small-sample reference ``W (G - q) / ((G - 1) q) ~ F(q, G - q)`` with G areas and q
    bins (chi2(q) over-rejects badly with 10-20 areas: docs/methods/did.md).
    """
    test = _pre_trend_wald(design, sample, positions)
    if test is None:
        return Check("pre_trends", "warn", "too few periods before adoption to test for differing pre-trends, or the "
                     "pre-period covariance is singular.", values={"test": None}, **common)
    wald, q, G, bins = test
    values = {"W": wald, "df": q, "clusters": G, "scale": "ratio" if sample.family == "poisson" else "difference",
              "bins": bins}
    if spec.inference == "randomization":
        def statistic(assignment: dict) -> float:
            result = _pre_trend_wald(design, sample, sample.positions(assignment))
            return np.nan if result is None else result[0]

        adoption = {u: sample.periods[p] for u, p in zip(sample.units, positions) if p != NEVER}
        ri = randomization_test(statistic, sample.units, adoption, rng, reps=spec.reps,
                                max_enumerate=max(MAX_ENUMERATE, spec.reps + 1))
        p = ri.p_value
        how = "randomization p"
        values.update({"test": "pre_adoption_yearly_bins_randomization", "randomization": ri.to_dict()})
    else:
        p = float(stats.f.sf(wald * (G - q) / ((G - 1) * q), q, G - q))
        how = "Hotelling F-test p"
        values["test"] = "pre_adoption_yearly_bins_hotelling"
    values["p_value"] = p
    status = "fail" if p < design.alpha else "pass"
    verdict = ("treated and comparison areas already diverged before adoption, so parallel trends is doubtful"
               if status == "fail" else "no clear difference in trends before adoption")
    return Check("pre_trends", status, f"placebo effects in the {q} year(s) before the year before adoption (the "
                 f"reference), jointly zero: Wald {wald:.2f}, {how} = {p:.3f}; {verdict}.", values=values, **common)


def _pre_trend_wald(design: Design, sample: DiDSample, positions: np.ndarray):
    """W, q, G and the bins of the pre-trend test (None when it cannot be computed)."""
    per_year = PERIODS_PER_YEAR[design.data.frequency]
    adopt = positions[sample.unit]
    treated = adopt != NEVER
    last = int(positions[positions != NEVER].max())
    rows = np.where(treated, sample.time < adopt, sample.time < last)
    event_bin = np.where(treated, (adopt - sample.time - 1) // per_year, -1)
    n_clusters = sample.n_units
    usable = sorted(set(event_bin[rows & treated].tolist()))
    tested = [b for b in usable if b > 0][: max(0, min(MAX_PRE_BINS, n_clusters - 2))]
    if not tested:
        return None
    rows &= ~treated | (event_bin <= max(tested))
    cell = np.full(len(sample.y), -1)
    for k, b in enumerate(tested):
        cell[rows & treated & (event_bin == b)] = k
    full = FixedEffectsDesign(sample.unit, sample.time, cell, sample.n_units, sample.n_times, len(tested))
    keep = rows.copy()
    if sample.family == "poisson":
        drop = separated(full.subset(rows), sample.y[rows])
        keep[np.flatnonzero(rows)[drop]] = False
    fe, codes = compact(full, keep)
    if fe.n_cells != len(tested):
        return None
    y = sample.y[keep]
    if not (keep & ~treated).any():
        return None   # Poisson: the comparison areas have no counts before adoption
    try:
        if sample.family == "poisson":
            offset = np.log(sample.exposure[keep]) if sample.exposure is not None else None
            fitted = fit_poisson(fe, y, offset)
        else:
            fitted = fit_ols(fe, y)
        # the bins' block of the cluster sandwich H^-1 S'S H^-1, from q structured solves
        s = fe.cell_slice
        weights = fitted.fitted if sample.family == "poisson" else np.ones(len(y))
        rows_of_inverse = np.array([structured_solve(fe, weights, unit_vector)
                                    for unit_vector in np.eye(fe.n_params)[s]])
    except np.linalg.LinAlgError:
        return None
    scores = cluster_scores(fe, fitted.residuals, fe.unit, fe.n_units)
    half = rows_of_inverse @ scores.T
    b, V = fitted.params[s], half @ half.T
    try:
        wald = float(b @ np.linalg.solve(V, b))
    except np.linalg.LinAlgError:
        return None
    ratio = sample.family == "poisson"
    bins = [{"years_before": int(tb + 1), "estimate": float(np.exp(v)) if ratio else float(v),
             "se": float(np.sqrt(V[k, k]))} for k, (tb, v) in enumerate(zip(tested, b))]
    return wald, len(b), fe.n_units, bins


__all__ = ["few_treated_check", "bacon_check", "pre_trend_check", "FEW_TREATED", "MAX_ENUMERATE"]
