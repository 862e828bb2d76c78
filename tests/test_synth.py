"""Synthetic control against the published Basque weights and independently computed references."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.optimize import minimize

import evalkit
from evalkit.design import design_from_mapping
from evalkit.errors import EvalkitError
from evalkit.methods.synth.core import fit_weights, simplex_least_squares, standardise_predictors

from .conftest import ROOT

BASQUE_DESIGN = ROOT / "designs" / "basque_synth.yaml"
BASQUE_CSV = ROOT / "examples" / "basque" / "basque.csv"
BASQUE = "Basque Country (Pais Vasco)"
CATALUNA, MADRID = "Cataluna", "Madrid (Comunidad De)"
SECTORS = ["sec.agriculture", "sec.energy", "sec.industry", "sec.construction", "sec.services.venta",
           "sec.services.nonventa"]
SCHOOLING = ["school.illit", "school.prim", "school.med", "school.high", "school.post.high"]


def basque_raw() -> dict:
    return yaml.safe_load(BASQUE_DESIGN.read_text())


def basque_design(tmp_path=None, csv=None, **options):
    raw = basque_raw()
    raw["analysis"][0].update(options)
    raw["analysis"][0] = {k: v for k, v in raw["analysis"][0].items() if v is not None}
    if csv is not None:
        raw["data"]["source"] = str(csv)
    return design_from_mapping(raw, path=BASQUE_DESIGN if tmp_path is None else tmp_path / "basque.yaml")


def donor_names(raw: dict) -> list[str]:
    return list(raw["units"]["comparison"])


def basque_matrices(scale: float = 1.0):
    """Abadie & Gardeazabal's X (predictors) and Z (gdpcap 1960-1969), built here from the CSV."""
    frame = pd.read_csv(BASQUE_CSV)
    frame["gdpcap"] *= scale
    units = [BASQUE] + donor_names(basque_raw())

    def mean(column, years):
        rows = frame[frame["year"].isin(list(years))]
        return rows.groupby("regionname")[column].mean().reindex(units).to_numpy()

    rows = [mean(c, range(1964, 1970)) for c in SCHOOLING + ["invest"]]
    rows.append(mean("gdpcap", range(1960, 1970)))
    rows += [mean(c, range(1961, 1970, 2)) for c in SECTORS]
    rows.append(mean("popdens", [1969]))
    X = np.vstack(rows)
    Z = frame[frame["year"].between(1960, 1969)].pivot(index="year", columns="regionname", values="gdpcap")[units]
    return X, Z.to_numpy(), units


# ----------------------------------------------------------------------------- Basque (published)
@pytest.fixture(scope="module")
def basque_results():
    return evalkit.run(basque_design())


@pytest.mark.slow
@pytest.mark.reference
def test_basque_published_weights(basque_results):
    # Abadie & Gardeazabal (2003); R Synth's basque example; pysyncon's test suite:
    # Cataluna 0.850816, Madrid 0.149184 (pysyncon, Nelder-Mead from equal V).
    att = basque_results.estimate("att", method="synthetic_control")
    weights = att.details["weights"]
    assert weights[CATALUNA] == pytest.approx(0.8508, abs=1e-3)
    assert weights[MADRID] == pytest.approx(0.1492, abs=1e-3)
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-12)
    assert all(w < 1e-6 for name, w in weights.items() if name not in (CATALUNA, MADRID))
    # the nested optimum in this basin is the outcome-MSPE minimiser along the segment
    # Cataluna-Madrid, a one-dimensional least squares computed here in closed form
    _, Z, units = basque_matrices()
    cat, mad = Z[:, units.index(CATALUNA)], Z[:, units.index(MADRID)]
    direction, target = cat - mad, Z[:, 0] - mad
    w_cat = direction @ target / (direction @ direction)
    assert weights[CATALUNA] == pytest.approx(w_cat, abs=1e-5)
    analysis = next(a for a in basque_results.analyses if a.method == "synthetic_control")
    assert analysis.settings["loss_v"] == pytest.approx(np.mean((target - w_cat * direction) ** 2), rel=1e-6)
    assert analysis.settings["loss_v"] == pytest.approx(0.0088645, abs=1e-7)  # R Synth's loss.v


@pytest.mark.slow
@pytest.mark.reference
def test_basque_predictor_table_and_series(basque_results):
    analysis = next(a for a in basque_results.analyses if a.method == "synthetic_control")
    series = analysis.series
    X, _, units = basque_matrices()
    table = series["predictors"]
    assert [row["name"].split(" ")[0] for row in table] == SCHOOLING + ["invest", "gdpcap"] + SECTORS + ["popdens"]
    np.testing.assert_allclose([row["treated"] for row in table], X[:, 0], rtol=1e-12)
    np.testing.assert_allclose([row["donor_mean"] for row in table], X[:, 1:].mean(axis=1), rtol=1e-12)
    assert table[-1]["name"] == "popdens (1969)"
    assert sum(row["v"] for row in table) == pytest.approx(1.0)
    frame = pd.read_csv(BASQUE_CSV)
    wide = frame.pivot(index="year", columns="regionname", values="gdpcap")
    weights = {row["unit"]: row["weight"] for row in series["weights"]}
    synthetic = sum(wide[name] * w for name, w in weights.items())
    np.testing.assert_allclose(series["treated"], wide[BASQUE].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(series["synthetic"], synthetic.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(series["gap"], (wide[BASQUE] - synthetic).to_numpy(), rtol=1e-9, atol=1e-12)
    assert series["periods"][series["start_index"]] == "1970"
    assert series["weights"][0]["unit"] == CATALUNA
    assert set(series["placebo_gaps"]) == set(donor_names(basque_raw()))
    att = basque_results.estimate("att", method="synthetic_control")
    post = wide.loc[1970:1997]
    assert att.estimate == pytest.approx((post[BASQUE] - sum(post[n] * w for n, w in weights.items())).mean(), rel=1e-9)
    # placebo_p: the treated unit's post/pre RMSPE ratio ranked among all 17 units
    placebo_p = basque_results.estimate("placebo_p")
    ratios = series["rmspe_ratio"]
    expected_rank = 1 + sum(r >= ratios["treated"] for name, r in ratios.items() if name != "treated")
    assert placebo_p.estimate == pytest.approx(expected_rank / 17)
    gap = np.array(series["gap"])
    pre, post_mask = np.arange(len(gap)) < 15, np.arange(len(gap)) >= 15
    assert ratios["treated"] == pytest.approx(np.sqrt(np.mean(gap[post_mask] ** 2) / np.mean(gap[pre] ** 2)), rel=1e-9)
    # 17 units: no placebo test can reach p < 0.05, and the report must say so
    checks = {c.name: c for c in basque_results.checks if c.method == "synthetic_control"}
    assert checks["placebo_resolution"].status == "warn"
    assert checks["pre_period_fit"].status == "pass"
    # the Basque Country's industry share is above every other region's
    assert checks["convex_hull"].status == "warn"
    assert any(name.startswith("sec.industry") for name in checks["convex_hull"].values["predictors_outside"])
    json.loads(basque_results.to_json_text())


# ----------------------------------------------------------------------------- outcome-only and scale
def reference_simplex_ls(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Direct constrained least squares: SLSQP on the problem rescaled to order one, tight tolerance."""
    s = np.abs(A).max()
    A, b = A / s, b / s
    n = A.shape[1]
    result = minimize(lambda w: np.sum((A @ w - b) ** 2), np.full(n, 1 / n), jac=lambda w: 2 * A.T @ (A @ w - b),
                      method="SLSQP", bounds=[(0, 1)] * n,
                      constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones(n)}],
                      options={"ftol": 1e-15, "maxiter": 1000})
    assert result.success
    return result.x


def outcome_only_weights(results) -> dict:
    return results.estimate("att", method="synthetic_control").details["weights"]


def test_outcome_only_fit_matches_direct_constrained_least_squares(tmp_path):
    results = evalkit.run(basque_design(tmp_path, csv=BASQUE_CSV, predictors=[], predictors_window=None,
                                        fit_window=None))
    weights = outcome_only_weights(results)
    frame = pd.read_csv(BASQUE_CSV)
    wide = frame[frame["year"] < 1970].pivot(index="year", columns="regionname", values="gdpcap")
    donors = donor_names(basque_raw())
    reference = reference_simplex_ls(wide[donors].to_numpy(), wide[BASQUE].to_numpy())
    np.testing.assert_allclose([weights[d] for d in donors], reference, atol=1e-6)
    ours = np.array([weights[d] for d in donors])
    loss = lambda w: np.mean((wide[BASQUE].to_numpy() - wide[donors].to_numpy() @ w) ** 2)  # noqa: E731
    assert loss(ours) <= loss(reference) * (1 + 1e-9)


@pytest.mark.parametrize("scale", [1e6, 1e-6])
def test_outcome_only_weights_do_not_depend_on_scale(tmp_path, scale):
    frame = pd.read_csv(BASQUE_CSV)
    frame["gdpcap"] = frame["gdpcap"] * scale
    csv = tmp_path / "basque_scaled.csv"
    frame.to_csv(csv, index=False)
    unscaled = outcome_only_weights(evalkit.run(basque_design(tmp_path, csv=BASQUE_CSV, predictors=[],
                                                              predictors_window=None, fit_window=None)))
    scaled = evalkit.run(basque_design(tmp_path, csv=csv, predictors=[], predictors_window=None, fit_window=None))
    for name, w in outcome_only_weights(scaled).items():
        assert w == pytest.approx(unscaled[name], abs=1e-9)
    att = scaled.estimate("att", method="synthetic_control")
    assert att.details["percent"] == pytest.approx(
        evalkit.run(basque_design(tmp_path, csv=BASQUE_CSV, predictors=[], predictors_window=None, fit_window=None))
        .estimate("att").details["percent"], rel=1e-7)


def test_default_slsqp_fails_silently_on_small_outcomes_and_ours_does_not():
    # pysyncon's inner solver: SLSQP from equal weights with default tolerances. On GDP
    # per capita in units of 1e6 (values ~1e-6) the objective is ~1e-12, below SLSQP's
    # absolute ftol, so it stops at the start and reports success.
    _, Z, _ = basque_matrices(scale=1e-6)
    Z1, Z0 = Z[:, 0], Z[:, 1:]
    n = Z0.shape[1]
    naive = minimize(lambda w: np.sum((Z0 @ w - Z1) ** 2), np.full(n, 1 / n), method="SLSQP",
                     bounds=[(0, 1)] * n, constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}])
    assert naive.success
    np.testing.assert_allclose(naive.x, np.full(n, 1 / n), atol=1e-6)  # it never moved
    _, Z_unit, _ = basque_matrices()
    expected = reference_simplex_ls(Z_unit[:, 1:], Z_unit[:, 0])
    assert np.max(np.abs(naive.x - expected)) > 0.1
    np.testing.assert_allclose(simplex_least_squares(Z0, Z1), expected, atol=1e-6)


@pytest.mark.parametrize("scale", [1e6, 1e-6])
def test_nested_v_weights_do_not_depend_on_scale(scale):
    X, Z, _ = basque_matrices()
    Xs, _ = standardise_predictors(X)
    base = fit_weights(Z[:, 0], Z[:, 1:], Xs[:, 0], Xs[:, 1:])
    X_scaled, Z_scaled, _ = basque_matrices(scale=scale)  # gdpcap is a predictor too
    Xs_scaled, _ = standardise_predictors(X_scaled)
    scaled = fit_weights(Z_scaled[:, 0], Z_scaled[:, 1:], Xs_scaled[:, 0], Xs_scaled[:, 1:])
    np.testing.assert_allclose(scaled.weights, base.weights, atol=1e-6)
    assert scaled.loss_v == pytest.approx(base.loss_v * scale ** 2, rel=1e-6)


def test_simplex_least_squares_against_reference_on_random_problems():
    rng = np.random.default_rng(20240510)
    for m, n in [(5, 12), (12, 5), (30, 30), (3, 40)]:
        A = rng.normal(size=(m, n)) * rng.uniform(0.1, 10, size=n)
        b = A @ rng.dirichlet(np.ones(n) * 0.3) + rng.normal(scale=0.5, size=m)
        ours = simplex_least_squares(A, b)
        reference = reference_simplex_ls(A, b)
        assert ours.min() >= 0 and ours.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.sum((A @ ours - b) ** 2) <= np.sum((A @ reference - b) ** 2) * (1 + 1e-8) + 1e-14


# ----------------------------------------------------------------------------- simulated panels
def write_panel(tmp_path, frame: pd.DataFrame, name: str = "panel.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def factor_panel(seed: int, n_units: int = 20, n_periods: int = 36, start: int = 24, effect: float = 0.0,
                 shift: float = 0.0) -> pd.DataFrame:
    """Donors y_jt = a_j + l_j f_t + s_j t + noise; the treated unit U01 is the mean of the first
    three donors' signal (so inside their convex hull) + noise, + ``shift``, + ``effect`` from
    position ``start``."""
    rng = np.random.default_rng(seed)
    factor = np.cumsum(rng.normal(size=n_periods))
    trend = np.linspace(0, 1, n_periods)
    signal = np.array([rng.normal(10, 1) + rng.uniform(0.5, 1.5) * factor + rng.normal(0, 1) * trend
                       for _ in range(n_units - 1)])
    treated = signal[:3].mean(axis=0) + shift + effect * (np.arange(n_periods) >= start)
    values = np.vstack([treated, signal]) + rng.normal(scale=0.1, size=(n_units, n_periods))
    rows = [{"area": f"U{j + 1:02d}", "month": str(pd.Period("2018-01", "M") + t), "y": values[j, t]}
            for j in range(n_units) for t in range(n_periods)]
    return pd.DataFrame(rows)


def panel_design(tmp_path, csv, analysis: dict | None = None, start: str = "2020-01", **extra) -> dict:
    raw = {
        "evalkit": 1, "title": "Simulated synthetic control",
        "intervention": {"name": "SPOC", "start": start},
        "data": {"source": str(csv), "layout": "panel", "columns": {"unit": "area", "time": "month"},
                 "frequency": "month"},
        "units": {"treated": ["U01"]},
        "outcomes": [{"name": "y", "column": "y", "measure": "continuous"}],
        "analysis": [{"method": "synthetic_control", "outcome": "y", **(analysis or {})}],
        "seed": 7,
    }
    for key, value in extra.items():
        raw[key] = value
    return raw


def run_raw(tmp_path, raw):
    return evalkit.run(design_from_mapping(raw, path=tmp_path / "design.yaml"))


def test_placebo_p_is_one_over_units_with_a_large_planted_effect(tmp_path):
    csv = write_panel(tmp_path, factor_panel(seed=11, effect=-5.0))
    results = run_raw(tmp_path, panel_design(tmp_path, csv))
    placebo_p = results.estimate("placebo_p")
    assert placebo_p.estimate == pytest.approx(1 / 20)
    assert placebo_p.details["rank"] == 1
    att = results.estimate("att")
    assert att.estimate == pytest.approx(-5.0, abs=0.6)  # interpolation error of the weights, ~0.1 noise
    assert att.p_value == pytest.approx(1 / 20)
    # 20 units and alpha 0.05: the interval is bounded and excludes 0
    assert att.details["ci_bounded"] is True
    assert att.ci_low < -5.0 < att.ci_high < 0
    assert "placebo_gaps" in results.analyses[0].series and len(results.analyses[0].series["placebo_gaps"]) == 19


def test_no_effect_gives_unremarkable_placebo_p(tmp_path):
    csv = write_panel(tmp_path, factor_panel(seed=12, effect=0.0))
    results = run_raw(tmp_path, panel_design(tmp_path, csv))
    assert results.estimate("placebo_p").estimate > 0.1
    att = results.estimate("att")
    assert att.ci_low < 0 < att.ci_high


def test_interval_inverts_the_placebo_test(tmp_path):
    csv = write_panel(tmp_path, factor_panel(seed=13, effect=-1.0))
    results = run_raw(tmp_path, panel_design(tmp_path, csv))
    att = results.estimate("att")
    series = results.analyses[0].series
    gaps = {name: np.array(g) for name, g in series["placebo_gaps"].items()}
    pre, post = slice(0, 24), slice(24, None)
    stats = np.array([abs(g[post].mean()) / np.sqrt(np.mean(g[pre] ** 2)) for g in gaps.values()])
    treated_gap = np.array(series["gap"])
    pre_rmspe = np.sqrt(np.mean(treated_gap[pre] ** 2))

    def p_value(tau):
        statistic = abs(treated_gap[post].mean() - tau) / pre_rmspe
        return (1 + np.sum(stats >= statistic)) / 20

    assert p_value(att.ci_low + 1e-9) > 0.05 and p_value(att.ci_high - 1e-9) > 0.05
    assert p_value(att.ci_low - 1e-6) <= 0.05 and p_value(att.ci_high + 1e-6) <= 0.05
    assert att.p_value == pytest.approx(p_value(0.0))


def test_convex_hull_warning_when_treated_is_above_every_donor(tmp_path):
    csv = write_panel(tmp_path, factor_panel(seed=14, shift=50.0))
    results = run_raw(tmp_path, panel_design(tmp_path, csv))
    hull = next(c for c in results.checks if c.name == "convex_hull")
    assert hull.status == "warn"
    assert hull.values["share_outside"] == 1.0 and hull.values["periods_above"] == 24
    assert "above every donor" in hull.detail
    fit = next(c for c in results.checks if c.name == "pre_period_fit")
    assert fit.status == "warn"
    inside = run_raw(tmp_path, panel_design(tmp_path, write_panel(tmp_path, factor_panel(seed=14), "inside.csv")))
    assert next(c for c in inside.checks if c.name == "convex_hull").status == "pass"


def test_predictors_with_equal_v_and_special_windows(tmp_path):
    frame = factor_panel(seed=15, effect=-3.0)
    rng = np.random.default_rng(3)
    frame["x"] = rng.normal(size=len(frame))
    frame.loc[frame["month"] < "2019-01", "x"] = np.nan   # only 2019 has x: missing allowed elsewhere
    csv = write_panel(tmp_path, frame)
    analysis = {"predictors": ["x", {"column": "y", "periods": ["2019-06", "2019-12"]},
                               {"column": "y", "window": {"start": "2018-01", "end": "2018-12"}}],
                "predictors_window": {"start": "2019-01", "end": "2019-12"}, "optimise_v": "none"}
    results = run_raw(tmp_path, panel_design(tmp_path, csv, analysis))
    series = results.analyses[0].series
    names = [row["name"] for row in series["predictors"]]
    assert names == ["x (2019-01..2019-12)", "y (2019-06, 2019-12)", "y (2018-01..2018-12)"]
    treated = frame[frame["area"] == "U01"].set_index("month")
    assert series["predictors"][0]["treated"] == pytest.approx(treated.loc["2019-01":"2019-12", "x"].mean())
    assert series["predictors"][1]["treated"] == pytest.approx(treated.loc[["2019-06", "2019-12"], "y"].mean())
    assert all(row["v"] == pytest.approx(1 / 3) for row in series["predictors"])
    # equal V: the weights solve the V-weighted fit on standardised predictors, checked here directly
    units = [f"U{j:02d}" for j in range(1, 21)]
    X = np.vstack([
        [frame[(frame.area == u) & frame.month.between("2019-01", "2019-12")]["x"].mean() for u in units],
        [frame[(frame.area == u) & frame.month.isin(["2019-06", "2019-12"])]["y"].mean() for u in units],
        [frame[(frame.area == u) & frame.month.between("2018-01", "2018-12")]["y"].mean() for u in units],
    ])
    X = X / X.std(axis=1, ddof=1, keepdims=True)
    reference = reference_simplex_ls(X[:, 1:], X[:, 0])
    weights = results.estimate("att").details["weights"]
    ours = np.array([weights[u] for u in units[1:]])
    # three predictors, nineteen donors: the minimiser need not be unique, its loss is
    loss = lambda w: np.sum((X[:, 0] - X[:, 1:] @ w) ** 2) / 3  # noqa: E731
    assert loss(ours) <= loss(reference) + 1e-10
    assert results.analyses[0].settings["loss_w"] == pytest.approx(loss(ours), abs=1e-12)
    raw_x = np.array([row["synthetic"] for row in series["predictors"]])
    assert raw_x[0] == pytest.approx(np.dot(ours, [frame[(frame.area == u) & frame.month.between("2019-01", "2019-12")]
                                                   ["x"].mean() for u in units[1:]]))


# ----------------------------------------------------------------------------- counts as rates
@pytest.mark.parametrize("frequency", ["month", "quarter"])
def test_count_outcome_fitted_as_rates_and_reported_per_month_and_percent(tmp_path, frequency):
    rng = np.random.default_rng(21)
    n_periods, start = 24, 16
    first = pd.Period("2019-01" if frequency == "month" else "2015Q1", "M" if frequency == "month" else "Q")
    rows = []
    base = 2.0 + 0.3 * np.sin(np.arange(n_periods) / 3)
    donor_rates = [base * rng.uniform(0.6, 1.4) + rng.normal(scale=0.05, size=n_periods) for _ in range(8)]
    treated_rate = 0.5 * donor_rates[0] + 0.5 * donor_rates[1]
    treated_rate = treated_rate * np.where(np.arange(n_periods) >= start, 0.8, 1.0)   # 20% fewer reports
    for j, rate in enumerate([treated_rate] + donor_rates):
        children = 200_000 + 50_000 * j + 1000 * np.arange(n_periods)
        reports = np.round(rate * children / 1000)
        for t in range(n_periods):
            rows.append({"force": f"F{j:02d}", "period": str(first + t), "reports": int(reports[t]),
                         "children": int(children[t])})
    frame = pd.DataFrame(rows)
    csv = write_panel(tmp_path, frame)
    raw = panel_design(tmp_path, csv, start=str(first + start))
    raw["data"].update({"columns": {"unit": "force", "time": "period", "exposure": "children"}, "frequency": frequency})
    raw["units"] = {"treated": ["F00"]}
    raw["outcomes"] = [{"name": "reports", "column": "reports", "measure": "count", "per": 1000}]
    raw["analysis"][0]["outcome"] = "reports"
    results = run_raw(tmp_path, raw)
    att = results.estimate("att")
    series = results.analyses[0].series
    # recompute from the file: rates per 1000 children, synthetic from the reported weights
    wide = frame.pivot(index="period", columns="force", values="reports")
    children = frame.pivot(index="period", columns="force", values="children")
    rates = wide / children * 1000
    weights = att.details["weights"]
    synthetic = sum(rates[f] * w for f, w in weights.items())
    np.testing.assert_allclose(series["treated"], rates["F00"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(series["synthetic"], synthetic.to_numpy(), rtol=1e-9)
    gap_counts = (rates["F00"] - synthetic) * children["F00"] / 1000
    post = slice(start, None)
    per_period = gap_counts.iloc[post].mean()
    months = 1 if frequency == "month" else 3
    assert att.estimate == pytest.approx((rates["F00"] - synthetic).iloc[post].mean(), rel=1e-9)
    assert att.details["per_month"] == pytest.approx(per_period / months, rel=1e-9)
    assert att.details["per_year"] == pytest.approx(per_period * 12 / months, rel=1e-9)
    expected_counts = (synthetic * children["F00"] / 1000).iloc[post].sum()
    assert att.details["percent"] == pytest.approx(100 * gap_counts.iloc[post].sum() / expected_counts, rel=1e-9)
    assert att.details["percent"] == pytest.approx(-20.0, abs=1.0)   # the planted 20% reduction
    assert att.details["observed_post"] == wide["F00"].iloc[post].sum()
    assert series["observed_counts"] == wide["F00"].tolist()
    assert weights["F01"] == pytest.approx(0.5, abs=0.05) and weights["F02"] == pytest.approx(0.5, abs=0.05)


# ----------------------------------------------------------------------------- errors
def expect_error(tmp_path, raw, *words):
    with pytest.raises(EvalkitError) as info:
        run_raw(tmp_path, raw)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def test_error_treated_unit_absent(tmp_path):
    csv = write_panel(tmp_path, factor_panel(seed=1, n_units=5))
    raw = panel_design(tmp_path, csv, {"unit": "Nowhere"})
    message = expect_error(tmp_path, raw, "Nowhere", "analysis[0].unit")
    assert message.startswith(str(tmp_path / "design.yaml"))
    raw = panel_design(tmp_path, csv)
    raw["units"]["treated"] = ["U99"]
    expect_error(tmp_path, raw, "U99", "units.treated")


def test_error_no_donors(tmp_path):
    csv = write_panel(tmp_path, factor_panel(seed=1, n_units=5))
    raw = panel_design(tmp_path, csv)
    raw["units"]["comparison"] = []
    expect_error(tmp_path, raw, "at least 2 donor units and has 0", "analysis[0]")
    raw = panel_design(tmp_path, csv)
    raw["units"]["treated"] = ["U01", "U02", "U03", "U04"]
    expect_error(tmp_path, raw, "fits one treated unit")
    raw["analysis"][0]["unit"] = "U01"
    expect_error(tmp_path, raw, "has 1")
    raw = panel_design(tmp_path, csv, {"donors": ["U01", "U02"]})
    expect_error(tmp_path, raw, "donor 'U01' is itself treated", "analysis[0].donors")


def test_error_fewer_than_two_pre_periods(tmp_path):
    csv = write_panel(tmp_path, factor_panel(seed=1, n_units=5))
    expect_error(tmp_path, panel_design(tmp_path, csv, start="2018-02"), "only 1 period before", "at least 2")
    expect_error(tmp_path, panel_design(tmp_path, csv, {"fit_window": {"start": "2018-01", "end": "2020-06"}}),
                 "reaches into the intervention period", "analysis[0].fit_window")


def test_error_predictor_missing_for_treated_unit(tmp_path):
    frame = factor_panel(seed=1, n_units=5)
    frame["x"] = 1.0 + np.arange(len(frame)) % 7
    frame.loc[(frame["area"] == "U01") & (frame["month"] < "2019-01"), "x"] = np.nan
    csv = write_panel(tmp_path, frame)
    analysis = {"predictors": [{"column": "x", "window": {"start": "2018-01", "end": "2018-12"}}]}
    expect_error(tmp_path, panel_design(tmp_path, csv, analysis), "no value for the treated unit 'U01'",
                 "analysis[0].predictors[0]", "2018-01..2018-12")
    frame.loc[frame["area"] == "U01", "x"] = 1.0
    frame.loc[(frame["area"] == "U03") & (frame["month"] < "2019-01"), "x"] = np.nan
    csv = write_panel(tmp_path, frame)
    expect_error(tmp_path, panel_design(tmp_path, csv, analysis), "donor 'U03'", "leave the unit out of the donors")
    expect_error(tmp_path, panel_design(tmp_path, csv, {"predictors": ["nosuch"]}), "nosuch")


def test_error_missing_outcome_for_a_donor(tmp_path):
    frame = factor_panel(seed=1, n_units=5)
    frame.loc[(frame["area"] == "U04") & (frame["month"] == "2019-03"), "y"] = np.nan
    expect_error(tmp_path, panel_design(tmp_path, write_panel(tmp_path, frame)), "'U04'", "2019-03")


def test_design_refuses_a_predictor_with_window_and_periods(tmp_path):
    csv = write_panel(tmp_path, factor_panel(seed=1, n_units=5))
    raw = panel_design(tmp_path, csv, {"predictors": [{"column": "y", "window": {"start": "2018-01", "end": "2018-06"},
                                                       "periods": ["2018-01"]}]})
    with pytest.raises(EvalkitError) as info:
        design_from_mapping(raw, path=tmp_path / "design.yaml")
    assert "not both" in str(info.value) and "analysis[0].predictors[0]" in str(info.value)


# ----------------------------------------------------------------------------- results.json
def test_results_are_plain_json_and_reproducible(tmp_path):
    csv = write_panel(tmp_path, factor_panel(seed=16, effect=-2.0))
    first = run_raw(tmp_path, panel_design(tmp_path, csv)).to_json_text()
    second = run_raw(tmp_path, panel_design(tmp_path, csv)).to_json_text()
    assert first == second
    record = json.loads(first)
    analysis = next(a for a in record["analyses"] if a["method"] == "synthetic_control")
    series = analysis["series"]
    for key in ("periods", "treated", "synthetic", "gap", "placebo_gaps", "weights", "rmspe_ratio", "start_index"):
        assert key in series
    assert len(series["gap"]) == len(series["periods"]) == 36
    estimands = {e["estimand"] for e in record["estimates"]}
    assert {"att", "placebo_p"} <= estimands
