"""Benchmark: staggered_did (evalkit) against diff-diff's CallawaySantAnna and csdid.

A 150-area x 180-month staggered panel (100 areas adopting on 10 dates, 50 never treated;
effects that differ by cohort and grow with time since adoption) is written to a CSV.
On that same CSV the script times, in one process:

* ``evalkit.run`` of a design with one ``staggered_did`` analysis (never-treated
  controls, no covariates, analytic errors): reading and validating the CSV, all
  ATT(g,t), the four aggregations, the event study with its uniform band, the pre-trend
  test and the results records;
* diff-diff ``CallawaySantAnna(estimation_method="dr").fit(..., aggregate="all")`` after
  ``pandas.read_csv``;
* csdid ``ATTgt(...).fit(est_method="dr", bstrap=False)`` plus ``aggte`` of the four
  types after ``pandas.read_csv``;

checks that the simple ATT and the event-study coefficients agree, and prints median
times and ratios. Peer packages are optional: one that is missing or fails is reported,
not fatal.

The budget (issue 16, "Numbers it must reach"): evalkit at least 3x diff-diff's speed
from the same CSV. diff-diff reads the CSV and fits; the like-for-like evalkit row is
"read + validate + fit" (``load_data`` of the design, then the ``staggered_did`` method:
ATT(g,t), aggregations, event study and pre-trend test). ``evalkit.run`` also grades the
evidence (the HonestDiD sensitivity of the pre-trends, evalkit/evidence.py), which no
peer computes: it is timed and reported on its own row, outside the ratio. Rounds are
interleaved, so machine load hits every tool alike; the ratio, not the seconds, is the
number to compare on a busy machine. Run from the repository root::

    pip install diff-diff csdid     # optional peers, in a separate environment if you like
    python benchmarks/staggered.py [--repeats 5] [--out /tmp/staggered-bench]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

N_AREAS, N_MONTHS, N_NEVER, N_COHORTS = 150, 180, 50, 10
SEED = 20240510


def make_panel(path: Path, seed: int = SEED) -> Path:
    """Write the benchmark panel: area, month (YYYY-MM), t (1..180), adoption, first_treat, y."""
    rng = np.random.default_rng(seed)
    months = pd.period_range("2010-01", periods=N_MONTHS, freq="M")
    adoption_t = np.linspace(37, 151, N_COHORTS).round().astype(int)      # 1-based month index
    first_treat = np.concatenate([np.repeat(adoption_t, (N_AREAS - N_NEVER) // N_COHORTS), np.zeros(N_NEVER, int)])
    rng.shuffle(first_treat)
    t = np.arange(1, N_MONTHS + 1)
    area_effect = rng.normal(0, 1, N_AREAS)
    month_effect = 0.002 * t + 0.1 * np.sin(2 * np.pi * t / 12)
    cohort_rank = np.searchsorted(adoption_t, first_treat)                 # heterogeneous by cohort
    since = t[None, :] - first_treat[:, None]
    treated = (first_treat[:, None] > 0) & (since >= 0)
    effect = np.where(treated, -(0.05 + 0.01 * cohort_rank[:, None]) * (1 + np.minimum(since, 24) / 24), 0.0)
    y = area_effect[:, None] + month_effect[None, :] + effect + rng.normal(0, 0.2, (N_AREAS, N_MONTHS))
    frame = pd.DataFrame({
        "area": np.repeat(np.arange(1, N_AREAS + 1), N_MONTHS),
        "month": np.tile(months.astype(str), N_AREAS),
        "t": np.tile(t, N_AREAS),
        "adoption": np.repeat([str(months[g - 1]) if g else "0" for g in first_treat], N_MONTHS),
        "first_treat": np.repeat(first_treat, N_MONTHS),
        "y": y.ravel(),
    })
    frame.to_csv(path, index=False, float_format="%.10g")
    return path


DESIGN = """\
evalkit: 1
title: Staggered-adoption benchmark (150 areas x 180 months)
intervention: {name: Benchmark rollout}
data:
  source: panel.csv
  layout: panel
  columns: {unit: area, time: month}
  frequency: month
units: {adoption_column: adoption}
outcomes:
  - {name: y, column: y, measure: continuous}
analysis:
  - {method: staggered_did, outcome: y, control_group: never_treated}
"""


def run_evalkit(folder: Path):
    import evalkit

    def once():
        return evalkit.run(evalkit.load_design(folder / "design.yaml"))

    return once


def run_evalkit_read_and_fit(folder: Path):
    """What diff-diff does, in evalkit: read and validate the CSV, then the staggered_did fit."""
    import evalkit
    from evalkit.data import load_data
    from evalkit.methods import get_method

    def once():
        design = evalkit.load_design(folder / "design.yaml")
        spec = design.analysis[0]
        return get_method(spec.method)(design, load_data(design), spec, 0)

    return once


def run_evalkit_fit_only(folder: Path):
    """The estimator alone: data loaded once, then ``evalkit.run`` on it (as design diagnosis refits)."""
    import evalkit
    from evalkit.data import load_data

    design = evalkit.load_design(folder / "design.yaml")
    data = load_data(design)

    def once():
        return evalkit.run(design, data)

    return once


def run_diff_diff(csv: Path):
    from diff_diff import CallawaySantAnna

    def once():
        data = pd.read_csv(csv)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return CallawaySantAnna(control_group="never_treated", estimation_method="dr").fit(
                data, outcome="y", unit="area", time="t", first_treat="first_treat", aggregate="all")

    return once


def run_csdid(csv: Path):
    from csdid.att_gt import ATTgt

    def once():
        data = pd.read_csv(csv)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            model = ATTgt(yname="y", tname="t", idname="area", gname="first_treat", data=data,
                          control_group=["nevertreated"])
            model.fit(est_method="dr", bstrap=False)
            out = {}
            for kind in ("simple", "dynamic", "group", "calendar"):
                model.aggte(typec=kind, bstrap=False, cband=False)
                out[kind] = dict(model.atte)
        return out

    return once


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--csdid-repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="folder for the CSV (default: a temporary one)")
    args = parser.parse_args(argv)
    folder = args.out or Path(tempfile.mkdtemp(prefix="staggered-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    csv = make_panel(folder / "panel.csv")
    (folder / "design.yaml").write_text(DESIGN, encoding="utf-8")
    print(f"panel: {N_AREAS} areas x {N_MONTHS} months, {N_AREAS - N_NEVER} treated in {N_COHORTS} cohorts -> {csv}")

    # each tool once per round, rounds interleaved, so that machine load hits all alike
    tools = {"evalkit staggered_did": run_evalkit(folder),
             "evalkit, data already loaded": run_evalkit_fit_only(folder),
             "evalkit read + validate + fit": run_evalkit_read_and_fit(folder)}
    failures = []
    for name, factory in (("diff-diff CallawaySantAnna", run_diff_diff), ("csdid ATTgt + aggte", run_csdid)):
        try:
            tools[name] = factory(csv)
        except ImportError as exc:
            failures.append(f"{name}: not available ({exc})")
    results = {}
    for name, fn in list(tools.items()):                           # warm-up, and the estimates
        try:
            results[name] = fn()
        except Exception as exc:                                   # a peer that fails is reported, not fatal
            if name.startswith("evalkit"):
                raise
            failures.append(f"{name}: failed ({type(exc).__name__}: {exc})")
            del tools[name]
    times = {name: [] for name in tools}
    for round_ in range(args.repeats):
        for name, fn in tools.items():
            if name.startswith("csdid") and round_ >= args.csdid_repeats:
                continue
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    timings = {name: statistics.median(values) for name, values in times.items()}

    ours = results["evalkit staggered_did"]
    simple = ours.estimate("att_simple")
    events = {e.details["event_time"]: e.estimate for e in ours.estimates if e.estimand.startswith("event_")}
    print(f"evalkit: att_simple {simple.estimate:.10f} (se {simple.se:.10f}); "
          f"att_dynamic {ours.estimate('att_dynamic').estimate:.10f}")
    if "diff-diff CallawaySantAnna" in results:
        dd = results["diff-diff CallawaySantAnna"]
        gap = abs(dd.overall_att - simple.estimate)
        se_gap = abs(dd.overall_se - simple.se)
        dd_events = {int(e): v["effect"] for e, v in dd.event_study_effects.items()}
        event_gap = max(abs(dd_events[e] - events[e]) for e in dd_events if e in events)
        print(f"diff-diff: overall_att {dd.overall_att:.10f} (se {dd.overall_se:.10f}); |diff| {gap:.1e} "
              f"(se {se_gap:.1e}), event study max |diff| {event_gap:.1e}")
        assert gap < 1e-8 and se_gap < 1e-6 and event_gap < 1e-8, "diff-diff and evalkit disagree"
    if "csdid ATTgt + aggte" in results:
        cs = results["csdid ATTgt + aggte"]
        gap = abs(cs["simple"]["overall_att"] - simple.estimate)
        se_gap = abs(cs["simple"]["overall_se"] - simple.se)
        cs_events = dict(zip(cs["dynamic"]["egt"], cs["dynamic"]["att_egt"]))
        event_gap = max(abs(v - events[int(e)]) for e, v in cs_events.items())
        agg_gap = max(abs(cs[k]["overall_att"] - ours.estimate(f"att_{k}").estimate) for k in ("dynamic", "group", "calendar"))
        print(f"csdid: simple {cs['simple']['overall_att']:.10f} (se {cs['simple']['overall_se']:.10f}); |diff| {gap:.1e} "
              f"(se {se_gap:.1e}), event study max |diff| {event_gap:.1e}, dynamic/group/calendar max |diff| {agg_gap:.1e}")
        assert gap < 1e-8 and se_gap < 1e-6 and event_gap < 1e-8 and agg_gap < 1e-8, "csdid and evalkit disagree"
    ours_time = timings["evalkit staggered_did"]

    print("\nmedian wall-clock seconds (lower is better):")
    for name, seconds in timings.items():
        print(f"  {name:32s} {seconds:8.3f} s   {seconds / ours_time:6.1f}x evalkit")
    for failure in failures:
        print("  " + failure)
    if "diff-diff CallawaySantAnna" in timings:
        peer = timings["diff-diff CallawaySantAnna"]
        like = timings["evalkit read + validate + fit"]
        print(f"\nbudget (issue 16): evalkit at least 3x diff-diff's speed from the same CSV: read + validate + fit "
              f"{peer / like:.1f}x ({'met' if peer / like >= 3 else 'NOT met'}); the whole evalkit.run, with the "
              f"evidence grading no peer computes, {peer / ours_time:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
