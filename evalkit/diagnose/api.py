"""``evalkit.diagnose``: how often each analysis of the plan detects a planted change, covers
the truth and rejects a true null, on simulated versions of the user's own data.

The run: simulator (planted into the data, or a model) -> every analysis of the plan on
each simulated dataset, through the methods' own ``fit`` -> rows -> diagnosands -> the
minimum detectable effect by a search over planted effects with common random numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.progress import stage
from ..design import DiDOptions, Design, StaggeredDiDOptions, SurvivalDiDOptions
from ..errors import EvalkitError
from ..results import json_ready, write_atomic
from ..version import __version__
from .diagnosands import (CALIBRATION_RULE, KEYS, TARGET_POWER, calibration_by_estimand, diagnose_rows,
                          minimum_detectable_effect, power_curve)
from .executors import open_backend
from .simulate import check_effects

SCHEMA = "evalkit.diagnosis/1"
DEFAULT_SIMS = 200
DEFAULT_EFFECTS = (1.0, 0.85)
DEFAULT_RANDOMIZATION_REPS = 99
#: effects tried when the MDE is not bracketed by the planted effects (strongest last)
MDE_LADDER = (0.9, 0.8, 0.7, 0.6, 0.5)
MDE_BISECTIONS = 3
ROW_COLUMNS = ["sim", "effect", "analysis", "method", "outcome", "estimand", "scale", "estimate", "ci_low", "ci_high",
               "p_value", "truth", "error"]


@dataclass
class Diagnosis:
    """What a diagnosis found; :meth:`to_json_text` is diagnosis.json."""

    design: dict
    simulator: dict
    settings: dict
    cells: list
    mde: list
    headline: dict
    analyses: list
    truths: dict = field(default_factory=dict)
    rows: pd.DataFrame = field(repr=False, default=None)
    evalkit_version: str = __version__
    schema: str = SCHEMA

    def to_dict(self) -> dict:
        return json_ready({"schema": self.schema, "evalkit_version": self.evalkit_version, "design": self.design,
                       "simulator": self.simulator, "settings": self.settings, "headline": self.headline,
                       "analyses": self.analyses, "mde": self.mde, "cells": self.cells, "truths": self.truths})

    def to_json_text(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"

    def cell(self, estimand: str, effect: float, method: str | None = None, outcome: str | None = None) -> dict | None:
        for c in self.cells:
            if c["estimand"] == estimand and c["effect"] == effect and (method is None or c["method"] == method) \
                    and (outcome is None or c["outcome"] == outcome):
                return c
        return None


def make_simulator(design: Design, data=None, model: str = "data"):
    """The simulator for ``model``: ``data`` (planted into the loaded data) or ``synthetic``."""
    if model == "synthetic":
        from .model import ModelSimulator

        return ModelSimulator(design)
    if model != "data":
        raise EvalkitError("--model", f"unknown model '{model}'", "use data or synthetic")
    from ..data import load_data
    from .simulate import PlantedSimulator

    if data is None:
        data = load_data(design)
    return PlantedSimulator(design, data)


def _inference_name(spec) -> str | None:
    """The inference an analysis declares, as diagnosis.json names it (its: errors and reference)."""
    if spec.method in ("its", "controlled_its"):
        return f"{spec.errors}, {spec.small_sample}" if spec.errors == "newey_west" else spec.errors
    return getattr(spec, "inference", None) or getattr(spec, "se", None)


def capped_randomization(design: Design, reps: int) -> Design:
    """The design with at most ``reps`` permutations in randomization-inference analyses.

    ``auto`` is capped too: below 20 adopting areas it is randomization inference, and a
    diagnosis of the user's design must fit the defaults the user would run.
    """
    # the methods whose options carry reps (permutations or bootstrap draws)
    with_reps = (DiDOptions, StaggeredDiDOptions, SurvivalDiDOptions)
    analysis = [s.model_copy(update={"reps": min(s.reps, max(99, int(reps)))})
                if isinstance(s, with_reps) and s.inference in ("randomization", "auto") and s.reps > reps else s
                for s in design.analysis]
    if all(a is b for a, b in zip(analysis, design.analysis)):
        return design
    copy = design.model_copy(update={"analysis": analysis})
    copy._path, copy._sha256 = design._path, design._sha256
    return copy


def headline_analysis(design: Design) -> tuple[int, str] | None:
    """The analysis and estimand a run's headline would come from (evalkit.evidence's rule)."""
    from ..evidence import HEADLINE_ESTIMAND, METHOD_LEVEL

    candidates = [(i, s) for i, s in enumerate(design.analysis)
                  if s.outcome == design.primary.name and s.method in HEADLINE_ESTIMAND]
    if not candidates:
        candidates = [(i, s) for i, s in enumerate(design.analysis) if s.method in HEADLINE_ESTIMAND]
    if not candidates:
        return None
    best = max(candidates, key=lambda c: (METHOD_LEVEL.get(c[1].method, (0, ""))[0], -c[0]))
    return best[0], HEADLINE_ESTIMAND[best[1].method]


# ----------------------------------------------------------------------------- resumable rows
def _fingerprint(design: Design, simulator) -> str:
    reps = [getattr(s, "reps", None) for s in design.analysis]
    return json.dumps({"design": design.sha256, "seed": design.seed, "simulator": simulator.describe(), "reps": reps,
                       "version": __version__}, sort_keys=True)


def load_rows(path: Path, fingerprint: str) -> pd.DataFrame:
    """Rows already simulated for this design and simulator (empty when none or stale)."""
    if not path.exists():
        return pd.DataFrame(columns=ROW_COLUMNS)
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception:  # a half-written or foreign file: start again
        return pd.DataFrame(columns=ROW_COLUMNS)
    meta = (table.schema.metadata or {}).get(b"evalkit.diagnosis")
    if meta is None or meta.decode() != fingerprint:
        return pd.DataFrame(columns=ROW_COLUMNS)
    return table.to_pandas()[ROW_COLUMNS]


def save_rows(path: Path, rows: pd.DataFrame, fingerprint: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _sorted(rows)
    table = pa.Table.from_pandas(_typed(rows), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"evalkit.diagnosis": fingerprint.encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def _typed(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows.copy()
    for c in ("sim", "analysis"):
        out[c] = out[c].astype("int64")
    for c in ("effect", "estimate", "ci_low", "ci_high", "p_value", "truth"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    for c in ("method", "outcome", "estimand", "scale", "error"):
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out


def _sorted(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.reset_index(drop=True)
    rows["_order"] = np.arange(len(rows))
    # within one fit the estimates keep the method's order; fits are ordered by effect, simulation, analysis
    rows = rows.sort_values(["effect", "sim", "analysis", "_order"], ascending=[False, True, True, True], kind="stable")
    return rows.drop(columns="_order").reset_index(drop=True)


# ----------------------------------------------------------------------------- the run
class _Runner:
    def __init__(self, simulator, workers, backend, scheduler, out_path, fingerprint, rows):
        self.simulator, self.workers, self.backend_kind, self.scheduler = simulator, workers, backend, scheduler
        self.backend = None
        self.out_path, self.fingerprint = out_path, fingerprint
        self.rows = rows

    def done(self) -> set:
        if self.rows.empty:
            return set()
        return set(zip(self.rows["sim"].astype(int), self.rows["effect"].astype(float),
                       self.rows["analysis"].astype(int)))

    def ensure(self, sims: int, effects: list[float], analyses=None) -> None:
        """Simulate every (simulation, effect) pair whose analyses (all, or those numbered in
        ``analyses``) are not already in the rows."""
        done = self.done()
        wanted = range(len(self.simulator.design.analysis)) if analyses is None else analyses
        missing: dict = {}
        for sim in range(sims):
            todo = tuple(e for e in effects if any((sim, e, a) not in done for a in wanted))
            if todo:
                missing.setdefault(todo, []).append(sim)
        total = sum(len(s) * len(e) for e, s in missing.items())
        if not total:
            return
        pending: list = []
        with stage(f"diagnose: {total} simulated analyses of the plan", total=total) as advance:
            def on_batch(got, n_sims, n_effects):
                pending.extend(got)
                advance(n_sims * n_effects)
                if self.out_path is not None and len(pending) > 2000:
                    self._flush(pending)

            for todo, sim_list in sorted(missing.items()):
                size = len(todo)
                callback = (lambda got, n, k=size: on_batch(got, n, k))
                if self.backend is None:
                    self.backend = open_backend(self.simulator, self.backend_kind, self.workers, self.scheduler)
                self.backend.run(sim_list, list(todo), callback, analyses)
        self._flush(pending)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    def _flush(self, pending: list) -> None:
        if pending:
            self.rows = pd.concat([self.rows, pd.DataFrame(pending, columns=ROW_COLUMNS)], ignore_index=True) \
                if not self.rows.empty else pd.DataFrame(pending, columns=ROW_COLUMNS)
            pending.clear()
            # a rerun that adds analyses to a (simulation, effect) refits the ones already there:
            # identical rows (same stream), kept once
            self.rows = self.rows.drop_duplicates(["sim", "effect", "analysis", "estimand"], keep="first",
                                                  ignore_index=True)
        if self.out_path is not None:
            save_rows(self.out_path, self.rows, self.fingerprint)


def diagnose(design: Design, sims: int = DEFAULT_SIMS, effect=None, workers: int = 1, backend: str = "local",
             scheduler: str | None = None, out=None, model: str = "data", data=None, simulator=None,
             mde: bool = True, randomization_reps: int | None = DEFAULT_RANDOMIZATION_REPS) -> Diagnosis:
    """Diagnose the design: power, bias, coverage and false-positive rate of every analysis.

    Parameters
    ----------
    design : Design
        From :func:`evalkit.load_design`.
    sims : int
        Simulated datasets per planted effect (Monte Carlo SE of a 95% coverage about
        ``sqrt(0.05 * 0.95 / sims)``: 1.5 points at 200).
    effect : float or list of float, optional
        Planted rate ratios (0.85 = 15% fewer; also the factor on hours to found and
        ``E - 1`` times the mean of a continuous outcome). No change (1) is always added.
    workers : int
        Processes (local) or LocalCluster workers (dask without ``scheduler``).
    backend : {"local", "dask"}
    scheduler : str, optional
        Address of a running dask.distributed scheduler.
    out : path, optional
        Folder for simulations.parquet (resumable), diagnosis.json and diagnosis.html.
    model : {"data", "synthetic"}
        Plant into the design's data, or simulate from the design's ``diagnose:`` model.
    data : AnalysisData, optional
        Already loaded data (loaded once from the design when omitted).
    simulator : object, optional
        A custom simulator (``draws(sim, effects)``, ``describe()``, ``design``), for tests.
    mde : bool
        Search for the minimum detectable effect of the headline analysis.
    randomization_reps : int or None
        Permutations of an analysis with ``inference: randomization`` in each simulated
        dataset (at most; None: as declared). A permutation test holds its size at any
        number of permutations; 99 keeps a diagnosis affordable.
    """
    if sims < 1:
        raise EvalkitError("--sims", f"{sims} is too few simulations", "give at least 1 (200 or more for a usable diagnosis)")
    if backend not in ("local", "dask"):
        raise EvalkitError("--backend", f"unknown backend '{backend}'", "use local or dask")
    if workers < 1:
        raise EvalkitError("--workers", f"{workers} is too few workers", "give 1 or more")
    effects = check_effects([1.0] + list(DEFAULT_EFFECTS[1:] if effect is None else np.atleast_1d(effect).tolist()),
                            "--effect")
    if randomization_reps is not None:
        design = capped_randomization(design, randomization_reps)
    if simulator is None:
        simulator = make_simulator(design, data, model)
    out_dir = Path(out) if out is not None else None
    rows_path = out_dir / "simulations.parquet" if out_dir is not None else None
    fingerprint = _fingerprint(design, simulator)
    rows = load_rows(rows_path, fingerprint) if rows_path is not None else pd.DataFrame(columns=ROW_COLUMNS)
    runner = _Runner(simulator, workers, backend, scheduler, rows_path, fingerprint, rows)
    tried = list(effects)
    headline = headline_analysis(design)
    try:
        runner.ensure(sims, effects)
        if mde and headline is not None:
            tried = _search_mde(runner, sims, tried, headline)
    finally:
        runner.close()
    rows = _sorted(runner.rows)
    rows = rows[(rows["sim"].astype(int) < sims) & rows["effect"].astype(float).isin(tried)].reset_index(drop=True)
    diagnosis = summarise(design, simulator, rows, sims, effects, tried, headline)
    if out_dir is not None:
        write_outputs(diagnosis, out_dir)
    return diagnosis


def _headline_key(design: Design, headline) -> tuple:
    index, estimand = headline
    spec = design.analysis[index]
    return (spec.outcome, spec.method, index, estimand)


def _search_mde(runner: _Runner, sims: int, tried: list, headline) -> list:
    """Bisection over the planted effect for the headline estimand's 80% power, common random numbers.

    Only the headline analysis is fitted at the effects the search adds; the other analyses
    get their MDE from the effects asked for."""
    key = _headline_key(runner.simulator.design, headline)

    def curve():
        cells = diagnose_rows(_sorted(runner.rows[(runner.rows["sim"].astype(int) < sims)
                                                  & runner.rows["effect"].astype(float).isin(tried)]),
                              runner.simulator.design.alpha)
        return dict(power_curve(cells, key))

    points = curve()
    if not points:
        return tried
    ladder = [e for e in MDE_LADDER if e < min(tried)]
    while not any(p >= TARGET_POWER for e, p in points.items() if e < 1) and ladder:
        tried.append(ladder.pop(0))
        runner.ensure(sims, [tried[-1]], [key[2]])
        points = curve()
    for _ in range(MDE_BISECTIONS):
        above = [e for e, p in points.items() if e < 1 and p >= TARGET_POWER]
        below = [e for e, p in points.items() if p < TARGET_POWER]
        if not above or not below:
            break
        strong = max(above)  # the weakest effect detected 8 times in 10
        weaker = [e for e in below if e > strong]
        if not weaker:
            break
        weak = min(weaker)
        middle = round((strong + weak) / 2, 4)
        if middle in tried or weak - strong < 0.01:
            break
        tried.append(middle)
        runner.ensure(sims, [middle], [key[2]])
        points = curve()
    return sorted(set(tried), reverse=True)


def summarise(design: Design, simulator, rows: pd.DataFrame, sims: int, effects: list, tried: list,
              headline) -> Diagnosis:
    cells = diagnose_rows(rows, design.alpha)
    keys = sorted({tuple(c[k] for k in KEYS) for c in cells}, key=lambda k: (k[2], k[3]))
    mde = []
    for key in keys:
        record = dict(zip(KEYS, key))
        planted = [c.get("truth") for c in cells if tuple(c[k] for k in KEYS) == key and c["effect"] < 1.0]
        no_change = 1.0 if next((c["scale"] for c in cells if tuple(c[k] for k in KEYS) == key), None) == "ratio" else 0.0
        if key[3] == "(fit)" or (planted and all(t == no_change for t in planted)):
            continue  # failed fits, or an estimand the plant leaves at no change (a slope change)
        record.update(minimum_detectable_effect(power_curve(cells, key)))
        mde.append(record)
    analyses = []
    for index, spec in enumerate(design.analysis):
        fits = rows[rows["analysis"] == index]
        null_cells = [c for c in cells if c["analysis"] == index and c["effect"] == 1.0
                      and c.get("false_positive_rate") is not None]
        analyses.append({
            "analysis": index, "method": spec.method, "outcome": spec.outcome,
            "inference": _inference_name(spec),
            "failed_fits": int(fits[fits["estimand"] == "(fit)"]["sim"].count()),
            "fits": int(fits.groupby(["sim", "effect"]).ngroups),
            "false_positive_rate": {c["estimand"]: [c["false_positive_rate"], c["false_positive_rate_se"]]
                                    for c in null_cells},
            "coverage": {f'{c["estimand"]}@{c["effect"]:g}': [c["coverage"], c["coverage_se"]] for c in cells
                         if c["analysis"] == index and c.get("coverage") is not None},
            # issue 12: is each estimand's 95% interval calibrated here? (diagnosands.calibration)
            "calibration": {k: v["verdict"] for k, v in calibration_by_estimand(cells, index).items()},
            "calibration_reasons": {k: {r: v[r] for r in v if r != "verdict"}
                                    for k, v in calibration_by_estimand(cells, index).items()},
        })
    head = {}
    if headline is not None:
        key = _headline_key(design, headline)
        head = {"analysis": key[2], "method": key[1], "outcome": key[0], "estimand": key[3],
                **next((m for m in mde if tuple(m[k] for k in KEYS) == key), {})}
        null_cell = next((c for c in cells if tuple(c[k] for k in KEYS) == key and c["effect"] == 1.0), None)
        if null_cell:
            head["false_positive_rate"] = null_cell.get("false_positive_rate")
            head["coverage_at_null"] = null_cell.get("coverage")
        verdict = calibration_by_estimand(cells, key[2]).get(key[3])
        if verdict is not None:
            head["calibration"] = verdict["verdict"]
            head["calibration_reasons"] = verdict.get("reasons", [])
        if head.get("mde") is not None:
            power_at = dict(power_curve(cells, key))
            head["power_curve"] = {f"{e:g}": p for e, p in sorted(power_at.items())}
    settings = {"sims": sims, "effects": effects, "effects_tried": sorted(tried, reverse=True), "seed": design.seed,
                "alpha": design.alpha, "target_power": TARGET_POWER, "calibration_rule": CALIBRATION_RULE,
                "seed_rule": "numpy SeedSequence(design seed).spawn(sims): simulation i uses child i"}
    truths = {}
    if hasattr(simulator, "truths"):
        # the hazard ratio and restricted-mean difference each planted effect amounts to
        for effect in sorted(tried, reverse=True):
            planted_truths = {k: v for k, v in simulator.truths(effect).items() if not k.startswith("__") and v}
            if planted_truths:
                truths[f"{effect:g}"] = planted_truths
    return Diagnosis(design={"path": str(design.path) if design.path else None, "title": design.title,
                             "sha256": design.sha256},
                     simulator=simulator.describe(), settings=settings, cells=cells, mde=mde, headline=head,
                     analyses=analyses, truths=truths, rows=rows)


def write_outputs(diagnosis: Diagnosis, out_dir: Path) -> dict:
    """diagnosis.json (deterministic bytes) and diagnosis.html beside simulations.parquet."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_atomic(out_dir / "diagnosis.json", diagnosis.to_json_text())}
    from .html import render_diagnosis

    paths["html"] = write_atomic(out_dir / "diagnosis.html", render_diagnosis(diagnosis.to_dict()))
    return paths


__all__ = ["Diagnosis", "diagnose", "make_simulator", "headline_analysis", "summarise", "write_outputs",
           "DEFAULT_SIMS", "DEFAULT_EFFECTS"]
