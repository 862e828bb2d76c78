"""Coverage and size of staggered_did's default inference with few adopting areas (issue 12).

An independent data-generating process (written here, not evalkit's generator): monthly
counts over 36 months, Poisson or negative binomial (size 20) with mean
``exp(a_i + l_t + u_it + log(ratio) D_it)``: area effects a_i ~ N(log 30, 0.5), common
period shocks l_t ~ N(0, 0.1) shared by every area, and an area-level AR(1) shock u_it on
the log rate (rho 0.5, innovation sd 0.1) that makes counts over-dispersed and correlated
within an area. The adopting areas are drawn at random; D_it = 1 from their adoption month.
Planted rate ratio 0.85 (coverage) or 1 (size: the test of no effect).

Settings (areas adopting / all areas): 3 cohorts x 3 (months 12, 18, 24) + 6 never = 15;
1 cohort of 2 (month 18) of 12; 2 cohorts of 2 (months 12, 24) of 12.

For every dataset evalkit runs staggered_did once with ``inference: randomization``; its
details also keep the analytic (influence-function, normal) interval and p-value, so the
old default and a t-reference variant (the analytic log-scale interval with the t on
G - 1 degrees of freedom, G the adopting areas) are scored on the same datasets.

Run: OPENBLAS_NUM_THREADS=1 python benchmarks/staggered_coverage.py [sims] [seed] [setting...]
Prints, per setting, estimand and inference, coverage of the planted ratio (effect datasets)
and the rejection rate of the test of no change at 5% (separate datasets with no effect),
each with its Monte Carlo SE sqrt(p (1 - p) / sims). A dataset whose ratio is withheld
(sparse base counts) is not scored, so n can be below sims. Timing: about 1 s per setting
and dataset pair on one core.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from evalkit.data import load_data
from evalkit.design import design_from_mapping
from evalkit.methods import get_method

RATIO = 0.85
PERIODS = 36
SETTINGS = {
    "3x3_of_15": {"areas": 15, "cohorts": [12, 18, 24], "per_cohort": 3},
    "1x2_of_12": {"areas": 12, "cohorts": [18], "per_cohort": 2},
    "2x2_of_12": {"areas": 12, "cohorts": [12, 24], "per_cohort": 2},
}
ESTIMANDS = ("att_simple", "att_calendar")


def month(i: int) -> str:
    return str(pd.Period("2020-01", freq="M") + i)


def simulate(rng: np.random.Generator, setting: dict, ratio: float, family: str) -> tuple[pd.DataFrame, dict]:
    n = setting["areas"]
    order = rng.permutation(n)
    adopt = {}
    k = 0
    for g in setting["cohorts"]:
        for _ in range(setting["per_cohort"]):
            adopt[int(order[k])] = g
            k += 1
    a = rng.normal(np.log(30), 0.5, n)
    shocks = rng.normal(0, 0.1, PERIODS)
    rows = []
    for i in range(n):
        u = rng.normal(0, 0.1 / np.sqrt(1 - 0.25))
        for t in range(PERIODS):
            if t:
                u = 0.5 * u + rng.normal(0, 0.1)
            treated = i in adopt and t >= adopt[i]
            mean = np.exp(a[i] + shocks[t] + u + (np.log(ratio) if treated else 0.0))
            if family == "negbin":   # gamma-Poisson mixture, size 20
                mean = rng.gamma(20.0, mean / 20.0)
            rows.append((f"A{i:02d}", month(t), int(rng.poisson(mean))))
    return pd.DataFrame(rows, columns=["area", "period", "y"]), {f"A{i:02d}": month(g) for i, g in adopt.items()}


def fit(folder: Path, frame: pd.DataFrame, adoption: dict, seed: int):
    frame.to_csv(folder / "panel.csv", index=False)
    raw = {"evalkit": 1, "title": "coverage", "intervention": {"name": "X", "transition": 0},
           "data": {"source": "panel.csv", "layout": "panel", "columns": {"unit": "area", "time": "period"},
                    "frequency": "month"},
           "units": {"adoption": adoption}, "outcomes": [{"name": "y", "column": "y", "measure": "count"}],
           "analysis": [{"method": "staggered_did", "outcome": "y", "inference": "randomization"}], "seed": seed}
    design = design_from_mapping(raw, path=folder / "design.yaml")
    # the method alone (evalkit.run would add the report's sensitivity analyses, not scored here)
    result = get_method("staggered_did")(design, load_data(design), design.analysis[0], 0)
    return {e.estimand: e for e in result.estimates}


def score(results, truth: float, treated: int) -> dict:
    """Per estimand and inference: (interval covers ``truth``, test of ``truth`` rejects at 5%)."""
    out = {}
    t = stats.t.ppf(0.975, treated - 1)
    for name in ESTIMANDS:
        e = results[name]
        d = e.details
        if e.scale != "ratio":           # ratio withheld (sparse base counts): not scored
            continue
        low, high = e.ci_low if e.ci_low is not None else 0.0, e.ci_high if e.ci_high is not None else np.inf
        z = np.log(e.estimate / truth) / e.se
        # the randomization test of the truth: its p-value when the truth is no change, else the inversion
        ri_rejects = (e.p_value < 0.05) if truth == 1.0 else not (low <= truth <= high)
        out[(name, "randomization")] = (low <= truth <= high, ri_rejects)
        analytic = d["ci_low_analytic"] <= truth <= d["ci_high_analytic"]
        out[(name, "analytic")] = (analytic, (d["p_value_analytic"] < 0.05) if truth == 1.0 else not analytic)
        out[(name, f"analytic_t{treated - 1}")] = (abs(z) <= t, abs(z) > t)
    return out


def run(setting: str, sims: int, seed: int, family: str = "poisson") -> list[dict]:
    spec = SETTINGS[setting]
    treated = len(spec["cohorts"]) * spec["per_cohort"]
    rng = np.random.default_rng(seed)
    cover: dict = {}
    reject: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for s in range(sims):
            frame, adoption = simulate(rng, spec, RATIO, family)
            for key, (covers, _) in score(fit(folder, frame, adoption, s), RATIO, treated).items():
                cover.setdefault(key, []).append(covers)
            frame, adoption = simulate(rng, spec, 1.0, family)
            for key, (_, rejects) in score(fit(folder, frame, adoption, s), 1.0, treated).items():
                reject.setdefault(key, []).append(rejects)
    rows = []
    for key in cover:
        c, r = np.mean(cover[key]), np.mean(reject.get(key, [np.nan]))
        rows.append({"setting": setting, "family": family, "estimand": key[0], "inference": key[1],
                     "coverage": c, "coverage_mcse": np.sqrt(c * (1 - c) / len(cover[key])), "n_cover": len(cover[key]),
                     "rejects_null": r, "rejects_mcse": np.sqrt(r * (1 - r) / len(reject[key])),
                     "n_null": len(reject[key])})
    return rows


def main(argv: list[str]) -> None:
    sims = int(argv[0]) if argv else 100
    seed = int(argv[1]) if len(argv) > 1 else 2026
    settings = argv[2:] or list(SETTINGS)
    for setting in settings:
        family = "negbin" if setting.endswith(":negbin") else "poisson"
        setting = setting.split(":")[0]
        start = time.time()
        for row in run(setting, sims, seed, family):
            print(f"{row['setting']:<10} {row['family']:<7} {row['estimand']:<12} {row['inference']:<14} "
                  f"coverage {100 * row['coverage']:5.1f}% (MC SE {100 * row['coverage_mcse']:.1f}, n {row['n_cover']})  "
                  f"rejects true null {100 * row['rejects_null']:5.1f}% (MC SE {100 * row['rejects_mcse']:.1f}, "
                  f"n {row['n_null']})", flush=True)
        print(f"# {setting} {family}: {time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
