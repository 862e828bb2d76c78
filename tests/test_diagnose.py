"""Design diagnosis (evalkit.diagnose): planting, diagnosands, closed-form agreement,
reproducibility across backends, resuming, the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evalkit.data import AnalysisData
from evalkit.design import design_from_mapping, load_design
from evalkit.diagnose import diagnose
from evalkit.diagnose.diagnosands import cell_diagnosands, minimum_detectable_effect
from evalkit.diagnose.simulate import Draw, PlantedSimulator, duration_truth, simulation_streams
from evalkit.errors import EvalkitError

ROOT = Path(__file__).resolve().parents[1]
SPOC = ROOT / "designs" / "spoc_rollout.yaml"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def spoc():
    """The shipped example without did (its permutations are slow), data loaded once."""
    from evalkit.data import load_data

    design = load_design(SPOC)
    design = _copy(design, analysis=[s for s in design.analysis if s.method != "did"])
    return design, load_data(design)


def _copy(design, **update):
    copy = design.model_copy(update=update)
    copy._path, copy._sha256 = design._path, design._sha256
    return copy


@pytest.fixture(scope="module")
def planted(spoc):
    design, data = spoc
    return PlantedSimulator(design, data)


# ----------------------------------------------------------------------------- planting
def test_base_drops_real_post_periods(spoc, planted):
    design, data = spoc
    first = min(data.adoption.values())
    base = planted.base
    assert base.data.periods[-1] == first - 1
    assert base.data.adoption == {}
    assert (base.data.episodes["period"] < first).all()
    assert base.cohort_sizes == [3, 2, 2]
    assert base.offsets == [0, 9, 18]


def test_placebo_keeps_cohort_pattern_and_stream_is_per_simulation(planted):
    a = next(planted.draws(5, [1.0]))
    b = next(planted.draws(5, [1.0]))
    c = next(planted.draws(6, [1.0]))
    assert a.data.adoption == b.data.adoption
    sizes = sorted(pd.Series(list(a.data.adoption.values())).value_counts().tolist())
    assert sizes == [2, 2, 3]
    dates = sorted(set(a.data.adoption.values()))
    assert [(d - dates[0]).n for d in dates] == [0, 9, 18]
    assert a.data.adoption != c.data.adoption or a.design.seed != c.design.seed
    # the placebo design: first cohort under units.treated (as the real design), fresh method seed
    assert sorted(map(str, a.design.units.treated)) == sorted(str(u) for u, p in a.data.adoption.items() if p == dates[0])
    assert a.design.seed != planted.design.seed
    assert set(a.data.comparison_units) == set(planted.base.units) - set(a.data.adoption)


def test_thinning_keeps_counts_persons_and_repeats_consistent(planted):
    null, half = planted.draws(3, [1.0, 0.5])
    base_panel = planted.base.data.panel
    assert null.data.panel["reports"].tolist() == base_panel["reports"].tolist()
    adopters = half.data.adoption
    panel = half.data.panel
    start = panel["unit"].map(adopters)
    after = start.notna() & (panel["period"] >= start.where(start.notna(), panel["period"]))
    after &= panel["unit"].isin(list(adopters))
    kept = panel.loc[after, "reports"].sum() / base_panel.loc[after.to_numpy(), "reports"].sum()
    assert abs(kept - 0.5) < 0.03  # thousands of episodes thinned with probability 1/2
    assert (panel.loc[~after, "reports"].to_numpy() == base_panel.loc[~after.to_numpy(), "reports"].to_numpy()).all()
    # counts are those of the kept episodes: reports, and repeats never above reports
    episodes = half.data.episodes
    assert len(episodes) == int(panel["reports"].sum())
    assert episodes["repeat"].sum() <= len(episodes)
    # the fast recount is derive_counts' on the kept episodes
    from evalkit.data.episodes import derive_counts

    counts = derive_counts(episodes, planted.base.units, planted.base.data.periods)
    assert counts["reports"].tolist() == panel["reports"].tolist()
    persons_first = episodes.sort_values("reported_at").drop_duplicates("person")
    # a person whose first kept episode is not a repeat had no earlier kept episode
    assert not persons_first["repeat"].all()


def test_time_shortening_respects_censoring(planted):
    base = planted.base
    _, plant = planted.draws(4, [1.0, 0.7])
    adopters = plant.data.adoption
    start = plant.data.episodes["unit"].map(adopters)
    post = start.notna() & (plant.data.episodes["period"] >= start.where(start.notna(), plant.data.episodes["period"]))
    # every found post-adoption episode is 0.7 of an original found time; censored ones keep c
    base_episodes = base.data.episodes
    assert plant.data.episodes["censored"].sum() <= base_episodes["censored"].sum()
    found_post = plant.data.episodes.loc[post & ~plant.data.episodes["censored"], "hours_to_found"]
    assert found_post.mean() < base_episodes.loc[~base_episodes["censored"], "hours_to_found"].mean()


def test_duration_truth_is_exact_for_exponential_times():
    """Exponential times scaled by E: hazard ratio 1/E; RMST from the curve."""
    from evalkit.diagnose.simulate import PlaceboBase, _km

    rng = np.random.default_rng(1)
    hours = rng.exponential(10.0, 20000)
    censored = np.zeros(len(hours), dtype=bool)
    base = PlaceboBase(data=None, units=[], cohort_sizes=[], offsets=[], first_positions=np.array([0]),
                       single_series=False, treated_first=False, ep_found_hours=hours, ep_censored=censored)
    base.survival_times, base.survival_curve = _km(hours, ~censored)
    truth = duration_truth(base, 0.8, 72.0)
    assert truth["hazard_ratio_did"] == pytest.approx(1.25, rel=0.03)
    # RMST of exp(mean 10) to 72h is 10 (1 - e^-7.2); scaled by 0.8: 8 (1 - e^-9)
    expected = 8 * (1 - math.exp(-9)) - 10 * (1 - math.exp(-7.2))
    assert truth["rmst_difference_did"] == pytest.approx(expected, abs=0.15)


def test_effects_outside_zero_one_are_refused(spoc):
    design, data = spoc
    with pytest.raises(EvalkitError, match="between 0 and 1"):
        diagnose(design, sims=1, effect=[1.2], data=data)


# ----------------------------------------------------------------------------- diagnosands
def test_cell_diagnosands_by_hand():
    frame = pd.DataFrame({
        "estimate": [0.8, 0.9, 1.1, 0.7], "ci_low": [0.7, 0.8, 0.9, 0.5], "ci_high": [0.95, 1.05, 1.3, 0.99],
        "truth": [0.85] * 4, "scale": ["ratio"] * 4, "error": [None] * 4})
    d = cell_diagnosands(frame)
    assert d["power"] == 0.5 and d["power_se"] == pytest.approx(math.sqrt(0.25 / 4))
    assert d["coverage"] == 0.75  # 0.85 is outside [0.9, 1.3]
    assert d["bias"] == pytest.approx(np.mean([-0.05, 0.05, 0.25, -0.15]))
    assert d["rmse"] == pytest.approx(math.sqrt(np.mean(np.square([-0.05, 0.05, 0.25, -0.15]))))
    assert d["type_s"] == 0.0
    assert d["mean_width"] == pytest.approx(np.mean([0.25, 0.25, 0.4, 0.49]))
    failed = cell_diagnosands(frame.assign(error=["x", None, None, None]))
    assert failed["failed"] == 1 and failed["simulations"] == 4


def test_mde_interpolates_between_bracketing_effects():
    points = [(1.0, 0.05), (0.9, 0.4), (0.8, 0.9)]
    result = minimum_detectable_effect(points)
    assert result["mde"] == pytest.approx(0.9 + (0.8 - 0.4) * (0.8 - 0.9) / (0.9 - 0.4))
    assert minimum_detectable_effect([(1.0, 0.05), (0.9, 0.3)])["mde"] is None


# ----------------------------------------------------------------------------- closed form
class GaussianITS:
    """A single series, y = 10 + 0.05 t + N(0, sigma^2), a level shift planted after month n_pre."""

    kind = "test"

    def __init__(self, n_pre=48, n_post=24, sigma=1.0, seed=11):
        self.n_pre, self.n_post, self.sigma = n_pre, n_post, sigma
        self.periods = pd.period_range("2016-01", periods=n_pre + n_post, freq="M")
        start = self.periods[n_pre]
        self.design = design_from_mapping({
            "evalkit": 1, "title": "Gaussian ITS", "intervention": {"name": "x", "start": str(start)},
            "data": {"source": "none.csv", "layout": "panel", "columns": {"time": "month"}},
            "outcomes": [{"name": "y", "measure": "continuous", "column": "y"}],
            "analysis": [{"method": "its", "outcome": "y", "family": "gaussian", "errors": "none"}],
            "seed": seed})
        self.start = start

    def describe(self):
        return {"model": "gaussian its test", "n_pre": self.n_pre, "n_post": self.n_post, "sigma": self.sigma}

    def shift(self, effect):
        return 10.0 * (effect - 1.0)

    def draws(self, sim, effects):
        rng, _ = simulation_streams(self.design.seed, sim)
        t = np.arange(len(self.periods))
        noise = rng.normal(0.0, self.sigma, len(t))
        post = t >= self.n_pre
        for effect in effects:
            y = 10 + 0.05 * t + noise + self.shift(effect) * post
            panel = pd.DataFrame({"unit": "series", "period": self.periods, "y": y})
            data = AnalysisData(panel=panel, periods=self.periods, units=["series"], adoption={"series": self.start},
                                comparison_units=[])
            truth = {("y", "level_change"): self.shift(effect), ("y", "cumulative_effect"): self.shift(effect)}
            yield Draw(design=self.design, data=data, effect=effect, truth=truth)

    def analytic(self, effect, alpha=0.05):
        """Power of the level-change t-test: noncentral t with the design matrix's variance."""
        t = np.arange(self.n_pre + self.n_post, dtype=float)
        post = (t >= self.n_pre).astype(float)
        X = np.column_stack([np.ones_like(t), t, post, post * (t - self.n_pre)])
        se = self.sigma * math.sqrt(np.linalg.inv(X.T @ X)[2, 2])
        df = len(t) - X.shape[1]
        crit = stats.t.ppf(1 - alpha / 2, df)
        delta = self.shift(effect) / se
        return float(stats.nct.sf(crit, df, delta) + stats.nct.cdf(-crit, df, delta))


@pytest.mark.slow  # about 10 s on an idle core (600 fits)
def test_gaussian_its_power_and_coverage_match_closed_form():
    model = GaussianITS()
    effect = 0.9  # a shift of -1 with sigma 1
    sims = 250
    result = diagnose(model.design, sims=sims, effect=[effect], simulator=model, mde=False)
    for e, expected_power in ((1.0, 0.05), (effect, model.analytic(effect))):
        cell = result.cell("level_change", e)
        se = math.sqrt(expected_power * (1 - expected_power) / sims)
        assert abs(cell["power"] - expected_power) < 3.5 * se + 1e-9, (e, cell["power"], expected_power)
        assert abs(cell["coverage"] - 0.95) < 3.5 * math.sqrt(0.95 * 0.05 / sims)
        assert abs(cell["bias"]) < 4 * cell["bias_se"]
    assert 0.3 < model.analytic(effect) < 0.9  # the test has teeth: power well away from 0 and 1


# ----------------------------------------------------------------------------- reproducibility
def _small(spoc_design):
    return _copy(spoc_design, analysis=[s for s in spoc_design.analysis if s.method in ("its", "staggered_did")])


def test_one_and_two_workers_give_identical_bytes(spoc, tmp_path):
    design, data = spoc
    design = _small(design)
    one = diagnose(design, sims=4, effect=[0.8], data=data, workers=1, out=tmp_path / "one", mde=False)
    two = diagnose(design, sims=4, effect=[0.8], data=data, workers=2, out=tmp_path / "two", mde=False)
    assert (tmp_path / "one" / "diagnosis.json").read_bytes() == (tmp_path / "two" / "diagnosis.json").read_bytes()
    assert (tmp_path / "one" / "diagnosis.html").read_bytes() == (tmp_path / "two" / "diagnosis.html").read_bytes()
    assert one.to_json_text() == two.to_json_text()
    rows = pd.read_parquet(tmp_path / "one" / "simulations.parquet")
    assert set(rows["sim"]) == {0, 1, 2, 3} and set(rows["effect"]) == {1.0, 0.8}
    html = (tmp_path / "one" / "diagnosis.html").read_text()
    assert "Could this evaluation detect a change?" in html and "<svg" in html


def test_rerun_continues_from_simulations_parquet(spoc, tmp_path, monkeypatch):
    design, data = spoc
    design = _small(design)
    diagnose(design, sims=2, effect=[0.8], data=data, out=tmp_path / "resume", mde=False)
    from evalkit.diagnose import executors

    calls = []
    original = executors.run_batch

    def counting(simulator, sims, effects, analyses=None):
        calls.append(list(sims))
        return original(simulator, sims, effects, analyses)

    monkeypatch.setattr(executors, "run_batch", counting)
    resumed = diagnose(design, sims=4, effect=[0.8], data=data, out=tmp_path / "resume", mde=False)
    assert sorted(s for batch in calls for s in batch) == [2, 3]
    monkeypatch.setattr(executors, "run_batch", original)
    fresh = diagnose(design, sims=4, effect=[0.8], data=data, out=tmp_path / "fresh", mde=False)
    assert resumed.to_json_text() == fresh.to_json_text()


@pytest.mark.slow
def test_dask_local_cluster_gives_identical_bytes(spoc, tmp_path):
    pytest.importorskip("dask.distributed")
    design, data = spoc
    design = _small(design)
    local = diagnose(design, sims=3, effect=[0.8], data=data, workers=1, mde=False)
    dask = diagnose(design, sims=3, effect=[0.8], data=data, workers=2, backend="dask", mde=False)
    assert local.to_json_text() == dask.to_json_text()


def test_mde_search_brackets_the_headline(spoc):
    design, data = spoc
    design = _small(design)
    result = diagnose(design, sims=6, effect=[0.9], data=data)
    head = result.headline
    assert head["method"] == "staggered_did" and head["estimand"] == "att_simple"
    assert len(result.settings["effects_tried"]) > 2
    curve = {float(k): v for k, v in head["power_curve"].items()}
    efs = sorted(curve)
    # common random numbers: power never falls as the planted fall grows
    assert all(curve[a] >= curve[b] - 1e-12 for a, b in zip(efs, efs[1:]))
    # the effects the search adds are fitted with the headline analysis only
    added = result.rows[~result.rows["effect"].isin([1.0, 0.9])]
    assert not added.empty and set(added["analysis"]) == {head["analysis"]}


# ----------------------------------------------------------------------------- command line
def test_cli_diagnose_writes_outputs(tmp_path):
    from click.testing import CliRunner

    from evalkit.cli import main

    text = SPOC.read_text().replace("../examples/", str(ROOT / "examples") + "/")
    keep = "\n".join(line for line in text.splitlines()
                     if not line.strip().startswith("- {method: did") and not line.strip().startswith("- {method: survival"))
    path = tmp_path / "spoc.yaml"
    path.write_text(keep)
    out = tmp_path / "diag"
    result = CliRunner().invoke(main, ["diagnose", str(path), "--sims", "2", "--effect", "0.7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "would detect a fall" in result.output or "could miss" in result.output
    record = json.loads((out / "diagnosis.json").read_text())
    assert record["schema"] == "evalkit.diagnosis/1" and record["settings"]["sims"] == 2
    bad = CliRunner().invoke(main, ["diagnose", str(path), "--sims", "1", "--effect", "1.5", "--out", str(out)])
    assert bad.exit_code == 1 and "between 0 and 1" in bad.output


# ----------------------------------------------------------------------------- model-based
PLANNED = """
evalkit: 1
title: Planned rollout (not yet run)
intervention: {name: SPOC, start: 2021-01}
data:
  source: future.csv
  layout: episodes
  columns: {unit: force, reported_at: reported_at, found_at: found_at, person: child_id}
  person_key: ephemeral
units:
  treated: [area01]
outcomes:
  - {name: reports, measure: count}
  - {name: repeat_reports, measure: count}
  - {name: time_to_found, measure: duration_hours, horizon: 72}
analysis:
  - {method: did, outcome: reports}
  - {method: survival_did, outcome: time_to_found}
diagnose:
  areas: 8
  start: 2019-01
  periods: 36
  adoption: {2020-07: 2, 2021-01: 1}
  baseline_rate: 25
  repeat_persistence: 0.5
"""


def test_model_simulation_from_diagnose_block(tmp_path):
    from evalkit.diagnose.model import ModelSimulator

    path = tmp_path / "plan.yaml"
    path.write_text(PLANNED)
    design = load_design(path)
    model = ModelSimulator(design)
    null, plant = model.draws(0, [1.0, 0.5])
    assert null.data.adoption == plant.data.adoption and len(null.data.adoption) == 3
    assert sorted(map(str, null.design.units.treated)) == ["area01", "area02"]
    # thinning halves the post-adoption reports of adopting areas, and leaves the rest alone
    adopters = list(null.data.adoption)
    before = null.data.panel[null.data.panel["unit"].isin(adopters) & (null.data.panel["period"] >= pd.Period("2021-01", "M"))]
    after = plant.data.panel.loc[before.index]
    assert 0.4 < after["reports"].sum() / before["reports"].sum() < 0.6
    # repeat persistence: about half the episodes are by a child seen before
    share = null.data.episodes["repeat"].mean()
    assert 0.35 < share < 0.6
    truth = model.truths(0.5)["time_to_found"]
    assert truth["hazard_ratio_did"] == pytest.approx(0.5 ** -0.8)
    assert truth["rmst_difference_did"] < 0
    result = diagnose(design, sims=3, effect=[0.7], model="synthetic", mde=False)
    assert result.simulator["model"] == "synthetic"
    assert result.cell("att", 0.7, method="did")["truth"] == 0.7


def test_model_simulation_needs_the_block(spoc):
    design, _ = spoc
    with pytest.raises(EvalkitError, match="diagnose: block"):
        diagnose(design, sims=1, model="synthetic")


def test_diagnose_block_refuses_unknown_keys(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(PLANNED.replace("baseline_rate: 25", "baseline_rate: 25\n  baseline_rat: 3"))
    with pytest.raises(EvalkitError, match="baseline_rat"):
        load_design(path)


def test_short_pre_period_leaves_the_real_adopters_out():
    """mpdta has one pre-year: the adopters are left out and placebo counties adopt at the real dates."""
    design = load_design(ROOT / "designs" / "mpdta_staggered.yaml")
    design = _copy(design, analysis=design.analysis[:1])
    from evalkit.data import load_data

    data = load_data(design)
    simulator = PlantedSimulator(design, data)
    assert "left out" in simulator.describe()["real_adopters"]
    draw = next(simulator.draws(0, [1.0]))
    assert not set(draw.data.adoption) & set(data.adoption)
    assert sorted(pd.Series(list(draw.data.adoption.values())).value_counts().tolist()) == \
        sorted(pd.Series(list(data.adoption.values())).value_counts().tolist())
    result = diagnose(design, sims=2, effect=[0.9], data=data, mde=False, simulator=simulator)
    assert result.cell("att_simple", 0.9)["failed"] == 0


# ----------------------------------------------------------------------------- report section
def test_report_section_words_and_headline_addition():
    from types import SimpleNamespace

    from evalkit.report.diagnosis import report_section
    from evalkit.results import Estimate

    diagnosis = {
        "schema": "evalkit.diagnosis/1", "settings": {"sims": 200, "effects": [1.0, 0.85]},
        "headline": {"method": "staggered_did", "outcome": "reports", "estimand": "att_simple", "mde": 0.8512},
        "analyses": [{"analysis": 0, "method": "staggered_did", "outcome": "reports"}],
        "cells": [{"analysis": 0, "estimand": "att_simple", "effect": 1.0, "false_positive_rate": 0.11, "coverage": 0.89},
                  {"analysis": 0, "estimand": "att_simple", "effect": 0.85, "coverage": 0.893}],
    }
    unclear = Estimate("reports", "staggered_did", "att_simple", "ratio", 0.95, ci_low=0.8, ci_high=1.1)
    results = SimpleNamespace(evidence={"headline_method": "staggered_did", "headline_outcome": "reports",
                                        "headline_estimand": "att_simple"}, estimates=[unclear])
    section = report_section(results, diagnosis)
    assert "would detect a fall of 15% or more 8 times in 10" in section["sentence"]
    assert section["headline_addition"] == ("This design would detect a fall of 15% or more 8 times in 10; "
                                            "smaller changes could be missed.")
    assert section["rows"][0]["false_positive"] == "11%" and section["rows"][0]["coverage_null"] == "89%"
    assert section["rows"][0]["coverage_planted"] == "89%" and section["rows"][0]["planted"] == "a 15% fall"
    clear = Estimate("reports", "staggered_did", "att_simple", "ratio", 0.8, ci_low=0.7, ci_high=0.9)
    assert report_section(SimpleNamespace(evidence=results.evidence, estimates=[clear]), diagnosis)["headline_addition"] is None
    assert report_section(results, None) is None


def test_fast_recount_equals_derive_counts():
    """Persons and repeat reports recounted after thinning are derive_counts' on the kept episodes."""
    from evalkit.data import load_data
    from evalkit.data.episodes import derive_counts

    design = load_design(SPOC)
    count = design.outcomes[0]
    design = _copy(design, analysis=design.analysis[:1], outcomes=list(design.outcomes) + [
        count.model_copy(update={"name": "persons"}), count.model_copy(update={"name": "repeat_reports"})])
    simulator = PlantedSimulator(design, load_data(design))
    for draw in simulator.draws(2, [1.0, 0.6]):
        counts = derive_counts(draw.data.episodes, simulator.base.units, simulator.base.data.periods)
        for name in ("reports", "persons", "repeat_reports"):
            assert counts[name].tolist() == draw.data.panel[name].tolist(), (draw.effect, name)


def test_randomization_inference_is_capped_per_simulated_fit():
    from evalkit.diagnose.api import capped_randomization

    design = load_design(SPOC)
    capped = capped_randomization(design, 99)
    did = next(s for s in capped.analysis if s.method == "did")
    assert did.inference == "randomization" and did.reps == 99
    # the default (auto) is randomization below 20 adopting areas: capped too
    staggered = next(s for s in capped.analysis if s.method == "staggered_did")
    assert staggered.inference == "auto" and staggered.reps == 99
    assert next(s for s in design.analysis if s.method == "did").reps == 499  # the design itself untouched
    assert capped.sha256 == design.sha256 and capped.path == design.path
    assert capped_randomization(design, 1000) is design


def test_report_with_a_diagnosis(tmp_path):
    """evalkit report RESULTS --diagnosis adds the section; a non-diagnosis file is refused in one line."""
    from click.testing import CliRunner

    import evalkit
    from evalkit.cli import main

    design = load_design(ROOT / "designs" / "sicily_smoking_ban.yaml")
    results = evalkit.run(design)
    results.to_json(tmp_path / "results.json")
    diagnose(design, sims=20, effect=[0.8], out=tmp_path / "diag", mde=False)
    run = CliRunner().invoke(main, ["report", str(tmp_path / "results.json"), "--diagnosis",
                                    str(tmp_path / "diag" / "diagnosis.json"), "--out", str(tmp_path / "r.html")])
    assert run.exit_code == 0, run.output
    html = (tmp_path / "r.html").read_text()
    assert "Could this evaluation have detected a change?" in html and "20 simulated versions" in html
    plain = CliRunner().invoke(main, ["report", str(tmp_path / "results.json"), "--out", str(tmp_path / "p.html")])
    assert plain.exit_code == 0 and "Could this evaluation" not in (tmp_path / "p.html").read_text()
    bad = CliRunner().invoke(main, ["report", str(tmp_path / "results.json"), "--diagnosis", str(tmp_path / "results.json"),
                                    "--out", str(tmp_path / "b.html")])
    assert bad.exit_code == 1 and "is not a diagnosis.json" in bad.output


@pytest.mark.slow
def test_run_with_diagnose(tmp_path):
    from click.testing import CliRunner

    from evalkit.cli import main

    out = tmp_path / "sicily"
    run = CliRunner().invoke(main, ["run", str(ROOT / "designs" / "sicily_smoking_ban.yaml"), "--out", str(out), "--diagnose"])
    assert run.exit_code == 0, run.output
    assert (out / "diagnosis" / "diagnosis.json").exists()
    assert "Could this evaluation have detected a change?" in (out / "report.html").read_text()
