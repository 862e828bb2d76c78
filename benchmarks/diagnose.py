"""Simulations per second of a design diagnosis: designs/spoc_rollout.yaml's plan without
randomization inference (its, staggered_did, survival_did), planted into the example's data.

    python benchmarks/diagnose.py [SIMS] [WORKERS ...]

One simulation = one simulated dataset (placebo adoption, a planted effect) with every
analysis of the plan fitted to it. The data are loaded once; the timing covers the pool's
start (workers fork and receive the data) and every simulation; the rate without the
start-up is printed too. Prints the load average: the machine is shared.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


def main(sims: int = 200, workers: list[int] = (1, 2)) -> None:
    from evalkit import load_design
    from evalkit.data import load_data
    from evalkit.diagnose.executors import LocalBackend
    from evalkit.diagnose.simulate import PlantedSimulator

    design = load_design(ROOT / "designs" / "spoc_rollout.yaml")
    plan = [s for s in design.analysis if getattr(s, "inference", None) != "randomization"]
    design = design.model_copy(update={"analysis": plan})
    data = load_data(design)
    simulator = PlantedSimulator(design, data)
    simulator.truths(0.85)  # the planted hazard ratio and RMST difference: once per effect, not per simulation
    print(f"plan: {', '.join(s.method for s in plan)}; {sims} simulations at a planted rate ratio of 0.85; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for k in workers:
        backend = LocalBackend(simulator, k)
        started = time.perf_counter()
        backend.run(list(range(k)), [0.85])  # start the pool (and import the methods) before timing the rest
        warm = time.perf_counter()
        cpu_self, cpu_children = time.process_time(), _children_cpu()
        backend.run(list(range(k, sims + k)), [0.85])
        done = time.perf_counter()
        cpu = time.process_time() - cpu_self
        backend.close()  # workers exit: their CPU time is now counted
        if k > 1:
            cpu = _children_cpu() - cpu_children  # includes the warm-up batch: a slight overestimate
        total = done - started
        per_sim = cpu / sims
        print(f"{k} worker{'s' if k > 1 else ''}: {sims / (done - warm):.1f} simulations/s wall "
              f"({(sims + k) / total:.1f}/s with start-up); CPU {1000 * per_sim:.0f} ms a simulation, "
              f"so {k / per_sim:.1f}/s on {k} idle core{'s' if k > 1 else ''}")


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(args[0] if args else 200, args[1:] or [1, 2])
