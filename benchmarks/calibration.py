"""Issue 12's calibration table: does every default analysis's 95% interval hold, with 1, 2, 4
and 7 adopting areas?

Runs :func:`evalkit.diagnose` on

- ``spoc``: the shipped example (designs/spoc_rollout.yaml, 7 of 13 areas adopting in three
  cohorts), planted into its own data, every analysis reset to its method's default
  inference (the example declares did's ``inference: randomization`` with 499 permutations
  and staggered_did's ``inference: analytic``: the table is about the defaults);
- ``1``, ``2``, ``4``: designs/calibration_1_area.yaml, calibration_2_areas.yaml,
  calibration_4_areas.yaml, simulated from their ``diagnose:`` blocks (``--model synthetic``;
  12 areas, monthly counts with persistent shocks, Weibull hours to found),

each at no change and a planted fall (``--effect``, default 0.85), and prints a markdown
table: design x analysis x estimand x coverage (Monte Carlo SE) at each effect x rejection of
a true null (Monte Carlo SE) x the diagnosis's calibration verdict where it gives one.

    OPENBLAS_NUM_THREADS=1 python benchmarks/calibration.py 1000 --workers 2       # the docs table
    python benchmarks/calibration.py 200 --designs 1,2,4 --methods survival_did      # one method, cheaper

Each design's simulations are kept in ``OUT/<design>/simulations.parquet`` (default OUT
/tmp/evalkit-calibration): a rerun continues from them, so 1000 after 200 adds 800.
Permutation-based inference is capped at ``--reps`` random permutations a fit (default 99;
a permutation test holds its size at any number of permutations, and a diagnosis of did's
999 would take days); exact enumeration is unaffected.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

DESIGNS = {
    "spoc": ("spoc_rollout.yaml", "data"),
    "1": ("calibration_1_area.yaml", "synthetic"),
    "2": ("calibration_2_areas.yaml", "synthetic"),
    "4": ("calibration_4_areas.yaml", "synthetic"),
}
#: the options that choose an analysis's inference: reset to the method's default for the table
INFERENCE_OPTIONS = ("inference", "se", "errors", "lags", "small_sample", "weights", "reps")


def default_inference(design, methods: list[str] | None = None, reps: int = 99):
    """The design with every analysis at its method's default inference (and only ``methods``).

    ``reps`` caps the random permutations or bootstrap draws a fit takes."""
    analysis = []
    for spec in design.analysis:
        if methods and spec.method not in methods:
            continue
        fields = type(spec).model_fields
        update = {name: fields[name].get_default(call_default_factory=True) for name in INFERENCE_OPTIONS
                  if name in fields and name in spec.model_fields_set}
        if "reps" in fields:
            update["reps"] = min(update.get("reps", spec.reps), max(99, reps))
        analysis.append(spec.model_copy(update=update) if update else spec)
    if not analysis:
        raise SystemExit(f"{design.title}: no analysis of {methods}")
    copy = design.model_copy(update={"analysis": analysis})
    copy._path, copy._sha256 = design._path, design._sha256
    return copy


def diagnose_design(key: str, sims: int, effect: float, workers: int, out: Path, methods, reps: int):
    from evalkit import load_design
    from evalkit.diagnose import diagnose

    name, model = DESIGNS[key]
    design = default_inference(load_design(ROOT / "designs" / name), methods, reps)
    folder = out / (Path(name).stem + ("-" + "-".join(methods) if methods else ""))
    started = time.perf_counter()
    result = diagnose(design, sims=sims, effect=[effect], workers=workers, out=folder, model=model, mde=False,
                      randomization_reps=reps)
    print(f"{name}: {sims} simulations per effect in {time.perf_counter() - started:.0f} s -> {folder}",
          file=sys.stderr, flush=True)
    return design, result


def _rate(pair) -> str:
    if not pair or pair[0] is None:
        return "-"
    value, se = pair
    return f"{100 * value:.1f}% ± {100 * (se or 0):.1f}"


def table_rows(key: str, design, result, effect: float) -> list[str]:
    label = {"spoc": "spoc_rollout (7 of 13, data)", "1": "1 adopting of 12", "2": "2 adopting of 12 (2 cohorts)",
             "4": "4 adopting of 12 (2 cohorts)"}[key]
    rows = []
    for record in result.analyses:
        spec = design.analysis[record["analysis"]]
        inference = record.get("inference") or "default"
        estimands = sorted({k.split("@")[0] for k in record["coverage"]})
        for estimand in estimands:
            cells = {e: result.cell(estimand, e, method=spec.method, outcome=spec.outcome) for e in (1.0, effect)}

            def shown(pair, cell):
                fits = (cell or {}).get("simulations", 0) - (cell or {}).get("failed", 0)
                unbounded = (cell or {}).get("unbounded_intervals", 0)
                if fits and unbounded >= fits:
                    return f"no interval ({unbounded} of {fits})"
                return _rate(pair) + (f" ({unbounded} without an interval, counted as covering)" if unbounded else "")

            null = shown(record["coverage"].get(f"{estimand}@1"), cells[1.0])
            planted = shown(record["coverage"].get(f"{estimand}@{effect:g}"), cells[effect])
            rejects = record["false_positive_rate"].get(estimand)
            verdict = (record.get("calibration") or {}).get(estimand, "-")
            failed = record.get("failed_fits", 0)
            rows.append(f"| {label} | {spec.method} ({inference}) | {estimand} | {null} | {planted} | "
                        f"{_rate(rejects)} | {verdict} | {failed} |")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sims", type=int, nargs="?", default=200)
    parser.add_argument("--designs", default="spoc,1,2,4", help="comma-separated: spoc, 1, 2, 4")
    parser.add_argument("--methods", default="", help="only these methods of each plan (comma-separated)")
    parser.add_argument("--effect", type=float, default=0.85)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--reps", type=int, default=99)
    parser.add_argument("--out", default="/tmp/evalkit-calibration")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m] or None
    lines = [f"{args.sims} simulations per planted effect; planted fall {1 - args.effect:.0%} "
             "(rate ratio on counts; factor on hours to found); ± Monte Carlo SE.", "",
             f"| design | analysis (inference) | estimand | coverage, no change | coverage, {1 - args.effect:.0%} fall | "
             "rejects a true null | calibration | failed fits |", "|---|---|---|---|---|---|---|---|"]
    for key in args.designs.split(","):
        design, result = diagnose_design(key.strip(), args.sims, args.effect, args.workers, Path(args.out), methods,
                                         args.reps)
        lines += table_rows(key.strip(), design, result, args.effect)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
