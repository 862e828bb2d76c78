"""Benchmark: the national SPOC example (43 forces, 10 years, about 3.5 million episodes).

The budget (issue 16, "Numbers it must reach"): ``evalkit run DIR/spoc_rollout.yaml`` completes
its plan within 8 s and 800 MiB of memory on a 2-core machine. Wall time depends on what else
the machine runs; peak memory does not, and neither, much, does CPU time: each run and each
stage prints its CPU seconds (user + system, all threads) beside its wall time, so a run on a
busy machine can still be compared with the budget. This script

1. writes the example once with ``evalkit example spoc-rollout --scale national --out DIR``
   (timed, outside the budget: the generator simulates every child);
   If the data are already there but ``spoc_rollout.yaml`` differs from the design the example
   writes now (``evalkit.examples.spoc_design_text``), the design file is rewritten, so the
   benchmark always runs the national design as written in this checkout;
2. runs ``evalkit run DIR/spoc_rollout.yaml --out DIR/out`` in a child process under
   ``/usr/bin/time -v`` (falling back to ``getrusage`` of the child), ``--repeats`` times,
   and prints each run's wall time, CPU time and peak resident memory: the numbers the
   budget is about;
3. in another child process (``--stage-repeats`` times), times each stage of one run (wall
   and CPU seconds) and its peak resident memory (``/proc/self/status`` VmHWM, reset at each stage start through
   ``/proc/self/clear_refs`` where Linux allows it): the data layer's own stages
   (evalkit.data.progress: reading, pseudonymisation, validation, deriving the panel,
   exposure), each analysis of the plan, the moderator subgroups, results and the report.

``--plan issue`` runs a copy of the design whose plan holds the issue's methods (ITS,
staggered DiD, survival DiD), adding any the design lacks, over the full 2014-2023 window
(the national design as written has exactly that plan now). Run from the repository root::

    python benchmarks/national.py [--out /tmp/evalkit-national] [--plan as-written|issue] [--repeats 3]
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

BUDGET_SECONDS = 8.0
BUDGET_BYTES = 800 * 1024**2
ISSUE_METHODS = {
    "staggered_did": "  - {method: staggered_did, outcome: reports, control_group: not_yet_treated, inference: analytic}\n",
    "survival_did": "  - {method: survival_did, outcome: time_to_found}\n",
}

STAGES_SCRIPT = r"""
import json, sys, time
import evalkit
from evalkit.data import load_data
from evalkit.data.progress import listening
from evalkit.pipeline import check_plan, run
from evalkit.report.render import render_html


def status(field):
    try:
        with open("/proc/self/status") as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class Recorder:
    # each stage's wall time, CPU time and peak resident memory (the peak of a stage includes its sub-stages')
    def __init__(self):
        self.rows, self.open, self.resets = [], [], True

    def start(self, name, total=None):
        peak = status("VmHWM")
        for entry in self.open:
            entry["peak"] = max(entry["peak"] or 0, peak or 0)
        self.resets = reset_peak() and self.resets
        self.open.append({"name": name, "depth": len(self.open), "peak": 0, "row": len(self.rows),
                          "cpu": time.process_time()})
        self.rows.append(None)

    def advance(self, amount=1):
        pass

    def finish(self, name, seconds):
        entry = self.open.pop()
        peak = max(entry["peak"], status("VmHWM") or 0)
        for outer in self.open:
            outer["peak"] = max(outer["peak"], peak)
        self.rows[entry["row"]] = ["  " * entry["depth"] + name, seconds, peak, status("VmRSS"),
                                   time.process_time() - entry["cpu"]]


recorder = Recorder()
design = evalkit.load_design(sys.argv[1])
check_plan(design)


def timed(name, work):
    recorder.start(name)
    began = time.perf_counter()
    value = work()
    recorder.finish(name, time.perf_counter() - began)
    return value


with listening(recorder):
    data = timed("load data (all)", lambda: load_data(design))
    results = timed("the plan: analyses, evidence, moderators (run with loaded data)", lambda: run(design, data=data))
    timed("results.json + report.html", lambda: (results.to_json_text(), render_html(results)))
print(json.dumps({"stages": recorder.rows, "episodes": int(len(data.episodes)), "rows": data.rows,
                  "peak_reset": recorder.resets}))
"""


def child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("EVALKIT_PSEUDONYM_KEY", secrets.token_hex(32))  # a throwaway key for the run
    env["EVALKIT_NO_PROGRESS"] = "1"
    return env


def write_example(out: Path) -> float | None:
    design = out / "spoc_rollout.yaml"
    if design.exists() and (out / "episodes.parquet").exists():
        from evalkit.examples import SPOC_SEED, spoc_design_text

        current = spoc_design_text("", "episodes.parquet", SPOC_SEED, "national")
        if design.read_text(encoding="utf-8") != current:
            design.write_text(current, encoding="utf-8")
            print(f"{design} was written by another version of evalkit: rewritten as the example writes it now")
        return None
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "evalkit.cli", "example", "spoc-rollout", "--scale", "national",
                    "--out", str(out)], check=True, env=child_env())
    return time.perf_counter() - started


def issue_plan_design(out: Path) -> Path:
    """A copy of the design whose plan holds ITS, staggered DiD and survival DiD over 2014-2023."""
    text = (out / "spoc_rollout.yaml").read_text(encoding="utf-8")
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
    before_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = before_usage.ru_maxrss, before_usage.ru_utime + before_usage.ru_stime
    started = time.perf_counter()
    run = subprocess.run(command, check=False, capture_output=True, text=True, env=child_env())
    wall = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"evalkit run failed:\n{run.stdout}\n{run.stderr[-3000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib = usage.ru_maxrss
    cpu = usage.ru_utime + usage.ru_stime - cpu_before  # this child's CPU time (all its threads)
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
    return {"wall_seconds": wall, "cpu_seconds": cpu, "peak_bytes": peak_kib * 1024, "memory_source": source,
            "headline": run.stdout.strip().splitlines()[0] if run.stdout.strip() else ""}


def measure_stages(design: Path) -> dict:
    run = subprocess.run([sys.executable, "-c", STAGES_SCRIPT, str(design)], check=False, capture_output=True, text=True,
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
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs of evalkit run (each is reported).")
    parser.add_argument("--stage-repeats", type=int, default=1, help="Runs of the per-stage timing.")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    generated = write_example(out)
    if generated is not None:
        print(f"evalkit example spoc-rollout --scale national: {generated:.1f} s (outside the budget)")
    design = out / "spoc_rollout.yaml" if args.plan == "as-written" else issue_plan_design(out)
    plan = re.findall(r"method: (\w+)", design.read_text(encoding="utf-8"))
    print(f"design: {design} (plan: {', '.join(plan)})")
    absent = [m for m in ISSUE_METHODS if m not in plan]
    if absent:
        print(f"note: the plan lacks {', '.join(absent)}; --plan issue adds them")
    runs = []
    for i in range(max(1, args.repeats)):
        runs.append(measure_run(design, out))
        print(f"evalkit run {i + 1}: wall {runs[-1]['wall_seconds']:.1f} s, CPU {runs[-1]['cpu_seconds']:.1f} s, "
              f"peak memory {runs[-1]['peak_bytes'] / 1024**2:,.0f} MiB ({runs[-1]['memory_source']}), "
              f"load average {os.getloadavg()[0]:.1f}")
    walls = sorted(r["wall_seconds"] for r in runs)
    cpus = sorted(r["cpu_seconds"] for r in runs)
    peaks = sorted(r["peak_bytes"] / 1024**2 for r in runs)
    print(f"evalkit run, {len(runs)} runs: wall {walls[0]:.1f} to {walls[-1]:.1f} s (best {walls[0]:.1f}), "
          f"CPU {cpus[0]:.1f} to {cpus[-1]:.1f} s, peak memory {peaks[0]:,.0f} to {peaks[-1]:,.0f} MiB")
    within = walls[0] <= BUDGET_SECONDS and peaks[-1] * 1024**2 <= BUDGET_BYTES
    print(f"budget {BUDGET_SECONDS:g} s and {BUDGET_BYTES / 1024**2:,.0f} MiB (best wall, largest peak): "
          f"{'met' if within else 'NOT met'}; memory alone: {'met' if peaks[-1] * 1024**2 <= BUDGET_BYTES else 'NOT met'}; "
          f"in CPU seconds (best run; what a shared machine cannot inflate much): "
          f"{'met' if cpus[0] <= BUDGET_SECONDS else 'NOT met'}")
    for i in range(max(1, args.stage_repeats)):
        stages = measure_stages(design)
        print(f"stages, run {i + 1} ({stages['rows']:,} rows read, {stages['episodes']:,} episodes in the window; "
              f"peak = VmHWM{' reset at each stage start' if stages['peak_reset'] else ' (not resettable here: process peak so far)'}):")
        print("     wall      CPU")
        for name, seconds, peak, rss, cpu in stages["stages"]:
            memory = f"peak {peak / 1024**2:6,.0f} MiB, after {rss / 1024**2:6,.0f} MiB" if peak and rss else ""
            print(f"  {seconds:7.2f} s {cpu:7.2f} s  {memory}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
