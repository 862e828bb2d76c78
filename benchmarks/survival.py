"""Benchmark: survival_did on 500,000 episodes (evalkit) against R's coxph and statsmodels' PHReg.

A synthetic extract of 500,000 missing episodes is written to a Parquet file: 43 areas
(12 adopting on four dates from 2021-04, 31 never), reports over 2019-01..2023-12 with a
minute-resolution time to found (lognormal baseline, hazard of being found 1.25 times
higher after adoption, a 1% long-term-missing share, censoring at the extract on
2024-03-31). On it the script times, in one process:

* ``evalkit.run`` of a design with one ``survival_did`` analysis: reading and validating
  the file, the stratified Cox model (Efron ties, area-clustered covariance, the
  Schoenfeld test), Kaplan-Meier descriptives, per-area restricted means and the
  999-replicate area bootstrap;
* the method alone on loaded data, and the Cox fit alone (``evalkit.methods.survival.cox.fit_cox``);
* statsmodels ``PHReg(..., ties="efron", strata=area).fit(groups=area)`` on the first
  ``--phreg-episodes`` episodes only (its Python loops over event times make the full
  extract take minutes);
* R ``coxph(Surv(hours, found) ~ post + treated_post + strata(area), cluster = area)``
  when ``Rscript`` and the survival package are installed (time inside R, after reading).

It checks that evalkit's and R's hazard ratio and robust standard error agree, and prints
median times. Run from the repository root::

    python benchmarks/survival.py [--repeats 3] [--out /tmp/survival-bench]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

N_EPISODES, N_AREAS = 500_000, 43
ADOPTION = {0: "2021-04", 1: "2021-04", 2: "2021-04", 3: "2022-01", 4: "2022-01", 5: "2022-01",
            6: "2022-07", 7: "2022-07", 8: "2022-07", 9: "2023-01", 10: "2023-01", 11: "2023-01"}
SEED = 20240510
EXTRACTED = np.datetime64("2024-04-01T00:00")

DESIGN = """\
evalkit: 1
title: survival_did benchmark (500,000 synthetic episodes)
intervention: {{name: SPOC, mechanism: single_point_of_contact}}
data:
  source: episodes.parquet
  layout: episodes
  columns: {{unit: area, reported_at: reported_at, found_at: found_at}}
  extracted_at: 2024-03-31
  frequency: month
  window: {{start: 2019-01, end: 2023-12}}
units:
  adoption: {{{adoption}}}
outcomes:
  - {{name: time_to_found, measure: duration_hours, horizon: 72}}
analysis:
  - {{method: survival_did, outcome: time_to_found}}
seed: {seed}
"""


def make_extract(out: Path, seed: int = SEED) -> Path:
    """Write episodes.parquet (area, reported_at, found_at) and design.yaml into ``out``."""
    from scipy import special

    rng = np.random.default_rng(seed)
    area = rng.integers(0, N_AREAS, N_EPISODES)
    start, end = np.datetime64("2019-01-01T00:00"), np.datetime64("2024-01-01T00:00")
    minutes = int((end - start) / np.timedelta64(1, "m"))
    reported = start + rng.integers(0, minutes, N_EPISODES).astype("timedelta64[m]")
    adoption = np.array([np.datetime64(ADOPTION.get(a, "2100-01") + "-01T00:00") for a in range(N_AREAS)])
    adopted = reported >= adoption[area]
    log_hazard = rng.normal(0, 0.1, N_AREAS)[area] + np.log(1.25) * adopted
    # S(t) = S0(t) ** h with S0 lognormal(1.96, 1.72 log-hours): T = S0^-1(U ** (1 / h))
    u = rng.random(N_EPISODES) ** np.exp(-log_hazard)
    hours = np.exp(1.96 + 1.72 * special.ndtri(1 - u))
    hours = np.where(rng.random(N_EPISODES) < 0.01, rng.lognormal(np.log(24 * 300), 1.0, N_EPISODES), hours)
    found = reported + np.ceil(np.minimum(hours, 1e8) * 60).astype("timedelta64[m]")
    found = np.where(found >= EXTRACTED, np.datetime64("NaT"), found)
    frame = pd.DataFrame({"area": pd.Series([f"A{a:02d}" for a in range(N_AREAS)]).to_numpy()[area],
                          "reported_at": reported.astype("datetime64[ns]"),
                          "found_at": found.astype("datetime64[ns]")})
    out.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out / "episodes.parquet", index=False)
    adoption_text = ", ".join(f"A{a:02d}: {d}" for a, d in ADOPTION.items())
    (out / "design.yaml").write_text(DESIGN.format(adoption=adoption_text, seed=seed), encoding="utf-8")
    return out / "design.yaml"


def timed(function, repeats: int):
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


R_SCRIPT = """
suppressPackageStartupMessages(library(survival))
d <- read.csv("{csv}")
d$treated_post <- d$treated * d$post
t0 <- proc.time()[["elapsed"]]
fit <- coxph(Surv(hours, found) ~ post + treated_post + strata(unit), data = d, cluster = unit, ties = "efron")
elapsed <- proc.time()[["elapsed"]] - t0
s <- summary(fit)$coefficients
cat(sprintf("%.17g %.17g %.3f\\n", s["treated_post", "exp(coef)"], s["treated_post", "robust se"], elapsed))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--phreg-episodes", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import evalkit
    from evalkit.data import load_data
    from evalkit.methods import get_method
    from evalkit.methods.survival.cox import fit_cox
    from evalkit.methods.survival.survival import survival_frame

    out = args.out or Path(tempfile.mkdtemp(prefix="survival-bench-"))
    design_path = make_extract(out)
    design = evalkit.load_design(design_path)
    run_time, results = timed(lambda: evalkit.run(design), args.repeats)
    data = load_data(design)
    spec = design.analysis[0]
    method_time, _ = timed(lambda: get_method("survival_did")(design, data, spec, 0), args.repeats)
    frame, _ = survival_frame(design, data, spec)
    units = frame["unit"].astype(str).to_numpy()
    X = np.column_stack([frame["post"], frame["treated"] & frame["post"]]).astype(float)
    cox_time, cox = timed(lambda: fit_cox(frame["hours"], frame["found"], X, strata=units, cluster=units,
                                          names=["post", "treated_post"]), args.repeats)
    hr = results.estimate("hazard_ratio_did")
    print(f"episodes in the fit: {len(frame):,} ({int((~frame['found']).sum()):,} censored), "
          f"{frame['hours'].nunique():,} distinct times, {len(set(units))} areas")
    print(f"hazard_ratio_did {hr.estimate:.5f} (robust se {hr.details['robust_se']:.5f}); "
          f"rmst_difference_did {results.estimate('rmst_difference_did').estimate:.3f} h")
    print(f"evalkit.run (read + validate + fit + bootstrap): {run_time:.2f} s")
    print(f"survival_did method on loaded data:             {method_time:.2f} s")
    print(f"fit_cox alone (Efron, 43 strata, clustered):    {cox_time:.2f} s")

    n_sm = min(args.phreg_episodes, len(frame))
    from statsmodels.duration.hazard_regression import PHReg

    sub = slice(0, n_sm)
    sm_time, _ = timed(lambda: PHReg(frame["hours"].to_numpy()[sub], X[sub], status=frame["found"].to_numpy()[sub].astype(float),
                                     strata=units[sub], ties="efron").fit(groups=units[sub]), 1)
    ek_time, _ = timed(lambda: fit_cox(frame["hours"].to_numpy()[sub], frame["found"].to_numpy()[sub], X[sub],
                                       strata=units[sub], cluster=units[sub]), args.repeats)
    print(f"statsmodels PHReg on the first {n_sm:,} episodes: {sm_time:.2f} s (fit_cox on the same: {ek_time:.3f} s)")

    if shutil.which("Rscript"):
        csv = out / "frame.csv"
        pd.DataFrame({"unit": units, "hours": frame["hours"], "found": frame["found"].astype(int),
                      "treated": frame["treated"].astype(int), "post": frame["post"].astype(int)}) \
            .to_csv(csv, index=False, float_format="%.17g")
        script = out / "coxph.R"
        script.write_text(R_SCRIPT.format(csv=csv), encoding="utf-8")
        done = subprocess.run(["Rscript", str(script)], capture_output=True, text=True)
        if done.returncode == 0:
            r_hr, r_se, r_time = (float(x) for x in done.stdout.split())
            assert abs(np.exp(cox.params[1]) - r_hr) < 1e-8 and abs(cox.se(True)[1] / r_se - 1) < 1e-6, "evalkit and R disagree"
            print(f"R coxph (in R, after reading): {r_time:.2f} s; hazard ratio {r_hr:.6f} "
                  f"(evalkit - R: {np.exp(cox.params[1]) - r_hr:.1e}), robust se {r_se:.6f} "
                  f"(relative difference {cox.se(True)[1] / r_se - 1:.1e})")
        else:
            print(f"R coxph failed: {done.stderr.strip()[:200]}")
    else:
        print("R not installed: skipped coxph")
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
