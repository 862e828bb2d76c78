"""``did``: TWFE (linear and Poisson), Goodman-Bacon, randomization inference, wild cluster bootstrap.

References: statsmodels OLS and GLM with dummy columns and their cluster-robust
covariances; linearmodels PanelOLS (Stata's ``xtreg, fe vce(cluster)`` convention); the
closed-form 2x2 DiD; the wildboottest package (stored fixture, tests/fixtures/did/);
hand-enumerated permutation p-values; simulations with known truth.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from linearmodels.panel import PanelOLS
from scipy import stats

import evalkit
from evalkit.design import design_from_mapping
from evalkit.inference.randomization import count_assignments, distinct_assignments, randomization_test
from evalkit.inference.wild_cluster import bootstrap_t, draw_weights, wild_cluster_bootstrap
from evalkit.methods.did.bacon import NEVER, bacon_decomposition, twfe_balanced
from evalkit.methods.did.twfe import FixedEffectsDesign, TwoWayProjection, fit_poisson

from .conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "did"


# ----------------------------------------------------------------------------- helpers
def panel_design(tmp_path, frame: pd.DataFrame, analysis: dict, adoption: dict, measure: str = "continuous",
                 exposure: bool = False, transition: int = 0, per: float | None = None, seed: int = 7):
    """Write a panel and a design for it; return the validated design."""
    frame.to_csv(tmp_path / "panel.csv", index=False)
    columns = {"unit": "area", "time": "period"}
    if exposure:
        columns["exposure"] = "children"
    outcome = {"name": "y", "column": "y", "measure": measure}
    if per:
        outcome["per"] = per
    raw = {
        "evalkit": 1, "title": "did test",
        "intervention": {"name": "SPOC", "transition": transition},
        "data": {"source": "panel.csv", "layout": "panel", "columns": columns, "frequency": "month"},
        "units": {"adoption": adoption},
        "outcomes": [outcome],
        "analysis": [{"method": "did", "outcome": "y", **analysis}],
        "seed": seed,
    }
    path = tmp_path / "design.yaml"
    import yaml

    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return evalkit.load_design(path)


def month(i: int) -> str:
    return str(pd.Period("2020-01", freq="M") + i)


def simulated_panel(rng, adoption: dict, areas: int, periods: int, effect: float = 0.0, counts: bool = False,
                    missing: int = 0, scale: float = 100.0) -> pd.DataFrame:
    """A panel with area and period effects, an AR(1)-like area shock, and a planted effect."""
    rows = []
    area_effect = rng.normal(0, 1, areas)
    period_effect = rng.normal(0, 0.3, periods)
    for a in range(areas):
        drift = rng.normal(0, 0.2)
        size = rng.uniform(2000, 9000)
        for t in range(periods):
            start = adoption.get(f"A{a}")
            treated = start is not None and month(t) >= start
            if counts:
                mean = size / scale * np.exp(0.3 * area_effect[a] + period_effect[t])  # parallel trends
                mean *= np.exp(effect) if treated else 1.0
                y = float(rng.poisson(mean))
            else:
                y = area_effect[a] + period_effect[t] + drift * t / periods + effect * treated + rng.normal(0, 0.5)
            rows.append({"area": f"A{a}", "period": month(t), "y": y, "children": round(size)})
    frame = pd.DataFrame(rows)
    if missing:
        frame = frame.drop(index=rng.choice(len(frame), missing, replace=False))
    return frame


def fit_did(design):
    from evalkit.data import load_data
    from evalkit.methods.did.did import fit

    data = load_data(design)
    return fit(design, data, design.analysis[0], 0), data


def dummies(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([pd.get_dummies(frame["area"], prefix="u", dtype=float),
                      pd.get_dummies(frame["period"], prefix="t", drop_first=True, dtype=float)], axis=1)


STAGGERED = {"A0": month(6), "A1": month(6), "A2": month(10), "A3": month(14), "A4": month(14)}


# ----------------------------------------------------------------------------- linear TWFE
def test_linear_twfe_matches_dummy_regression_and_xtreg_convention(tmp_path):
    """Coefficient to 1e-10 and cluster SE to 1e-8 against OLS with dummies, unbalanced panel.

    Correction G/(G-1) (N-1)/(N-K), K = period effects + D + constant (unit effects nested
    in the area clusters are not counted): statsmodels' plain sandwich times that factor,
    and linearmodels PanelOLS with unit effects, [constant, period dummies, D] as regressors,
    debiased=True and group_debias=True (documented there as Stata's xtreg, fe vce(cluster)).
    """
    rng = np.random.default_rng(11)
    frame = simulated_panel(rng, STAGGERED, areas=12, periods=20, effect=0.4, missing=9)
    design = panel_design(tmp_path, frame, {"family": "linear", "inference": "analytic"}, STAGGERED)
    result, _ = fit_did(design)
    att = result.estimates[0]
    frame = frame.sort_values(["area", "period"]).reset_index(drop=True)
    start = frame["area"].map({k: v for k, v in STAGGERED.items()})
    frame["D"] = (start.notna() & (frame["period"] >= start.fillna("9999"))).astype(float)
    X = pd.concat([frame[["D"]], dummies(frame)], axis=1)
    ols = sm.OLS(frame["y"], X).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(frame["area"])[0],
                                                                  "use_correction": False})
    n, G, T = len(frame), frame["area"].nunique(), frame["period"].nunique()
    factor = G / (G - 1) * (n - 1) / (n - (T + 1))
    assert att.estimate == pytest.approx(ols.params["D"], abs=1e-10)
    assert att.se == pytest.approx(np.sqrt(ols.cov_params().loc["D", "D"] * factor), rel=1e-8)
    indexed = frame.assign(unit=pd.factorize(frame["area"])[0], time=pd.factorize(frame["period"], sort=True)[0])
    indexed = indexed.set_index(["unit", "time"])
    exog = pd.concat([pd.Series(1.0, index=indexed.index, name="const"), indexed[["D"]],
                      pd.get_dummies(indexed.index.get_level_values("time"), prefix="t", drop_first=True, dtype=float)
                      .set_index(indexed.index)], axis=1)
    xtreg = PanelOLS(indexed["y"], exog, entity_effects=True).fit(cov_type="clustered", cluster_entity=True,
                                                                  debiased=True, group_debias=True)
    assert att.se == pytest.approx(xtreg.std_errors["D"], rel=1e-8)
    # t(G - 1) interval and p-value
    crit = stats.t.ppf(0.975, G - 1)
    assert att.ci_low == pytest.approx(att.estimate - crit * att.se, rel=1e-12)
    assert att.p_value == pytest.approx(2 * stats.t.sf(abs(att.estimate / att.se), G - 1), rel=1e-10)
    assert att.scale == "difference" and att.details["fitted_by"] == "linearmodels PanelOLS"


def test_two_by_two_is_the_difference_of_four_means(tmp_path):
    rng = np.random.default_rng(3)
    adoption = {"A0": month(4), "A1": month(4), "A2": month(4)}
    frame = simulated_panel(rng, adoption, areas=8, periods=9, effect=1.0)
    design = panel_design(tmp_path, frame, {}, adoption)
    result, _ = fit_did(design)
    treated = frame["area"].isin(adoption)
    post = frame["period"] >= month(4)
    means = frame.groupby([treated, post])["y"].mean()
    closed_form = (means[True, True] - means[True, False]) - (means[False, True] - means[False, False])
    assert result.estimates[0].estimate == pytest.approx(closed_form, abs=1e-12)
    assert result.estimates[0].details["family"] == "linear"   # default for a continuous outcome
    names = {c.name for c in result.checks}
    assert "bacon_decomposition" not in names                   # common timing: nothing to decompose


# ----------------------------------------------------------------------------- Goodman-Bacon
def test_bacon_weights_sum_to_one_and_reproduce_twfe():
    rng = np.random.default_rng(5)
    units, periods = 19, 16
    adoption = np.array([3] * 4 + [7] * 5 + [12] * 3 + [NEVER] * 7)
    t = np.arange(periods)
    dynamic = np.where((adoption[:, None] != NEVER) & (t >= adoption[:, None]), 1 + 0.3 * (t - adoption[:, None]), 0)
    y = rng.normal(size=(units, periods)) + rng.normal(size=units)[:, None] + np.sin(t) + dynamic
    decomposition = bacon_decomposition(y, adoption)
    weights = np.array([c["weight"] for c in decomposition.comparisons])
    estimates = np.array([c["estimate"] for c in decomposition.comparisons])
    # the TWFE coefficient from an independent fit (OLS with dummies)
    frame = pd.DataFrame({"unit": np.repeat(np.arange(units), periods), "period": np.tile(t, units),
                          "y": y.ravel(), "D": ((adoption[:, None] != NEVER) & (t >= adoption[:, None])).ravel()})
    X = pd.concat([frame[["D"]].astype(float), pd.get_dummies(frame["unit"], prefix="u", dtype=float),
                   pd.get_dummies(frame["period"], prefix="t", drop_first=True, dtype=float)], axis=1)
    twfe = sm.OLS(frame["y"], X).fit().params["D"]
    assert weights.sum() == pytest.approx(1.0, abs=1e-10)
    assert weights @ estimates == pytest.approx(twfe, abs=1e-10)
    assert decomposition.twfe == pytest.approx(twfe, abs=1e-10)
    assert len(decomposition.comparisons) == 3 + 2 * 3
    # without never-treated units: timing comparisons only, still exact
    timing_only = bacon_decomposition(y[:12], adoption[:12])
    w = np.array([c["weight"] for c in timing_only.comparisons])
    b = np.array([c["estimate"] for c in timing_only.comparisons])
    assert w.sum() == pytest.approx(1.0, abs=1e-10)
    assert w @ b == pytest.approx(twfe_balanced(y[:12], (t >= adoption[:12, None]).astype(float)), abs=1e-10)


def test_bacon_check_warns_when_forbidden_comparisons_matter(tmp_path):
    # effects that grow with time since adoption, few never-treated units: later-vs-earlier
    # comparisons carry weight and pull the TWFE estimate the wrong way
    rng = np.random.default_rng(8)
    adoption = {"A0": month(3), "A1": month(3), "A2": month(3), "A3": month(9), "A4": month(9), "A5": month(9)}
    frame = simulated_panel(rng, adoption, areas=7, periods=16)
    start = frame["area"].map(lambda a: pd.Period(adoption[a], freq="M") if a in adoption else None)
    since = [(pd.Period(p, freq="M") - s).n if s is not None and pd.Period(p, freq="M") >= s else -1
             for p, s in zip(frame["period"], start)]
    frame["y"] += np.where(np.array(since) >= 0, 0.5 * (np.array(since) + 1), 0.0)
    design = panel_design(tmp_path, frame, {"family": "linear"}, adoption)
    result, _ = fit_did(design)
    check = next(c for c in result.checks if c.name == "bacon_decomposition")
    assert check.status == "warn"
    assert check.values["summary"]["later_vs_earlier"]["weight"] > 0.10
    assert check.values["weights_sum"] == pytest.approx(1.0, abs=1e-10)
    total = sum(c["weight"] * c["estimate"] for c in check.values["comparisons"])
    assert total == pytest.approx(result.estimates[0].estimate, abs=1e-10)  # balanced, no phase-in
    assert result.analysis.series["bacon"] == check.values["comparisons"]


# ----------------------------------------------------------------------------- Poisson (PPML)
def glm_cluster(frame, X, offset):
    groups = pd.factorize(frame["area"])[0]
    return sm.GLM(frame["y"], X, family=sm.families.Poisson(), offset=offset).fit(
        tol=1e-14, cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False})


def test_poisson_twfe_matches_statsmodels_glm(tmp_path):
    """Common timing: exp(b) and the cluster SE (G/(G-1) correction) against GLM with dummies, to 1e-8."""
    rng = np.random.default_rng(21)
    adoption = {"A0": month(8), "A1": month(8), "A2": month(8)}
    frame = simulated_panel(rng, adoption, areas=9, periods=18, effect=np.log(0.88), counts=True)
    frame.loc[frame.index[::17], "y"] = 0.0      # zeros are fine: nothing is logged
    design = panel_design(tmp_path, frame, {"inference": "analytic"}, adoption, measure="count", exposure=True, per=1000)
    result, _ = fit_did(design)
    att = result.estimates[0]
    frame = frame.sort_values(["area", "period"]).reset_index(drop=True)
    frame["D"] = (frame["area"].isin(adoption) & (frame["period"] >= month(8))).astype(float)
    glm = glm_cluster(frame, pd.concat([frame[["D"]], dummies(frame)], axis=1), np.log(frame["children"]))
    G = frame["area"].nunique()
    assert att.scale == "ratio"
    assert att.estimate == pytest.approx(np.exp(glm.params["D"]), rel=1e-8)
    assert att.se == pytest.approx(np.sqrt(glm.cov_params().loc["D", "D"] * G / (G - 1)), rel=1e-8)
    assert att.ci_low == pytest.approx(np.exp(glm.params["D"] - stats.norm.ppf(0.975) * att.se), rel=1e-8)
    # the absolute translation: sum of fitted with minus without the effect over treated post rows
    post = frame["D"] == 1
    mu = glm.fittedvalues[post]
    assert att.details["absolute"] == pytest.approx((mu - mu / np.exp(glm.params["D"])).sum(), rel=1e-8)
    assert att.details["expected_with"] == pytest.approx(frame.loc[post, "y"].sum(), rel=1e-9)
    assert att.details["per_year"] == pytest.approx(att.details["absolute"] / post.sum() * 12 * 3, rel=1e-12)


@pytest.mark.parametrize("control_group", ["not_yet_treated", "never_treated"])
def test_extended_twfe_poisson_matches_glm_with_cohort_period_cells(tmp_path, control_group):
    """Staggered: Wooldridge's cohort x period cells; the aggregated ratio and its delta-method SE.

    not_yet_treated: cells for post-adoption periods only; never_treated: for every period of
    a cohort but its last pre-adoption one (etwfe's cgroup = "never").
    """
    rng = np.random.default_rng(4)
    frame = simulated_panel(rng, STAGGERED, areas=10, periods=20, effect=np.log(0.85), counts=True)
    design = panel_design(tmp_path, frame, {"control_group": control_group}, STAGGERED, measure="count",
                          exposure=True, transition=2)
    result, _ = fit_did(design)
    att = result.estimates[0]
    assert att.details["estimator"] == "extended_twfe"
    frame = frame.sort_values(["area", "period"]).reset_index(drop=True)
    start = frame["area"].map(STAGGERED)
    phase = start.notna() & (frame["period"] >= start.fillna("9999")) & \
        (frame["period"] < start.fillna("9999").map(lambda s: month(999) if s == "9999" else str(pd.Period(s, "M") + 2)))
    kept = frame.loc[~phase].reset_index(drop=True)
    kstart = kept["area"].map(STAGGERED)
    post = kstart.notna() & (kept["period"] >= kstart.fillna("9999"))
    in_cell = post.copy()
    if control_group == "never_treated":
        reference = kstart.map(lambda s: str(pd.Period(s, "M") - 1) if isinstance(s, str) else None)
        in_cell |= kstart.notna() & (kept["period"] < reference.fillna(""))
    cells = pd.get_dummies(np.where(in_cell, kstart.fillna("") + "|" + kept["period"], "none"), dtype=float)
    cells = cells.drop(columns="none")
    X = pd.concat([dummies(kept), cells], axis=1)
    glm = glm_cluster(kept, X, np.log(kept["children"]))
    G = kept["area"].nunique()

    def log_ratio(params):
        eta = X.to_numpy() @ params + np.log(kept["children"].to_numpy())
        eta0 = X[dummies(kept).columns].to_numpy() @ params[: dummies(kept).shape[1]] + np.log(kept["children"].to_numpy())
        return np.log(np.exp(eta[post.to_numpy()]).sum() / np.exp(eta0[post.to_numpy()]).sum())

    params = glm.params.to_numpy()
    assert np.log(att.estimate) == pytest.approx(log_ratio(params), abs=1e-8)
    step = 1e-6
    grad = np.array([(log_ratio(params + step * e) - log_ratio(params - step * e)) / (2 * step)
                     for e in np.eye(len(params))])
    se = np.sqrt(grad @ glm.cov_params().to_numpy() @ grad * G / (G - 1))
    assert att.se == pytest.approx(se, rel=1e-6)
    cohorts = {c["adoption"]: c for c in att.details["cohorts"]}
    assert set(cohorts) == {month(6), month(10), month(14)}
    assert "twfe_ratio" in att.details


def test_pre_trend_check_detects_diverging_pre_trends(tmp_path):
    rng = np.random.default_rng(12)
    adoption = {f"A{i}": month(30) for i in range(4)}
    frame = simulated_panel(rng, adoption, areas=12, periods=40, counts=True, scale=10.0)
    parallel, _ = fit_did(panel_design(tmp_path, frame, {"inference": "analytic"}, adoption, measure="count", exposure=True))
    check = next(c for c in parallel.checks if c.name == "pre_trends")
    assert check.status == "pass" and check.values["df"] == 2 and check.values["clusters"] == 12
    # the treated areas' counts grow 2% a month before adoption
    t = frame["period"].map(lambda p: (pd.Period(p, "M") - pd.Period(month(0), "M")).n)
    treated = frame["area"].isin(adoption)
    frame.loc[treated, "y"] = np.round(frame.loc[treated, "y"] * np.exp(0.02 * (t[treated] - 30))).astype(float)
    diverging, _ = fit_did(panel_design(tmp_path, frame, {"inference": "analytic"}, adoption, measure="count", exposure=True))
    check = next(c for c in diverging.checks if c.name == "pre_trends")
    assert check.status == "fail" and check.values["test"] == "pre_adoption_yearly_bins_hotelling"
    assert check.values["bins"][0]["years_before"] == 2 and check.values["bins"][0]["estimate"] < 0.85
    # with randomization inference the pre-trend p-value is by randomization too
    randomized, _ = fit_did(panel_design(tmp_path, frame, {"inference": "randomization", "reps": 99}, adoption,
                                         measure="count", exposure=True))
    check = next(c for c in randomized.checks if c.name == "pre_trends")
    assert check.values["test"] == "pre_adoption_yearly_bins_randomization"
    assert check.values["randomization"]["exhaustive"] and check.values["randomization"]["n_assignments"] == 495
    assert check.values["p_value"] == pytest.approx(1 / 495 * round(check.values["p_value"] * 495), abs=1e-12)


def test_poisson_fit_against_glm_with_separated_cells():
    """A cohort-period cell with no counts: left out (mean 0), the rest as GLM without those rows."""
    rng = np.random.default_rng(2)
    U, T = 6, 10
    unit, time = np.repeat(np.arange(U), T), np.tile(np.arange(T), U)
    cell = np.where((unit < 2) & (time >= 5), time - 5, -1)
    y = rng.poisson(3.0, U * T).astype(float)
    y[(cell == 2)] = 0.0
    design = FixedEffectsDesign(unit, time, cell, U, T, 5)
    from evalkit.methods.did.twfe import compact, separated

    drop = separated(design, y)
    assert drop.sum() == 2 and np.all(cell[drop] == 2)
    kept, _ = compact(design, ~drop)
    mine = fit_poisson(kept, y[~drop])
    glm = sm.GLM(y[~drop], kept.X.toarray(), family=sm.families.Poisson()).fit(tol=1e-14)
    assert mine.converged
    assert np.max(np.abs(mine.params - glm.params)) < 1e-8


# ----------------------------------------------------------------------------- randomization inference
def test_randomization_exact_p_in_an_enumerable_case():
    # four areas, two periods; changes (post - pre) 5, 3, 1, 0; A0 and A1 treated.
    # DiD for the 6 assignments: 3.5, 1.5, 0.5, -0.5, -1.5, -3.5 -> |T| >= 3.5 twice: p = 2/6
    change = {"A0": 5.0, "A1": 3.0, "A2": 1.0, "A3": 0.0}

    def did(assignment):
        treated = [change[u] for u in change if u in assignment]
        control = [change[u] for u in change if u not in assignment]
        return np.mean(treated) - np.mean(control)

    test = randomization_test(did, list(change), {"A0": "2020-02", "A1": "2020-02"}, np.random.default_rng(0))
    assert test.exhaustive and test.n_assignments == 6
    assert test.p_value == pytest.approx(2 / 6, abs=1e-15)
    assert sorted(np.round(test.statistics, 12)) == [-3.5, -1.5, -0.5, 0.5, 1.5, 3.5]


def test_randomization_through_did_matches_hand_enumeration(tmp_path):
    rows = []
    for area, (pre, post) in {"A0": (1, 6), "A1": (2, 5), "A2": (4, 5), "A3": (3, 3)}.items():
        rows += [{"area": area, "period": month(0), "y": pre}, {"area": area, "period": month(1), "y": post}]
    design = panel_design(tmp_path, pd.DataFrame(rows), {"inference": "randomization"},
                          {"A0": month(1), "A1": month(1)})
    result, _ = fit_did(design)
    att = result.estimates[0]
    assert att.estimate == pytest.approx(3.5, abs=1e-12)
    assert att.p_value == pytest.approx(1 / 3, abs=1e-12)
    assert att.details["randomization"]["exhaustive"]
    check = next(c for c in result.checks if c.name == "few_treated")
    # only 6 assignments: p can never fall below 1/6 > 0.05
    assert check.status == "warn" and "cannot reject" in check.detail
    settings = result.analysis.settings
    assert settings["inference"] == "randomization"
    assert settings["inference_reason"].startswith("randomization inference: only 2 areas adopted")


def test_distinct_assignments_enumerates_the_multiset():
    values = ["a", "a", "b", None, None]
    assignments = list(distinct_assignments(values))
    assert len(assignments) == len(set(assignments)) == count_assignments(values) == 30
    assert all(sorted(map(str, a)) == sorted(map(str, values)) for a in assignments)


def _two_by_two(y: np.ndarray, treated: np.ndarray, post: int) -> float:
    change = y[:, post:].mean(axis=1) - y[:, :post].mean(axis=1)
    return change[treated].mean() - change[~treated].mean()


@pytest.mark.slow
def test_randomization_rejects_at_nominal_rate_under_the_null():
    """400 null data sets with area-level serial correlation; exact (120 assignments) and drawn p-values.

    Rejection at 5% must lie within 3 binomial standard errors of 0.05 (0.017..0.083), and
    with a planted effect the test must have power.
    """
    rng = np.random.default_rng(2024)
    areas, periods, post = 10, 8, 4
    units = [f"A{i}" for i in range(areas)]
    adoption = {u: 4 for u in units[:3]}
    n_sims = 400
    rejected_exact = rejected_drawn = powered = 0
    for _ in range(n_sims):
        y = rng.normal(size=(areas, 1)) + np.cumsum(rng.normal(0, 0.5, (areas, periods)), axis=1)

        def statistic(assignment, data=y):
            return _two_by_two(data, np.array([u in assignment for u in units]), post)

        exact = randomization_test(statistic, units, adoption, rng)
        drawn = randomization_test(statistic, units, adoption, rng, reps=99, max_enumerate=50)
        assert exact.exhaustive and not drawn.exhaustive
        rejected_exact += exact.p_value <= 0.05
        rejected_drawn += drawn.p_value <= 0.05
        shifted = y.copy()
        shifted[:3, post:] += 3.0
        powered += randomization_test(lambda a, d=shifted: _two_by_two(d, np.array([u in a for u in units]), post),
                                      units, adoption, rng).p_value <= 0.05
    bound = 3 * np.sqrt(0.05 * 0.95 / n_sims)
    assert abs(rejected_exact / n_sims - 0.05) < bound
    assert abs(rejected_drawn / n_sims - 0.05) < bound
    assert powered / n_sims > 0.8


# ----------------------------------------------------------------------------- wild cluster bootstrap
def wcr_panel():
    return pd.read_csv(FIXTURES / "wcr_panel.csv")


def test_wild_cluster_matches_wildboottest_full_enumeration():
    """8 clusters, Rademacher weights, every sign vector: the p-value and t of wildboottest 0.3.2."""
    reference = json.loads((FIXTURES / "wildboottest_reference.json").read_text())
    panel = wcr_panel()
    project = TwoWayProjection(panel["area"].to_numpy(), panel["period"].to_numpy(), 8, 6)
    W, enumerated = draw_weights(np.random.default_rng(0), 8, 999, "rademacher")
    assert enumerated and W.shape == (8, 256) == (8, reference["draws"])
    result = bootstrap_t(panel["y"].to_numpy(), panel[["treated"]].to_numpy(float), panel["area"].to_numpy(), 0, W,
                         project, correction=reference["small_sample_factor"])
    assert result.t_stat == pytest.approx(reference["t_stat"], rel=1e-10)
    assert result.p_value == reference["p_value"]


def test_wild_cluster_fast_algorithm_equals_a_slow_loop():
    """Every bootstrap t of the O(G^2) algorithm against refitting OLS with dummies per draw (Webb weights)."""
    panel = wcr_panel()
    area, period = panel["area"].to_numpy(), panel["period"].to_numpy()
    y, d = panel["y"].to_numpy(), panel["treated"].to_numpy(float)
    project = TwoWayProjection(area, period, 8, 6)
    W, _ = draw_weights(np.random.default_rng(9), 8, 60, "webb")
    assert set(np.round(np.abs(W.ravel()) ** 2, 12)) <= {0.5, 1.0, 1.5}
    fast = bootstrap_t(y, d[:, None], area, 0, W, project, null=0.1)
    Z = dummies(panel.assign(area=area.astype(str), period=period.astype(str))).to_numpy()
    restricted = sm.OLS(y - 0.1 * d, Z).fit()
    slow = []
    for b in range(W.shape[1]):
        y_star = restricted.fittedvalues + 0.1 * d + restricted.resid * W[area, b]
        fit = sm.OLS(y_star, np.column_stack([d, Z])).fit(cov_type="cluster",
                                                         cov_kwds={"groups": area, "use_correction": False})
        slow.append((fit.params[0] - 0.1) / fit.bse[0])
    assert np.max(np.abs(fast.t_boot - np.array(slow))) < 1e-8
    original = sm.OLS(y, np.column_stack([d, Z])).fit(cov_type="cluster", cov_kwds={"groups": area,
                                                                                     "use_correction": False})
    assert fast.t_stat == pytest.approx((original.params[0] - 0.1) / original.bse[0], rel=1e-10)
    assert fast.p_value == pytest.approx(np.mean(np.abs(slow) > abs(fast.t_stat)), abs=1e-15)


def test_wild_cluster_interval_inverts_the_test():
    panel = wcr_panel()
    project = TwoWayProjection(panel["area"].to_numpy(), panel["period"].to_numpy(), 8, 6)
    args = (panel["y"].to_numpy(), panel[["treated"]].to_numpy(float), panel["area"].to_numpy(), 0)
    result = wild_cluster_bootstrap(*args, np.random.default_rng(1), reps=999, project=project, ci_level=0.95)
    assert result.ci_low < result.estimate < result.ci_high
    W, _ = draw_weights(np.random.default_rng(1), 8, 999, "webb")
    tolerance = 1e-5 * result.se
    for end, outward in ((result.ci_low, -1), (result.ci_high, 1)):
        inside = bootstrap_t(*args, W, project, null=end - outward * tolerance).p_value
        outside = bootstrap_t(*args, W, project, null=end + outward * tolerance).p_value
        assert inside >= 0.05 > outside


def test_wild_cluster_through_did(tmp_path):
    rng = np.random.default_rng(17)
    adoption = {"A0": month(6), "A1": month(6), "A2": month(9)}
    frame = simulated_panel(rng, adoption, areas=10, periods=14, effect=0.5)
    design = panel_design(tmp_path, frame, {"family": "linear", "inference": "wild_cluster", "reps": 199}, adoption)
    result, _ = fit_did(design)
    att = result.estimates[0]
    assert att.details["inference"] == "wild_cluster"
    assert att.details["wild_cluster"]["weights"] == "webb" and att.details["wild_cluster"]["reps"] == 199
    assert att.ci_low < att.estimate < att.ci_high
    assert att.p_value == att.details["wild_cluster"]["p_value"]
    reason = result.analysis.settings["inference_reason"]
    assert reason.startswith("restricted wild cluster bootstrap with Webb weights: only 3 areas adopted")
    again, _ = fit_did(design)
    assert again.estimates[0].p_value == att.p_value and again.estimates[0].ci_low == att.ci_low


# ----------------------------------------------------------------------------- the method end to end
def test_planted_rate_ratio_is_recovered_with_randomization_inference(tmp_path):
    rng = np.random.default_rng(31)
    # about 200-900 reports per area and month: the planted ratio is estimated to about 1%
    frame = simulated_panel(rng, STAGGERED, areas=12, periods=24, effect=np.log(0.88), counts=True, scale=10.0)
    design = panel_design(tmp_path, frame, {"inference": "randomization", "reps": 99}, STAGGERED,
                          measure="count", exposure=True, per=1000)
    result, _ = fit_did(design)
    att = result.estimates[0]
    assert att.estimate == pytest.approx(0.88, abs=0.02)
    assert att.details["randomization"]["reps"] == 99 and not att.details["randomization"]["exhaustive"]
    assert att.p_value <= 0.05
    checks = {c.name: c for c in result.checks}
    assert checks["few_treated"].status == "warn"              # 5 treated areas
    assert checks["pre_trends"].values["p_value"] > 0.0
    series = result.analysis.series
    assert len(series["treated"]["observed"]) == len(series["periods"]) == 24
    assert series["randomization"]["observed"] == pytest.approx(np.log(att.estimate))
    assert len(series["event_study"]) == len(att.details.get("cells", [])) > 0
    # results.json holds plain values only
    results = evalkit.run(design)
    json.loads(results.to_json_text())
    assert results.evidence["headline_method"] == "did"


def test_options_that_did_refuses_have_one_line_errors(tmp_path):
    rng = np.random.default_rng(1)
    adoption = {"A0": month(4)}
    frame = simulated_panel(rng, adoption, areas=4, periods=8, counts=True).assign(x=1.0)
    # options of staggered_did are refused when the design loads, not when it is fitted
    for options, message in (({"inference": "multiplier_bootstrap"}, r"'multiplier_bootstrap' is not allowed"),
                              ({"covariates": ["x"]}, r"unknown key 'covariates'"),
                              ({"estimation": "ipw"}, r"unknown key 'estimation'")):
        with pytest.raises(evalkit.EvalkitError, match=message) as info:
            panel_design(tmp_path, frame, options, adoption, measure="count")
        assert "\n" not in info.value.message and "analysis[0]" in info.value.message
    # an option that clashes with the outcome is refused at load too (issue 14), naming the key
    for options, measure, message in (({"inference": "wild_cluster"}, "count", r"analysis\[0\]\.inference: inference: "
                                       "wild_cluster is for the linear TWFE"),
                                      ({"family": "poisson"}, "continuous", r"analysis\[0\]\.family: family: poisson "
                                       "needs a count outcome")):
        with pytest.raises(evalkit.EvalkitError, match=message) as info:
            panel_design(tmp_path, frame, options, adoption, measure=measure)
        assert "\n" not in info.value.message
    with pytest.raises(evalkit.EvalkitError, match=r"'negbin' is not allowed"):
        design_from_mapping({**_raw(tmp_path), "analysis": [{"method": "did", "outcome": "y", "family": "negbin"}]})


def _raw(tmp_path):
    import yaml

    return yaml.safe_load((tmp_path / "design.yaml").read_text())


def test_analytic_inference_with_few_treated_areas_advises_alternatives(tmp_path):
    rng = np.random.default_rng(6)
    adoption = {"A0": month(5), "A1": month(5)}
    frame = simulated_panel(rng, adoption, areas=8, periods=12, counts=True)
    design = panel_design(tmp_path, frame, {"inference": "analytic"}, adoption, measure="count")
    result, _ = fit_did(design)
    check = next(c for c in result.checks if c.name == "few_treated")
    assert check.status == "warn" and "inference: randomization" in check.detail
    assert "over-reject" in result.analysis.settings["inference_reason"]
    text = textwrap.shorten(result.analysis.label, 200)
    assert "Poisson" in text and "2 treated vs 6 comparison" in text


# ----------------------------------------------------------------------------- one inference per analysis (issue 12)
def _one_adopter_design(tmp_path, inference="randomization"):
    rng = np.random.default_rng(44)
    adoption = {"A0": month(12)}
    frame = simulated_panel(rng, adoption, areas=10, periods=24, effect=np.log(0.84), counts=True, scale=10.0)
    return panel_design(tmp_path, frame, {"inference": inference}, adoption, measure="count", exposure=True, per=1000)


def test_exactly_one_over_alpha_assignments_give_no_interval_either(tmp_path):
    """1 adopting area of 20: the smallest p is 0.05, which is not below alpha, so no null is ever rejected."""
    rng = np.random.default_rng(4)
    adoption = {"A0": month(12)}
    frame = simulated_panel(rng, adoption, areas=20, periods=24, effect=np.log(0.84), counts=True, scale=10.0)
    design = panel_design(tmp_path, frame, {"inference": "randomization"}, adoption, measure="count", exposure=True,
                          per=1000)
    att = evalkit.run(design).estimate("att")
    assert att.details["randomization"]["interval"]["reason"] == "too_few_assignments"
    assert att.ci_low is None and att.ci_high is None and att.details["test_rejects"] is False
    assert att.details["interval_note"].startswith("with one adopting area among 20 no interval at 95% is possible")


def test_one_adopting_area_has_no_randomization_interval_and_no_verdict(tmp_path):
    from evalkit.report.render import render_html

    design = _one_adopter_design(tmp_path)
    results = evalkit.run(design)
    att = results.estimate("att")
    # 10 assignments: p can never fall below 0.1, so no effect is ever rejected
    assert att.p_value == pytest.approx(0.1) and att.details["test_rejects"] is False
    assert att.ci_low is None and att.ci_high is None
    assert att.details["inference"] == "randomization"
    assert att.details["interval_method"] == "randomization test inversion"
    assert att.details["interval_note"].startswith("with one adopting area among 10 no interval at 95% is possible")
    assert att.details["randomization"]["interval"]["reason"] == "too_few_assignments"
    # the analytic interval stays in the details only
    assert att.details["ci_high_analytic"] < 1.0
    headline = results.evidence["headline"]
    assert "little or no clear difference" in headline and "no interval at 95% is possible" in headline
    assert "may have reduced" not in headline and "likely range" not in headline
    assert att.details["per_year_ci_low"] is None
    assert "police_cost_saved_range" not in (results.evidence.get("economics") or {})
    html = render_html(results)
    assert "no interval: with one adopting area" in html
    # analytic inference, declared, keeps its own interval and verdict
    analytic = evalkit.run(_one_adopter_design(tmp_path, "analytic")).estimate("att")
    assert analytic.ci_high < 1.0 and analytic.details["interval_method"] == "Wald (cluster-robust by area)"


def _randomization_p(sample, estimator, assignments, theta):
    from dataclasses import replace

    from evalkit.inference.randomization import p_value_of
    from evalkit.methods.did.estimate import estimate, post_rows

    positions = sample.positions(assignments[0])
    treated_post = post_rows(sample, positions).astype(float)
    if sample.family == "poisson":
        shifted = replace(sample, exposure=(sample.exposure if sample.exposure is not None else 1.0)
                          * np.exp(theta * treated_post))
    else:
        shifted = replace(sample, y=sample.y - theta * treated_post)
    return p_value_of(np.array([estimate(shifted, sample.positions(a), estimator, covariance=False).statistic
                                for a in assignments]))


def _rebuild(design, result):
    from evalkit.data import load_data
    from evalkit.inference.randomization import randomization_test
    from evalkit.methods.did.did import _sample

    data = load_data(design)
    spec = design.analysis[0]
    sample = _sample(design, data, design.outcome(spec.outcome), result.analysis.settings["family"], spec, "k")
    adoption = {u: data.adoption[u] for u in sample.units if u in data.adoption}
    test = randomization_test(lambda a: 0.0, sample.units, adoption, np.random.default_rng(0), reps=spec.reps,
                              max_enumerate=5000)
    return sample, test.assignments


@pytest.mark.parametrize("family", ["linear", "poisson"])
def test_randomization_interval_is_the_set_of_effects_not_rejected(tmp_path, family):
    rng = np.random.default_rng(46)
    adoption = {"A0": month(8), "A1": month(8), "A2": month(8)}
    counts = family == "poisson"
    frame = simulated_panel(rng, adoption, areas=9, periods=16, effect=np.log(0.8) if counts else -0.8,
                            counts=counts, scale=20.0)
    kwargs = {"measure": "count", "exposure": True, "per": 1000} if counts else {}
    design = panel_design(tmp_path, frame, {"family": family, "inference": "randomization"}, adoption, **kwargs)
    result, _ = fit_did(design)
    att = result.estimates[0]
    assert att.details["randomization"]["exhaustive"] and att.details["randomization"]["n_assignments"] == 84
    assert att.ci_low < att.estimate < att.ci_high
    # the verdict and the interval agree: no effect lies outside the interval exactly when p < alpha
    null = 1.0 if counts else 0.0
    assert (att.ci_low <= null <= att.ci_high) == (att.p_value >= 0.05) == (not att.details["test_rejects"])
    sample, assignments = _rebuild(design, result)
    to_theta = np.log if counts else (lambda v: v)
    se = att.se
    step = 1e-6 * se if not counts else 0.02 * se        # Poisson ends: interpolated between refits
    for end, outward in ((to_theta(att.ci_low), -1), (to_theta(att.ci_high), 1)):
        assert _randomization_p(sample, "twfe", assignments, end - outward * step) >= 0.05
        assert _randomization_p(sample, "twfe", assignments, end + outward * step) < 0.05
    assert att.details["p_value_analytic"] != att.p_value
    assert _randomization_p(sample, "twfe", assignments, 0.0) == pytest.approx(att.p_value)


def test_wild_cluster_names_its_interval(tmp_path):
    rng = np.random.default_rng(17)
    adoption = {"A0": month(6), "A1": month(6), "A2": month(9)}
    frame = simulated_panel(rng, adoption, areas=10, periods=14, effect=0.5)
    design = panel_design(tmp_path, frame, {"family": "linear", "inference": "wild_cluster", "reps": 199}, adoption)
    att = fit_did(design)[0].estimates[0]
    assert att.details["interval_method"] == "wild cluster bootstrap test inversion"
    assert att.details["test_rejects"] == (att.p_value < 0.05) == (not att.ci_low <= 0 <= att.ci_high)


def test_the_default_inference_follows_the_number_of_adopting_areas(tmp_path):
    """auto: randomization below 20 adopting areas (analytic intervals covered 80.5% with 3 of 15),
    analytic from 20; the reason is stated."""
    rng = np.random.default_rng(12)
    few = {f"A{i}": month(8) for i in range(3)}
    frame = simulated_panel(rng, few, areas=15, periods=16, counts=True)
    att = evalkit.run(panel_design(tmp_path, frame, {}, few, measure="count")).estimate("att")
    assert att.details["inference"] == "randomization" and att.details["interval_method"] == "randomization test inversion"
    many = {f"A{i}": month(8) for i in range(20)}
    frame = simulated_panel(rng, many, areas=30, periods=12, counts=True)
    results = evalkit.run(panel_design(tmp_path, frame, {}, many, measure="count"))
    assert results.estimate("att").details["inference"] == "analytic"
    assert "chosen by default" in results.analyses[0].settings["inference_reason"]
