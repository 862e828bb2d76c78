"""Coverage and size of its and controlled_its 95% intervals on short monthly count series.

The data-generating process is written here with numpy only (not evalkit's generator):

- ``its``: one series of monthly counts, ``y_t ~ Poisson(mu_t)``,
  ``log mu_t = log(pop) + log(rate) + trend t + 0.15 sin(2 pi m_t / 12) + 0.05 cos(2 pi m_t / 12)
  + log(RR) post_t + u_t`` with ``u_t`` log-rate noise (sd 0.06, marginal): independent, or
  AR(1) with rho 0.5. About 250 events a month, so the noise makes the counts over-dispersed
  (quasi-Poisson). 48 + 36 months, or 24 + 12.
- ``controlled_its``: 3 adopting and 5 comparison areas, each its own population and
  rate (log rate spread sd 0.05 around a common one), a common trend and season, each area
  its own log-rate noise (sd 0.06; independent or AR(1) rho 0.5); the adopting areas'
  rate changes by RR at the interruption.

The analysis is evalkit's (``its`` / ``controlled_its``, quasi-Poisson, two harmonics,
slope change, ``errors: newey_west``, ``lags: auto``) with the options given on the command
line; the planted effect is a level change with no slope change, so the true level change,
cumulative effect and effect at any horizon are all RR, and the true slope change is 1.
Every figure is printed with its Monte Carlo standard error sqrt(p (1 - p) / sims).

Run::

    OPENBLAS_NUM_THREADS=1 python benchmarks/its_coverage.py SETTING [sims] [seed] [key=value ...]

``python benchmarks/its_coverage.py plan [out.jsonl]`` runs every figure of docs/methods/its.md
(PLAN) at the current default and appends one JSON line per setting to
benchmarks/its_coverage_results_fixed_b_ar1.jsonl (resumable).

SETTING is one of its_iid, its_ar1, its_iid_short, its_ar1_short, cits_iid, cits_ar1,
cits_iid_short, cits_ar1_short; key=value pairs override the analysis options (for example
``small_sample=none`` for the uncorrected Newey-West of evalkit before issue 12, or
``small_sample=fixed_b`` for the fixed-b reference with independent errors, the default
until the AR(1) reference). benchmarks/its_coverage_results.jsonl holds the figures made
when ``fixed_b`` was the default (its records name the reference in ``procedure``);
benchmarks/its_coverage_results_fixed_b_ar1.jsonl those of the ``fixed_b_ar1`` default.
``python benchmarks/its_coverage.py table FILE [FILE ...]`` prints them together.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import yaml

RR = 0.85
SD = 0.06

SETTINGS = {
    "its_iid": {"method": "its", "pre": 48, "post": 36, "rho": 0.0},
    "its_ar1": {"method": "its", "pre": 48, "post": 36, "rho": 0.5},
    "its_iid_short": {"method": "its", "pre": 24, "post": 12, "rho": 0.0},
    "its_ar1_short": {"method": "its", "pre": 24, "post": 12, "rho": 0.5},
    "cits_iid": {"method": "controlled_its", "pre": 48, "post": 36, "rho": 0.0},
    "cits_ar1": {"method": "controlled_its", "pre": 48, "post": 36, "rho": 0.5},
    "cits_iid_short": {"method": "controlled_its", "pre": 24, "post": 12, "rho": 0.0},
    "cits_ar1_short": {"method": "controlled_its", "pre": 24, "post": 12, "rho": 0.5},
}


def log_rate_noise(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """Gaussian noise with marginal sd SD: independent (rho 0) or stationary AR(1)."""
    u = np.empty(n)
    u[0] = rng.normal(0.0, SD)
    innovation = SD * np.sqrt(1.0 - rho**2)
    for t in range(1, n):
        u[t] = rho * u[t - 1] + rng.normal(0.0, innovation)
    return u


def simulate(rng: np.random.Generator, pre: int, post: int, rho: float, ratio: float, areas: dict) -> pd.DataFrame:
    """Monthly counts for every area: ``areas`` maps an area to True when it adopts."""
    n = pre + post
    t = np.arange(n)
    month = (t % 12) + 1
    season = 0.15 * np.sin(2 * np.pi * month / 12) + 0.05 * np.cos(2 * np.pi * month / 12)
    trend = 0.002 * (t - pre)
    periods = [str(pd.Period("2018-01", freq="M") + i) for i in range(n)]
    rows = []
    for area, adopts in areas.items():
        pop = float(rng.uniform(40_000, 80_000))
        base = np.log(250.0 / 60_000) + (rng.normal(0.0, 0.05) if len(areas) > 1 else 0.0)
        effect = np.log(ratio) * (t >= pre) if adopts else 0.0
        mu = pop * np.exp(base + trend + season + effect + log_rate_noise(rng, n, rho))
        y = rng.poisson(mu)
        rows += [{"area": area, "month": p, "y": int(v), "pop": round(pop)} for p, v in zip(periods, y)]
    return pd.DataFrame(rows)


def design_for(setting: dict, options: dict):
    from evalkit.design import design_from_mapping

    pre = setting["pre"]
    adoption = str(pd.Period("2018-01", freq="M") + pre)
    analysis = {"method": setting["method"], "outcome": "y", "family": "quasipoisson",
                "seasonality": {"harmonics": 2}, "errors": "newey_west", "lags": "auto", **options}
    if setting["method"] == "its":
        analysis["horizons"] = [6]
        units = {"adoption": {"T": adoption}}
    else:
        units = {"adoption": {f"T{i}": adoption for i in range(3)}}
    raw = {"evalkit": 1, "title": "coverage", "intervention": {"name": "X"},
           "data": {"source": "panel.csv", "layout": "panel",
                    "columns": {"unit": "area", "time": "month", "exposure": "pop"}, "frequency": "month"},
           "units": units, "outcomes": [{"name": "y", "column": "y", "measure": "count", "per": 1000}],
           "analysis": [analysis], "seed": 1}
    return design_from_mapping(yaml.safe_load(yaml.safe_dump(raw)), path=None)


TRACKED = {"its": [("level_change", None), ("slope_change", None), ("cumulative_effect", None),
                   ("effect_at_6", None)],
           "controlled_its": [("level_change_difference", None), ("slope_change_difference", None),
                              ("cumulative_effect", "treated")]}


def truth(estimand: str, ratio: float) -> float:
    return 1.0 if estimand.startswith("slope_change") else ratio


def main(setting_name: str, sims: int = 200, seed: int = 2026, options: dict | None = None,
         quiet: bool = False) -> dict:
    from evalkit.data import load_data
    from evalkit.methods.its import controlled_its, its

    setting = SETTINGS[setting_name]
    options = options or {}
    design = design_for(setting, options)
    fit = its.fit if setting["method"] == "its" else controlled_its.fit
    areas = {"T": True} if setting["method"] == "its" else {**{f"T{i}": True for i in range(3)},
                                                             **{f"C{i}": False for i in range(5)}}
    rng = np.random.default_rng(seed)
    tracked = TRACKED[setting["method"]]
    hits = {name: [] for name, _ in tracked}
    null_rejects = {name: [] for name, _ in tracked}
    procedure = None
    start = time.time()
    for _ in range(sims):
        for ratio, store in ((RR, hits), (1.0, null_rejects)):
            frame = simulate(rng, setting["pre"], setting["post"], setting["rho"], ratio, areas)
            result = fit(design, load_data(design, frame), design.analysis[0], 0)
            for name, group in tracked:
                e = next(x for x in result.estimates if x.estimand == name and x.group == group)
                target = truth(name, ratio)
                if store is hits:
                    store[name].append(e.ci_low <= target <= e.ci_high)
                else:
                    store[name].append(e.p_value < 0.05)
                procedure = (e.details.get("se_type"), e.details.get("reference"), e.details.get("lags"))
    out = {"setting": setting_name, "sims": sims, "options": options, "procedure": procedure, "estimands": {}}
    for name, _ in tracked:
        c, r = float(np.mean(hits[name])), float(np.mean(null_rejects[name]))
        out["estimands"][name] = {"coverage": c, "coverage_mc_se": float(np.sqrt(c * (1 - c) / sims)),
                                  "rejects_true_null": r, "rejects_mc_se": float(np.sqrt(r * (1 - r) / sims))}
        if not quiet:
            print(f"{setting_name} {options} {name}: coverage {100 * c:.1f}% (MC SE {100 * np.sqrt(c * (1 - c) / sims):.1f}); "
                  f"rejects a true null {100 * r:.1f}% (MC SE {100 * np.sqrt(r * (1 - r) / sims):.1f})", flush=True)
    if not quiet:
        print(f"  procedure {procedure}; {sims} sims in {time.time() - start:.0f}s", flush=True)
    return out


def _value(text: str):
    try:
        return int(text)
    except ValueError:
        return text


#: the figures in docs/methods/its.md: (setting, sims, options), new default and the pre-issue-12 one. 1,000
#: datasets a setting is the target; these are the sizes a shared 2-core machine allowed (MC SE shown beside each).
PLAN = [("its_ar1", 500, {}), ("its_ar1", 500, {"small_sample": "none"}),
        ("its_iid", 500, {}), ("its_iid", 500, {"small_sample": "none"}),
        ("cits_ar1", 150, {}), ("cits_ar1", 150, {"small_sample": "none"}),
        ("its_ar1_short", 500, {}), ("its_ar1_short", 500, {"small_sample": "none"}),
        ("cits_ar1_short", 150, {}), ("cits_ar1_short", 150, {"small_sample": "none"}),
        ("its_iid_short", 500, {}), ("its_iid_short", 500, {"small_sample": "none"}),
        ("cits_iid", 150, {}), ("cits_iid", 150, {"small_sample": "none"})]


def run_plan(out_path: str, seed: int = 2026) -> None:
    """Run PLAN, appending one JSON line per setting to ``out_path`` (resumable: done lines are kept)."""
    import json
    from pathlib import Path

    path = Path(out_path)
    done = set()
    if path.exists():
        done = {(r["setting"], json.dumps(r["options"], sort_keys=True))
                for r in map(json.loads, path.read_text().splitlines())}
    for setting, sims, options in PLAN:
        if (setting, json.dumps(options, sort_keys=True)) in done:
            continue
        out = main(setting, sims, seed, options)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(out, sort_keys=True) + "\n")


LABELS = {"its_iid": "its, 48 + 36 months, independent", "its_ar1": "its, 48 + 36 months, AR(1) 0.5",
          "its_iid_short": "its, 24 + 12 months, independent", "its_ar1_short": "its, 24 + 12 months, AR(1) 0.5",
          "cits_iid": "controlled_its 3 vs 5 areas, 48 + 36, independent",
          "cits_ar1": "controlled_its 3 vs 5 areas, 48 + 36, AR(1) 0.5",
          "cits_iid_short": "controlled_its 3 vs 5 areas, 24 + 12, independent",
          "cits_ar1_short": "controlled_its 3 vs 5 areas, 24 + 12, AR(1) 0.5"}


def table(*paths: str) -> str:
    """The markdown table of docs/methods/its.md from the results files (the reference column
    is the one the fits recorded: ``fixed_b_ar1``, ``fixed_b``, or ``normal`` for ``none``)."""
    import json
    from pathlib import Path

    def cell(e: dict) -> str:
        return (f"{100 * e['coverage']:.1f} ({100 * e['coverage_mc_se']:.1f}) / "
                f"{100 * e['rejects_true_null']:.1f} ({100 * e['rejects_mc_se']:.1f})")

    lines = ["| setting | small_sample | sims | level change | slope change | cumulative effect |",
             "|---|---|---|---|---|---|"]
    records = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines()]
    for record in records:
        e = record["estimands"]
        level = e.get("level_change") or e["level_change_difference"]
        slope = e.get("slope_change") or e["slope_change_difference"]
        reference = (record.get("procedure") or [None, None])[1]
        which = record["options"].get("small_sample") or {"normal": "none"}.get(reference, reference)
        lines.append(f"| {LABELS[record['setting']]} | {which} | {record['sims']} | {cell(level)} | {cell(slope)} | "
                     f"{cell(e['cumulative_effect'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "table":
        print(table(*(args[1:] or ["benchmarks/its_coverage_results.jsonl",
                                   "benchmarks/its_coverage_results_fixed_b_ar1.jsonl"])))
        sys.exit(0)
    if args and args[0] == "plan":
        run_plan(args[1] if len(args) > 1 else "benchmarks/its_coverage_results_fixed_b_ar1.jsonl")
        sys.exit(0)
    positional = [a for a in args if "=" not in a]
    overrides = dict(a.split("=", 1) for a in args if "=" in a)
    main(positional[0], *(int(a) for a in positional[1:3]), options={k: _value(v) for k, v in overrides.items()})
