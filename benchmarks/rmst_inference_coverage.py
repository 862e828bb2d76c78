"""Coverage and null rejection of survival_did's RMST-difference intervals with few areas (issue 12).

The data are simulated here, independently of evalkit's generators and diagnosis
simulators: ``G`` areas over 24 months, adoption (all adopting areas at once) in month 13;
each area has its own size (episodes a month Poisson around 40 x a log-normal size with
SD 0.5), its own Weibull scale of hours to found (an area frailty, log SD 0.3), its own
shift of that scale between the two years (log SD ``--trend-sd``, default 0.08: areas'
times to found drift apart, which is what makes area-level inference matter) and a
month-to-month shock on the scale (log SD 0.1). Weibull shape 0.8, median about 8 hours;
the extract is taken 2 days after the last month, so late episodes are censored. In the
adopting areas every episode reported from month 13 on has its hours multiplied by
``E`` (0.8 when an effect is planted).

Truth, per dataset: the weighted average over the adopting areas (weights = their
post-adoption episodes, as the estimator's) of each area's exact effect on the 72-hour
restricted mean, ``sum_m n_am [RMST(72; E s_am) - RMST(72; s_am)] / sum_m n_am`` over its
post months (the RMST of the area's post-period mixture is the count-weighted mean of the
months' RMSTs, and RMST is linear in the survival curve). With no effect the truth is 0.

Each dataset is fitted once by evalkit's survival_did (its default inference) and the
t reference and the bootstrap are computed from the same area changes
(``series.area_rmst``), so the three procedures are compared on identical data.

    OPENBLAS_NUM_THREADS=1 python benchmarks/rmst_inference_coverage.py 500
    python benchmarks/rmst_inference_coverage.py 500 --layouts 4x8 --effects 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import special  # noqa: E402

import evalkit  # noqa: E402
from evalkit.data import AnalysisData  # noqa: E402
from evalkit.methods.survival import survival  # noqa: E402
from evalkit.methods.survival.area_inference import area_bootstrap, area_t  # noqa: E402

SHAPE, MEDIAN, HORIZON, MONTHS, ADOPT = 0.8, 8.0, 72.0, 24, 12
BASE_SCALE = MEDIAN / np.log(2) ** (1 / SHAPE)

DESIGN = """\
evalkit: 1
title: RMST inference coverage
intervention: {name: pilot, start: 2020-01}
data: {source: none.csv, layout: episodes, extracted_at: 2020-12-31,
       columns: {unit: area, reported_at: reported_at, found_at: found_at}}
units: {treated: [PLACEHOLDER]}
outcomes: [{name: time_to_found, measure: duration_hours, horizon: 72}]
analysis: [{method: survival_did, outcome: time_to_found, reps: 999}]
seed: 1
"""


def weibull_rmst(scale: np.ndarray, horizon: float = HORIZON) -> np.ndarray:
    """Integral of exp(-(t / scale)^k) from 0 to horizon (lower incomplete gamma)."""
    x = (horizon / scale) ** SHAPE
    return scale / SHAPE * special.gamma(1 / SHAPE) * special.gammainc(1 / SHAPE, x)


def simulate(rng: np.random.Generator, n_treated: int, n_comparison: int, effect: float, trend_sd: float):
    """Episodes (unit, period, hours, censored, reported_at) and the dataset's truth."""
    periods = pd.period_range("2019-01", periods=MONTHS, freq="M")
    areas = [f"T{i + 1}" for i in range(n_treated)] + [f"C{i + 1}" for i in range(n_comparison)]
    extracted = periods[-1].end_time + pd.Timedelta(days=2)
    frames, truth_num, truth_den = [], 0.0, 0.0
    for a, area in enumerate(areas):
        treated = a < n_treated
        size = 40 * np.exp(0.5 * rng.standard_normal() - 0.125)
        frailty = 0.3 * rng.standard_normal()
        shift = trend_sd * rng.standard_normal()
        counts = rng.poisson(size, MONTHS)
        log_scale = np.log(BASE_SCALE) + frailty + np.where(np.arange(MONTHS) >= ADOPT, shift, 0.0) \
            + 0.1 * rng.standard_normal(MONTHS)
        scale = np.exp(log_scale)
        month = np.repeat(np.arange(MONTHS), counts)
        hours = scale[month] * rng.weibull(SHAPE, month.size)
        after = month >= ADOPT
        if treated:
            hours = np.where(after, hours * effect, hours)
            post = np.arange(ADOPT, MONTHS)
            gain = weibull_rmst(effect * scale[post]) - weibull_rmst(scale[post])
            truth_num += float(np.sum(counts[post] * gain))
            truth_den += float(np.sum(counts[post]))
        starts = periods.start_time.to_numpy()[month]
        reported = starts + (rng.random(month.size) * 28 * 86400).astype("timedelta64[s]")
        open_hours = (np.datetime64(extracted) - reported) / np.timedelta64(1, "h")
        censored = hours > open_hours
        frames.append(pd.DataFrame({"unit": area, "period": periods[month], "reported_at": reported,
                                    "hours_to_found": np.where(censored, open_hours, hours), "censored": censored}))
    episodes = pd.concat(frames, ignore_index=True)
    truth = truth_num / truth_den if effect != 1.0 else 0.0
    adoption = {u: periods[ADOPT] for u in areas[:n_treated]}
    data = AnalysisData(panel=pd.DataFrame({"unit": [], "period": []}), periods=periods, units=areas,
                        adoption=adoption, comparison_units=areas[n_treated:], episodes=episodes,
                        rows=len(episodes))
    return data, truth


def design_for(folder: Path, n_treated: int, seed: int) -> evalkit.Design:
    text = DESIGN.replace("PLACEHOLDER", ", ".join(f"T{i + 1}" for i in range(n_treated))).replace("seed: 1", f"seed: {seed}")
    path = folder / f"design_{n_treated}.yaml"
    path.write_text(text.replace("start: 2020-01", "start: 2020-01"), encoding="utf-8")
    return evalkit.load_design(path)


def run(sims: int, layouts: list[tuple[int, int]], effects: list[float], trend_sd: float, seed: int) -> pd.DataFrame:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_t, n_c in layouts:
            design = design_for(Path(tmp), n_t, seed)
            spec = design.analysis[0]
            for effect in effects:
                started = time.time()
                for sim in range(sims):
                    rng = np.random.default_rng([seed, n_t, n_c, int(effect * 1000), sim])
                    data, truth = simulate(rng, n_t, n_c, effect, trend_sd)
                    fitted = survival.fit(design.model_copy(update={"seed": seed + sim}), data, spec)
                    rmst = next(e for e in fitted.estimates if e.estimand == "rmst_difference_did")
                    areas = [r for r in fitted.analysis.series["area_rmst"] if r["used"]]
                    change = np.array([r["change"] for r in areas])
                    weights = np.array([r["n_post"] for r in areas], dtype=float)
                    treated = np.array([r["group"] == "treated" for r in areas])
                    t = area_t(change, weights, treated, design.alpha)
                    welch = area_t(change, weights, treated, design.alpha, rule="welch")
                    pooled = area_t(change, weights, treated, design.alpha, rule="pooled")
                    if min(treated.sum(), (~treated).sum()) >= 2:
                        _, b_low, b_high, b_p = area_bootstrap(change, weights, treated, design.alpha, 999,
                                                               np.random.default_rng(seed + sim))
                    else:
                        b_low = b_high = b_p = None
                    base = {"layout": f"{n_t} vs {n_c}", "effect": effect, "sim": sim, "truth": truth,
                            "estimate": rmst.estimate}
                    for name, low, high, p in (("randomization (default)", rmst.ci_low, rmst.ci_high,
                                                rmst.details.get("randomization", {}).get("p_value")),
                                               ("t (option: Welch from 3 areas a side, else pooled)", t.low,
                                                t.high, t.p_value),
                                               ("t, Welch always", welch.low, welch.high, welch.p_value),
                                               ("t, pooled always", pooled.low, pooled.high, pooled.p_value),
                                               ("bootstrap", b_low, b_high, b_p)):
                        rows.append({**base, "inference": name, "ci_low": low, "ci_high": high, "p_value": p})
                print(f"{n_t} vs {n_c}, effect {effect}: {sims} datasets in {time.time() - started:.0f} s",
                      file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame) -> str:
    lines = ["| areas (adopting vs comparison) | inference | effect | coverage | rejects the null | "
             "no interval | mean width (hours) |", "|---|---|---|---|---|---|---|"]
    for (layout, inference, effect), g in frame.groupby(["layout", "inference", "effect"], sort=False):
        n = len(g)
        bounded = g["ci_low"].notna() & g["ci_high"].notna()
        cover = ((g["ci_low"] <= g["truth"]) & (g["truth"] <= g["ci_high"]))[bounded]
        reject = (~((g["ci_low"] <= 0) & (0 <= g["ci_high"])))[bounded]

        def rate(hits, total):
            if total == 0:
                return "-"
            p = hits.sum() / total
            return f"{100 * p:.1f}% ± {100 * np.sqrt(p * (1 - p) / total):.1f}"

        width = (g["ci_high"] - g["ci_low"])[bounded].mean() if bounded.any() else float("nan")
        lines.append(f"| {layout} | {inference} | {effect:g} | {rate(cover, bounded.sum())} | "
                     f"{rate(reject, bounded.sum()) if effect == 1 else '-'} | {n - bounded.sum()} of {n} | "
                     f"{width:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sims", type=int, nargs="?", default=500)
    parser.add_argument("--layouts", default="4x8,2x10,1x11", help="adopting x comparison areas, comma-separated")
    parser.add_argument("--effects", default="1,0.8")
    parser.add_argument("--trend-sd", type=float, default=0.08)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--csv", help="write the per-dataset rows here")
    args = parser.parse_args(argv)
    layouts = [tuple(int(x) for x in item.split("x")) for item in args.layouts.split(",")]
    effects = [float(e) for e in args.effects.split(",")]
    frame = run(args.sims, layouts, effects, args.trend_sd, args.seed)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    print(summarise(frame))


if __name__ == "__main__":
    main()
