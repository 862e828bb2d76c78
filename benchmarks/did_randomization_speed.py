"""Seconds per did fit with randomization inference: one ``estimate`` call per assignment
(before) and the array solvers of evalkit/methods/did/fast_ppml.py (after), and whether the
two give the same numbers to the last bit.

    OPENBLAS_NUM_THREADS=1 python benchmarks/did_randomization_speed.py                 # both designs, both paths
    OPENBLAS_NUM_THREADS=1 python benchmarks/did_randomization_speed.py --designs 4 --paths fast

Designs: ``spoc``, designs/spoc_rollout.yaml's did analysis as shipped (Poisson extended
TWFE, three cohorts, 499 random permutations) on its data; ``4``,
designs/calibration_4_areas.yaml's did analysis at its default inference (randomization,
every one of the 2,970 assignments of two cohorts of two among 12 areas) on the first
dataset its diagnosis draws with no change (``--model synthetic``, simulation 0). Prints
one line per design and path: seconds for the whole fit, seconds in the randomization test
and its inversion, the pre-trend check's share, the p-value and interval, and ``same`` when
the fast path's estimate record is byte-identical to the one-at-a-time path's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load(key: str):
    """(design, data, analysis spec, index) of did on design ``key``."""
    from evalkit import load_design

    if key == "spoc":
        from evalkit.data import load_data

        design = load_design(ROOT / "designs" / "spoc_rollout.yaml")
        data = load_data(design)
    else:
        from evalkit.diagnose.model import ModelSimulator

        design = load_design(ROOT / "designs" / f"calibration_{key}_area{'s' if key != '1' else ''}.yaml")
        draw = next(ModelSimulator(design).draws(0, [1.0]))
        design, data = draw.design, draw.data
    index = next(i for i, s in enumerate(design.analysis) if s.method == "did")
    return design, data, design.analysis[index], index


def timed_fit(design, data, spec, index, fast: bool) -> dict:
    import evalkit.methods.did.checks as checks
    import evalkit.methods.did.did as did

    did.FAST_PERMUTATIONS = fast
    spent = {"test": 0.0, "pre_trends": 0.0}
    inner, pre = did._randomization, checks.pre_trend_check

    def timing(name: str, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started
        return timed

    test, pre_trends = timing("test", inner), timing("pre_trends", pre)

    made = []
    init = did.PermutationStatistics.__init__

    def record(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    did._randomization, did.pre_trend_check = test, pre_trends
    did.PermutationStatistics.__init__ = record  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        result = did.fit(design, data, spec, index)
        total = time.perf_counter() - started
    finally:
        did._randomization, did.pre_trend_check = inner, pre
        did.PermutationStatistics.__init__ = init  # type: ignore[method-assign]
    att = result.estimates[0]
    record = json.dumps({"estimate": att.model_dump(mode="json") if hasattr(att, "model_dump") else att.__dict__,
                         "series": result.analysis.series, "checks": [repr(c) for c in result.checks]},
                        sort_keys=True, default=repr)
    return {"seconds": total, **spent, "exact_fits": sum(p.exact_fits for p in made),
            "nulls": max((len(p._fast) for p in made), default=0), "p": att.p_value, "low": att.ci_low, "high": att.ci_high,
            "assignments": att.details["randomization"]["n_assignments"],
            "exhaustive": att.details["randomization"]["exhaustive"], "record": record}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", default="spoc,4", help="comma-separated: spoc, 1, 2, 4")
    parser.add_argument("--paths", default="fast,slow", help="fast, slow or both (comma-separated)")
    args = parser.parse_args(argv)
    for key in args.designs.split(","):
        design, data, spec, index = load(key.strip())
        records = {}
        for path in args.paths.split(","):
            out = timed_fit(design, data, spec, index, fast=path == "fast")
            records[path] = out["record"]
            print(f"{key:>4} {path:<4}: {out['seconds']:7.1f} s a fit (randomization test and inversion "
                  f"{out['test']:.1f} s, pre-trend check {out['pre_trends']:.1f} s); "
                  f"{'all ' if out['exhaustive'] else ''}{out['assignments']} assignments, p = {out['p']:.6g}, "
                  f"interval {out['low']!r} to {out['high']!r}"
                  + (f"; {out['nulls']} nulls as arrays, {out['exact_fits']} entries refitted by estimate"
                     if path == "fast" else ""), flush=True)
        if len(records) == 2:
            same = records["fast"] == records["slow"]
            print(f"{key:>4}: fast and slow records {'byte-identical' if same else 'DIFFER'}", flush=True)


if __name__ == "__main__":
    main()
