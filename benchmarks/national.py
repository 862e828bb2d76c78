"""Benchmark: the national SPOC example (43 forces, 10 years, about 3.5 million episodes).

The budget (the issue "national scale"): ``evalkit run DIR/design.yaml`` completes its plan
within 30 s and 2 GiB of memory on a 2-core machine. This script

1. writes the example once with ``evalkit example spoc-rollout --scale national --out DIR``
   (timed, outside the budget: the generator simulates every child);
2. runs ``evalkit run DIR/design.yaml --out DIR/out`` in a child process under
   ``/usr/bin/time -v`` (falling back to ``getrusage`` of the child) and prints its wall
   time and peak resident memory: the numbers the budget is about;
3. in a second child process, times each stage of the same run: the data layer's own
   stages (evalkit.data.progress: reading, pseudonymisation, validation, deriving the
   panel, exposure), each analysis of the plan, results and the report.

``--plan issue`` runs a copy of the design whose plan holds the issue's methods (ITS,
staggered DiD, survival DiD), adding any the example's design lacks, over the full
2014-2023 window. Run from the repository root::

    python benchmarks/national.py [--out /tmp/evalkit-national] [--plan as-written|issue] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

BUDGET_SECONDS = 30.0
BUDGET_BYTES = 2 * 1024**3
ISSUE_METHODS = {
    "staggered_did": "  - {method: staggered_did, outcome: reports, control_group: not_yet_treated, inference: analytic}\n",
    "survival_did": "  - {method: survival_did, outcome: time_to_found}\n",
}

STAGES_SCRIPT = r"""
import json, sys, time
import evalkit
from evalkit.data import load_data
from evalkit.data.progress import StageTimes, listening
from evalkit.methods import get_method
from evalkit.pipeline import check_plan, run
from evalkit.report.render import render_html

design = evalkit.load_design(sys.argv[1])
check_plan(design)
stages = []
recorder = StageTimes()
started = time.perf_counter()
with listening(recorder):
    data = load_data(design)
stages.append(["load data (all)", time.perf_counter() - started])
stages += [["  " + name, seconds] for name, seconds in recorder.times]
for index, spec in enumerate(design.analysis):
    began = time.perf_counter()
    get_method(spec.method)(design, data, spec, index)
    stages.append([f"fit {spec.method} ({spec.outcome})", time.perf_counter() - began])
began = time.perf_counter()
results = run(design, data=data)
stages.append(["whole plan again + results (run with loaded data)", time.perf_counter() - began])
began = time.perf_counter()
results.to_json_text()
render_html(results)
stages.append(["results.json + report.html", time.perf_counter() - began])
print(json.dumps({"stages": stages, "episodes": int(len(data.episodes)), "rows": data.rows}))
"""


def child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("EVALKIT_PSEUDONYM_KEY", secrets.token_hex(32))  # a throwaway key for the run
    env["EVALKIT_NO_PROGRESS"] = "1"
    return env


def write_example(out: Path) -> float | None:
    design = out / "design.yaml"
    if design.exists() and (out / "episodes.parquet").exists():
        return None
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "evalkit.cli", "example", "spoc-rollout", "--scale", "national",
                    "--out", str(out)], check=True, env=child_env())
    return time.perf_counter() - started


def issue_plan_design(out: Path) -> Path:
    """A copy of the design whose plan holds ITS, staggered DiD and survival DiD over 2014-2023."""
    text = (out / "design.yaml").read_text(encoding="utf-8")
    text = re.sub(r"window: \{start: \d{4}-\d{2}, end: 2023-12\}", "window: {start: 2014-01, end: 2023-12}", text)
    missing = [line for method, line in ISSUE_METHODS.items() if f"method: {method}" not in text]
    if missing:
        text = text.replace("\nalpha:", "\n" + "".join(missing).rstrip("\n") + "\nalpha:", 1)
    path = out / "design_issue_plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def measure_run(design: Path, out: Path) -> dict:
    """Wall time and peak RSS of ``evalkit run`` in a child process."""
    command = [sys.executable, "-m", "evalkit.cli", "run", str(design), "--out", str(out / "out")]
    timer = shutil.which("time") and Path("/usr/bin/time").exists()
    if timer:
        command = ["/usr/bin/time", "-v"] + command
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, env=child_env())
    wall = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"evalkit run failed:\n{run.stdout}\n{run.stderr[-3000:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    source = "getrusage"
    if timer:
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
        elapsed = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", run.stderr)
        if match:
            peak_kib, source = int(match.group(1)), "/usr/bin/time -v"
        if elapsed:
            parts = [float(p) for p in elapsed.group(1).split(":")]
            wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    elif peak_kib <= before:
        peak_kib = before
    return {"wall_seconds": wall, "peak_bytes": peak_kib * 1024, "memory_source": source,
            "headline": run.stdout.strip().splitlines()[0] if run.stdout.strip() else ""}


def measure_stages(design: Path) -> dict:
    run = subprocess.run([sys.executable, "-c", STAGES_SCRIPT, str(design)], capture_output=True, text=True,
                         env=child_env())
    if run.returncode != 0:
        sys.exit(f"stage timing failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cores} cores available, load average {load:.1f} at start, Python {sys.version.split()[0]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/evalkit-national"))
    parser.add_argument("--plan", choices=["as-written", "issue"], default="as-written")
    parser.add_argument("--repeats", type=int, default=1, help="Timed runs of evalkit run (the best is reported).")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    generated = write_example(out)
    if generated is not None:
        print(f"evalkit example spoc-rollout --scale national: {generated:.1f} s (outside the budget)")
    design = out / "design.yaml" if args.plan == "as-written" else issue_plan_design(out)
    plan = re.findall(r"method: (\w+)", design.read_text(encoding="utf-8"))
    print(f"design: {design} (plan: {', '.join(plan)})")
    absent = [m for m in ISSUE_METHODS if m not in plan]
    if absent:
        print(f"note: the plan lacks {', '.join(absent)}; --plan issue adds them")
    runs = [measure_run(design, out) for _ in range(max(1, args.repeats))]
    best = min(runs, key=lambda r: r["wall_seconds"])
    peak = max(r["peak_bytes"] for r in runs)
    print(f"evalkit run: wall {best['wall_seconds']:.1f} s (best of {len(runs)}), "
          f"peak memory {peak / 1024**2:,.0f} MiB ({best['memory_source']})")
    within = best["wall_seconds"] <= BUDGET_SECONDS and peak <= BUDGET_BYTES
    print(f"budget 30 s and 2 GiB: {'met' if within else 'NOT met'}")
    stages = measure_stages(design)
    print(f"stages ({stages['rows']:,} rows read, {stages['episodes']:,} episodes in the window):")
    for name, seconds in stages["stages"]:
        print(f"  {seconds:7.2f} s  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
