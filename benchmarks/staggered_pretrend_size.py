"""Size of staggered_did's pre-trend tests under parallel trends (issue 12).

Data-generating processes independent of evalkit's generator (tests/test_calibration_did.py
holds the first two): a monthly count panel (48 areas, 60 months, 3 cohorts of 3 adopting
at months 36/42/48, 39 never adopting, Poisson counts with area effects, a common seasonal
and calendar effect and an area AR(1) shock) and an mpdta-like yearly panel (500 counties,
2003-2007, cohorts of 20/40/131, 309 never treated, continuous outcome with AR(1) noise).
A third, ``monthly_short``: 48 areas, 20 months, cohorts of 10 adopting at months 8, 9
and 11 (25 pre-period cells, R did's test computable). Cohorts are assigned at random, so parallel trends hold in expectation.

For each data set: the pooled-bin Welch/Hotelling test that now decides
(evalkit.methods.staggered.pretrend), R did's Wald pre-test over all pre-period ATT(g,t) (chi2;
None when V is singular) and the former fallback (yearly bins of the event study, chi2).

Run: OPENBLAS_NUM_THREADS=1 python benchmarks/staggered_pretrend_size.py [datasets] [seed]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalkit.methods.staggered.aggte import aggregate_all, make_plan  # noqa: E402
from evalkit.methods.staggered.att_gt import NEVER, group_time_att  # noqa: E402
from evalkit.methods.staggered.pretrend import pooled_pre_trend_test  # noqa: E402
from evalkit.methods.staggered.staggered import DEGENERATE, _wald  # noqa: E402
from tests.test_calibration_did import monthly_null, yearly_null  # noqa: E402


def old_binned(gt, per_year):
    event = aggregate_all(make_plan(gt), gt.att, gt.influence)["dynamic"]
    labels = event.labels
    pre_e = labels < 0
    bins = (-labels[pre_e] - 1) // per_year
    use = min(int(bins.max()) + 1, max(1, gt.n - 2))
    values = np.array([event.values[pre_e][bins == b].mean() for b in range(use)])
    influence = np.column_stack([event.influence[:, pre_e][:, bins == b].mean(axis=1) for b in range(use)])
    return _wald(values, influence, gt.n)


def run(layout: str, datasets: int, seed: int) -> dict:
    short = lambda rng: monthly_null(rng, units=48, months=20, cohorts=(8, 9, 11), size=10)  # noqa: E731
    simulate, per_year = {"monthly": (monthly_null, 12), "yearly": (yearly_null, 1),
                          "monthly_short": (short, 12)}[layout]
    rng = np.random.default_rng(seed)
    out = {"pooled": [], "pooled_calibrated": [], "r_did": [], "r_did_computable": [], "binned_chi2": []}
    for _ in range(datasets):
        Y, cohort = simulate(rng)
        pooled = pooled_pre_trend_test(Y, cohort, per_year, never=NEVER)
        out["pooled"].append(pooled["p_value"] < 0.05)
        out["pooled_calibrated"].append(pooled["calibrated"])
        gt = group_time_att(Y, cohort)
        pre = np.flatnonzero((gt.period < gt.cohort) & np.isfinite(gt.att) & (gt.se > DEGENERATE * np.std(Y)))
        r = _wald(gt.att[pre], gt.influence[:, pre], gt.n)
        out["r_did_computable"].append(r is not None)
        if r is not None:
            out["r_did"].append(stats.chi2.sf(*r) < 0.05)
        b = old_binned(gt, per_year)
        if b is not None:
            out["binned_chi2"].append(stats.chi2.sf(*b) < 0.05)
    summary = {}
    for name, values in out.items():
        if not values:
            summary[name] = None
            continue
        p = float(np.mean(values))
        summary[name] = {"rate": p, "mc_se": float(np.sqrt(p * (1 - p) / len(values))), "n": len(values)}
    return summary


if __name__ == "__main__":
    datasets = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 2026
    for layout in ("monthly", "yearly", "monthly_short"):
        start = time.time()
        result = run(layout, datasets, seed)
        print(layout, f"({time.time() - start:.0f}s)")
        for name, v in result.items():
            print(f"  {name}: " + ("n/a" if v is None else f"{v['rate']:.3f} (MC SE {v['mc_se']:.3f}, n = {v['n']})"))
