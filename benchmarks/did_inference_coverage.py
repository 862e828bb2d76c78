"""Coverage of did PPML's 95% interval with 3 of 15 areas adopting: analytic vs randomization.

An independent data-generating process (not evalkit's generator): 15 areas, 24 months
(adoption at month 12 in 3 areas drawn at random), monthly counts Poisson with mean
``exp(a_i + l_t + u_it + log(ratio) D_it)``, area effects a_i ~ N(log 40, 0.5), period
effects l_t ~ N(0, 0.1), and an area-level AR(1) shock u_it (rho 0.5, sd 0.1) that makes
the counts over-dispersed and correlated within an area. Planted rate ratio 0.9.

Run: OPENBLAS_NUM_THREADS=1 python benchmarks/did_inference_coverage.py [sims] [seed]
Prints coverage and rejection of the planted ratio (Monte Carlo SE sqrt(p(1-p)/sims)).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import evalkit

RATIO = 0.9
AREAS, PERIODS, ADOPT, TREATED = 15, 24, 12, 3


def month(i: int) -> str:
    return str(pd.Period("2020-01", freq="M") + i)


def simulate(rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    treated = rng.choice(AREAS, TREATED, replace=False)
    a = rng.normal(np.log(40), 0.5, AREAS)
    lt = rng.normal(0, 0.1, PERIODS)
    rows = []
    for i in range(AREAS):
        u = rng.normal(0, 0.1 / np.sqrt(1 - 0.25))
        for t in range(PERIODS):
            u = 0.5 * u + rng.normal(0, 0.1) if t else u
            d = i in treated and t >= ADOPT
            mean = np.exp(a[i] + lt[t] + u + (np.log(RATIO) if d else 0.0))
            rows.append({"area": f"A{i}", "period": month(t), "y": int(rng.poisson(mean))})
    return pd.DataFrame(rows), {f"A{i}": month(ADOPT) for i in treated}


def design_for(folder: Path, frame: pd.DataFrame, adoption: dict, inference: str, reps: int):
    frame.to_csv(folder / "panel.csv", index=False)
    raw = {"evalkit": 1, "title": "coverage", "intervention": {"name": "X"},
           "data": {"source": "panel.csv", "layout": "panel", "columns": {"unit": "area", "time": "period"},
                    "frequency": "month"},
           "units": {"adoption": adoption}, "outcomes": [{"name": "y", "column": "y", "measure": "count"}],
           "analysis": [{"method": "did", "outcome": "y", "inference": inference, "reps": reps}], "seed": 1}
    (folder / "design.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return evalkit.load_design(folder / "design.yaml")


def main(sims: int = 200, seed: int = 2026, reps: int = 199) -> dict:
    from evalkit.data import load_data
    from evalkit.methods.did.did import fit

    rng = np.random.default_rng(seed)
    hits = {"analytic": [], "randomization": []}
    rejects_null = {"analytic": [], "randomization": []}
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(sims):
            frame, adoption = simulate(rng)
            for inference in hits:
                design = design_for(Path(tmp), frame, adoption, inference, reps)
                result = fit(design, load_data(design), design.analysis[0], 0)
                att = result.estimates[0]
                low = att.ci_low if att.ci_low is not None else 0.0
                high = att.ci_high if att.ci_high is not None else np.inf
                hits[inference].append(low <= RATIO <= high)
                rejects_null[inference].append(att.p_value < 0.05)
            if (s + 1) % 10 == 0:
                print(f"{s + 1} sims, {time.time() - start:.0f}s", flush=True)
    out = {}
    for inference, values in hits.items():
        c = float(np.mean(values))
        r = float(np.mean(rejects_null[inference]))
        out[inference] = {"coverage": c, "coverage_mc_se": float(np.sqrt(c * (1 - c) / sims)),
                          "rejects_no_effect": r, "sims": sims}
        print(f"{inference}: coverage {c:.3f} (MC SE {np.sqrt(c * (1 - c) / sims):.3f}); "
              f"rejects ratio 1 (power at {RATIO}) {r:.3f}")
    return out


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
