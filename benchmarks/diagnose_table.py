"""The coverage and false-positive table of docs/diagnosis.md: every analysis of the shipped
example (designs/spoc_rollout.yaml) at its method's default inference, diagnosed by
placebo adoption and planted effects in the example's own data.

    python benchmarks/diagnose_table.py [SIMS] [WORKERS] [OUT_DIR]
    python benchmarks/diagnose_table.py --resummarise [OUT_DIR]   # the table from rows already simulated

The example declares ``inference: randomization`` (499 permutations) for did; this table
uses did's default, analytic cluster-robust inference, which is also the interval did
reports under randomization today (the permutation p-value is not an interval). The run is
resumable: rerun with the same OUT_DIR to continue. Writes OUT_DIR/diagnosis.json,
simulations.parquet, diagnosis.html and, beside this script, diagnosis_spoc.csv (the
machine-readable table that issue 12's calibration starts from).
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main(sims: int = 1000, workers: int = 1, out: str = "/tmp/evalkit-diagnosis-spoc") -> None:
    from evalkit import load_design
    from evalkit.data import load_data
    from evalkit.diagnose import diagnose

    design = load_design(ROOT / "designs" / "spoc_rollout.yaml")
    analysis = [s.model_copy(update={"inference": "analytic"}) if s.method == "did" else s for s in design.analysis]
    design = design.model_copy(update={"analysis": analysis})
    design._path, design._sha256 = ROOT / "designs" / "spoc_rollout.yaml", design.sha256 or "spoc-default-inference"
    data = load_data(design)
    started = time.perf_counter()
    result = diagnose(design, sims=sims, data=data, workers=workers, out=out)
    seconds = time.perf_counter() - started
    write_table(result, HERE / "diagnosis_spoc.csv")
    print(f"{sims} simulations per effect, effects tried {result.settings['effects_tried']}, {seconds:.0f} s")
    print(f"headline MDE: {result.headline}")
    print((HERE / "diagnosis_spoc.csv").read_text())


def resummarise(out: str) -> None:
    """Summarise the simulations already in OUT/simulations.parquet with the current code
    (no new simulation): the table's numbers come from those rows."""
    import pandas as pd

    from evalkit import load_design
    from evalkit.data import load_data
    from evalkit.diagnose.api import _sorted, headline_analysis, summarise, write_outputs
    from evalkit.diagnose.simulate import PlantedSimulator

    design = load_design(ROOT / "designs" / "spoc_rollout.yaml")
    analysis = [s.model_copy(update={"inference": "analytic"}) if s.method == "did" else s for s in design.analysis]
    design = design.model_copy(update={"analysis": analysis})
    design._path, design._sha256 = ROOT / "designs" / "spoc_rollout.yaml", design.sha256 or "spoc-default-inference"
    rows = _sorted(pd.read_parquet(Path(out) / "simulations.parquet"))
    sims = int(rows["sim"].max()) + 1
    tried = sorted(set(rows["effect"].astype(float)), reverse=True)
    complete = [e for e in tried if rows.loc[rows["effect"] == e, "sim"].nunique() == sims]
    rows = rows[rows["effect"].isin(complete)].reset_index(drop=True)
    simulator = PlantedSimulator(design, load_data(design))
    result = summarise(design, simulator, rows, sims, [1.0, 0.85], complete, headline_analysis(design))
    write_outputs(result, Path(out))
    write_table(result, HERE / "diagnosis_spoc.csv")
    print(markdown_table(result))


def markdown_table(result) -> str:
    """The docs/diagnosis.md table: each analysis's scored estimands, ± Monte Carlo SE."""
    lines = ["| analysis (default inference) | estimand | false-positive rate | coverage, no change | "
             "coverage, 15% fall | detects a 15% fall | bias at 15% fall | MDE (80% power) |",
             "|---|---|---|---|---|---|---|---|"]
    inference = {a["analysis"]: a["inference"] for a in result.analyses}
    mde = {(m["analysis"], m["estimand"]): m for m in result.mde}

    def mde_text(m):
        if not m:
            return "-"
        if m.get("mde") is None:
            return f"more than a {100 * (1 - m['strongest_tried']):.0f}% fall" if m.get("strongest_tried") else "-"
        if m.get("status", "").startswith("the weakest"):
            return f"a {100 * (1 - m['mde']):.0f}% fall or less"
        return f"{100 * (1 - m['mde']):.1f}% fall"

    def pm(value, se):
        return "-" if value is None else f"{100 * value:.1f}% ± {100 * se:.1f}"

    for cell in result.cells:
        if cell["effect"] != 1.0 or cell["estimand"] == "(fit)":
            continue
        other = next((c for c in result.cells if c["analysis"] == cell["analysis"] and c["estimand"] == cell["estimand"]
                      and c["effect"] == 0.85), {})
        m = mde.get((cell["analysis"], cell["estimand"]))
        bias = "-" if other.get("bias") is None else f"{other['bias']:+.3f} ± {other['bias_se']:.3f}"
        lines.append(f"| {cell['method']} ({inference.get(cell['analysis'])}) | {cell['estimand']} | "
                     f"{pm(cell.get('false_positive_rate'), cell.get('false_positive_rate_se'))} | "
                     f"{pm(cell.get('coverage'), cell.get('coverage_se'))} | "
                     f"{pm(other.get('coverage'), other.get('coverage_se'))} | {pm(other.get('power'), other.get('power_se'))} | "
                     f"{bias} | {mde_text(m)} |")
    return "\n".join(lines)


def write_table(result, path: Path) -> None:
    """One row per analysis x estimand: false-positive rate and coverage at no effect,
    power, coverage and bias at 0.85, the MDE; each with its Monte Carlo SE."""
    fields = ["method", "outcome", "analysis", "estimand", "inference", "sims", "failed", "false_positive_rate",
              "false_positive_rate_se", "coverage_null", "coverage_null_se", "power_085", "power_085_se",
              "coverage_085", "coverage_085_se", "bias_085", "bias_085_se", "truth_085", "mde_80", "mde_status"]
    inference = {a["analysis"]: a["inference"] for a in result.analyses}
    mde = {(m["analysis"], m["estimand"]): m for m in result.mde}
    rows = []
    for cell in result.cells:
        if cell["effect"] != 1.0 or cell["estimand"] == "(fit)":
            continue
        other = next((c for c in result.cells if c["analysis"] == cell["analysis"] and c["estimand"] == cell["estimand"]
                      and c["effect"] == 0.85), {})
        m = mde.get((cell["analysis"], cell["estimand"]), {})
        rows.append({
            "method": cell["method"], "outcome": cell["outcome"], "analysis": cell["analysis"], "estimand": cell["estimand"],
            "inference": inference.get(cell["analysis"]), "sims": cell["simulations"], "failed": cell["failed"],
            "false_positive_rate": cell.get("false_positive_rate"), "false_positive_rate_se": cell.get("false_positive_rate_se"),
            "coverage_null": cell.get("coverage"), "coverage_null_se": cell.get("coverage_se"),
            "power_085": other.get("power"), "power_085_se": other.get("power_se"),
            "coverage_085": other.get("coverage"), "coverage_085_se": other.get("coverage_se"),
            "bias_085": other.get("bias"), "bias_085_se": other.get("bias_se"), "truth_085": other.get("truth"),
            "mde_80": m.get("mde"), "mde_status": m.get("status"),
        })
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--resummarise":
        resummarise(args[1] if len(args) > 1 else "/tmp/evalkit-diagnosis-spoc")
        sys.exit(0)
    main(int(args[0]) if args else 1000, int(args[1]) if len(args) > 1 else 1,
         args[2] if len(args) > 2 else "/tmp/evalkit-diagnosis-spoc")
