"""Edge cases of the estimators: every input gives a result or one clear line, never a traceback.

Each case writes a small panel or episode extract and a design in a temporary folder and
runs ``evalkit run`` through click's CliRunner. A failure must be exit status 1 with one
line ``error: <file>[:<key>]: <what>; <fix>`` (never "internal error", which is a bug of
ours); a success must write strict JSON (no NaN or infinity) and a report. The cases are
those of a hostile-input review of did, staggered_did, synthetic_control and the shared
inference code (the bugs each test pins are named in its docstring).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.inference.randomization import randomization_test
from evalkit.inference.wild_cluster import bootstrap_t, draw_weights
from evalkit.methods.did.twfe import TwoWayProjection

AREAS = ["A", "B", "C", "D", "E", "F"]


# ----------------------------------------------------------------------------- helpers
def panel(units=AREAS, periods: int = 24, start: str = "2019-01", freq: str = "M", seed: int = 1,
          counts: bool = True, level: float = 50.0, population: float | None = None) -> pd.DataFrame:
    """Areas with their own level and a common 1%-a-period trend; no effect planted."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, unit in enumerate(units):
        for t, period in enumerate(pd.period_range(start, periods=periods, freq=freq)):
            mean = level * (1 + 0.1 * i) * np.exp(0.01 * t)
            y = float(rng.poisson(mean)) if counts else mean + rng.normal(0, 1)
            rows.append({"area": unit, "period": str(period), "y": y, "x": rng.normal(),
                         "pop": population or 10000 + 1000 * i})
    return pd.DataFrame(rows)


def design(analysis, units: dict, measure: str = "count", freq: str = "month", exposure: bool = True,
           start: str | None = None, transition: int = 0) -> dict:
    columns = {"unit": "area", "time": "period"}
    if exposure:
        columns["exposure"] = "pop"
    raw = {"evalkit": 1, "title": "edge case", "intervention": {"name": "SPOC", "transition": transition},
           "data": {"source": "panel.csv", "layout": "panel", "columns": columns, "frequency": freq},
           "units": units, "outcomes": [{"name": "y", "column": "y", "measure": measure}],
           "analysis": analysis if isinstance(analysis, list) else [analysis]}
    if start:
        raw["intervention"]["start"] = start
    return raw


def _strict(text: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"results.json holds {constant}")

    return json.loads(text, parse_constant=refuse)


def run(tmp_path: Path, raw: dict, frame: pd.DataFrame | None = None, files: dict | None = None):
    """``evalkit run``; returns (results dict or None, the one error line or None)."""
    if frame is not None:
        frame.to_csv(tmp_path / "panel.csv", index=False)
    for name, table in (files or {}).items():
        table.to_csv(tmp_path / name, index=False)
    (tmp_path / "design.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["run", str(tmp_path / "design.yaml"), "--out", str(out)])
    ours = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not ours, f"a warning reached the user: {ours[0].message}"
    stderr = result.stderr.strip()
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    if result.exit_code != 0:
        assert result.exit_code == 1 and len(stderr.splitlines()) == 1 and stderr.startswith("error: "), stderr
        assert not out.exists()
        return None, stderr
    assert stderr == ""
    assert (out / "report.html").stat().st_size > 0
    return _strict((out / "results.json").read_text(encoding="utf-8")), None


def fails(tmp_path, raw, frame=None, files=None) -> str:
    _, error = run(tmp_path, raw, frame, files)
    assert error is not None, "expected a one-line error"
    return error


def succeeds(tmp_path, raw, frame=None, files=None) -> dict:
    results, error = run(tmp_path, raw, frame, files)
    assert error is None, error
    return results


def estimate(results: dict, estimand: str, method: str | None = None, analysis: int | None = None) -> dict:
    return next(e for e in results["estimates"] if e["estimand"] == estimand and (method is None or e["method"] == method)
                and (analysis is None or e["details"].get("analysis") == analysis))


# analytic inference declared: these cases test the numerics of the fit (the default, auto, takes
# randomization with so few adopting areas, which has no interval with one of six)
DID = {"method": "did", "outcome": "y", "inference": "analytic"}
LINEAR = {"method": "did", "outcome": "y", "family": "linear", "inference": "analytic"}
STAGGERED = {"method": "staggered_did", "outcome": "y"}
SYNTH = {"method": "synthetic_control", "outcome": "y"}
ONE = {"adoption": {"A": "2020-01"}}
TWO_DATES = {"adoption": {"A": "2020-01", "B": "2020-06"}}


# ----------------------------------------------------------------------------- outcomes that cannot be compared
@pytest.mark.parametrize("analysis,value,expected", [
    (DID, 0.0, "outcome 'y' is 0 in every area and period, so there is no difference to estimate"),
    (LINEAR, 5.0, "outcome 'y' is 5 in every area and period, so there is no difference to estimate"),
    (STAGGERED, 0.0, "outcome 'y' is 0 in every unit and period, so there is no difference to estimate"),
    (STAGGERED, 5.0, "outcome 'y' never changes over time within a unit (per unit of exposure), so there is no change"),
    (SYNTH, 5.0, "outcome 'y' is 5 for the treated unit and every donor in every period, so there is nothing to fit"),
], ids=["did-0", "linear-5", "staggered-0", "staggered-5", "synth-5"])
def test_a_constant_outcome_is_refused_in_one_line(tmp_path, analysis, value, expected):
    """Was: a TypeError in the headline (staggered), a RuntimeError from the PanelOLS cross-check
    (linear did), a silent ratio 1 with a zero-width interval (Poisson did), placebo p = 1/6 from
    rounding error (synthetic control)."""
    frame = panel().assign(y=value)
    units = {"treated": ["A"]} if analysis is SYNTH else (TWO_DATES if analysis is STAGGERED else ONE)
    error = fails(tmp_path, design(analysis, units, exposure=analysis is not SYNTH, start="2020-01"), frame)
    assert error.startswith(f"error: panel.csv: {expected}")


def test_did_outcome_flat_within_every_area_is_refused(tmp_path):
    frame = panel()
    frame["y"] = frame["area"].map({u: 10.0 * (i + 1) for i, u in enumerate(AREAS)})
    error = fails(tmp_path, design(LINEAR, ONE, exposure=False), frame)
    assert error == ("error: panel.csv: outcome 'y' never changes over time within an area, so there is no change to "
                     "compare; check the outcome column and data.window")


def test_poisson_did_without_comparison_counts_says_so(tmp_path):
    """Was: LinAlgError (Singular matrix) once every comparison area was left out for having no counts."""
    frame = panel()
    frame.loc[frame["area"] != "A", "y"] = 0
    error = fails(tmp_path, design(DID, ONE), frame)
    assert error.endswith("analysis[0]: the comparison areas have no counts at all, so the Poisson DiD has nothing "
                          "to compare with; check the outcome column and units.comparison, or add comparison areas "
                          "with counts")


def test_linear_did_with_an_exact_fit_says_the_standard_error_is_zero(tmp_path):
    """Was: RuntimeError "PanelOLS (...) and the TWFE solver (...) disagree" on rounding-error standard errors."""
    frame = panel()
    frame.loc[frame["area"] != "A", "y"] = 0
    error = fails(tmp_path, design(LINEAR, ONE), frame)
    assert "analysis[0]: the DiD model fits the data exactly, so its standard error is 0" in error


def test_staggered_with_a_degenerate_influence_function_says_so(tmp_path):
    """Was: TypeError in the headline sentence (att_simple with no interval)."""
    frame = panel()
    frame.loc[frame["area"] != "A", "y"] = 0
    error = fails(tmp_path, design(STAGGERED, TWO_DATES), frame)
    assert "analysis[0]: the ATT ratio has no standard error" in error


def test_poisson_did_with_no_treated_counts_after_adoption_says_so(tmp_path):
    """Was: "no treated area has a period after adoption", which was not the problem."""
    frame = panel()
    frame.loc[(frame["area"] == "A") & (frame["period"] >= "2020-01"), "y"] = 0
    error = fails(tmp_path, design(DID, ONE), frame)
    assert "the adopting areas have no counts at all after adoption" in error
    assert error.endswith("or use family: linear for a difference in counts")


# ----------------------------------------------------------------------------- timing
def test_did_when_every_area_adopts_on_one_date(tmp_path):
    """The advice no longer points at staggered_did, which cannot help either."""
    error = fails(tmp_path, design(DID, {"adoption": {u: "2020-01" for u in AREAS}}), panel())
    assert "units.comparison: did needs at least one comparison area that never adopts" in error
    assert "every area adopts at the same date" in error and "staggered_did" not in error


def test_staggered_without_never_treated_units(tmp_path):
    dates = {u: ("2020-01" if i < 3 else "2020-06") for i, u in enumerate(AREAS)}
    not_yet = {**STAGGERED, "control_group": "not_yet_treated"}
    (tmp_path / "a").mkdir()
    results = succeeds(tmp_path / "a", design(not_yet, {"adoption": dates}), panel())
    att = estimate(results, "att_simple")
    assert att["details"]["control_group"] == "not_yet_treated" and 0.5 < att["estimate"] < 2.0
    (tmp_path / "b").mkdir()
    error = fails(tmp_path / "b", design(STAGGERED, {"adoption": dates}), panel())
    assert error.endswith("analysis[0].control_group: every unit adopts, so there are no never-treated comparison "
                          "units; use control_group: not_yet_treated, or add comparison units")
    (tmp_path / "c").mkdir()
    same = {"adoption": {u: "2020-01" for u in AREAS}}
    error = fails(tmp_path / "c", design(not_yet, same), panel())
    assert "only one adoption date and no never-treated units" in error
    (tmp_path / "d").mkdir()
    close = {u: ("2020-01" if i < 3 else "2020-03") for i, u in enumerate(AREAS)}
    error = fails(tmp_path / "d", design({**not_yet, "anticipation": 3}, {"adoption": close}), panel())
    assert error.endswith("analysis[0].anticipation: no never-treated units, and with anticipation: 3 the last cohort "
                          "(2020-03) compares only until 2019-11, before the first adoption (2020-01); lower "
                          "anticipation or add never-treated units")


def test_adoption_in_the_first_or_last_period(tmp_path):
    error = fails(tmp_path, design(DID, {"adoption": {"A": "2019-01"}}), panel())
    assert "units: unit 'A' adopts at 2019-01, so the data have no pre-period before it" in error
    for i, analysis in enumerate([DID, STAGGERED, {**SYNTH, "unit": "A"}]):
        folder = tmp_path / f"last{i}"
        folder.mkdir()
        results = succeeds(folder, design(analysis, {"adoption": {"A": "2020-12"}}), panel())
        headline = results["evidence"]["headline_estimand"]
        assert np.isfinite(estimate(results, headline)["estimate"])


def test_staggered_refuses_a_single_series(tmp_path):
    frame = panel(["S"]).drop(columns=["area"])
    raw = design(STAGGERED, {}, start="2020-01")
    raw["data"]["columns"] = {"time": "period", "exposure": "pop"}
    raw.pop("units")
    error = fails(tmp_path, raw, frame)
    assert error.endswith("analysis[0]: staggered_did compares areas, and the data are one series; map "
                          "data.columns.unit, or use method: its")


# ----------------------------------------------------------------------------- scale
def test_staggered_standard_errors_do_not_depend_on_the_outcome_unit(tmp_path):
    """Was: R did's absolute zero-SE threshold (sqrt(eps) * 10) turned the errors of an outcome
    measured in small units into None, and the headline then crashed (TypeError)."""
    frame = panel(AREAS + ["G", "H"], counts=False)
    found = {}
    for scale in (1.0, 1e-9):
        for inference in ("analytic", "multiplier_bootstrap"):
            folder = tmp_path / f"{scale:g}{inference}"
            folder.mkdir()
            analysis = {**STAGGERED, "inference": inference, "reps": 199}
            results = succeeds(folder, design(analysis, TWO_DATES, measure="continuous", exposure=False),
                               frame.assign(y=frame["y"] * scale))
            att = estimate(results, "att_simple")
            found[scale, inference] = (att["estimate"] / scale, att["se"] / scale, att["p_value"])
    for inference in ("analytic", "multiplier_bootstrap"):
        assert found[1e-9, inference] == pytest.approx(found[1.0, inference], rel=1e-6)


@pytest.mark.parametrize("analysis", [DID, LINEAR, STAGGERED, {**SYNTH, "unit": "A"}],
                         ids=["did", "linear", "staggered", "synth"])
def test_huge_counts_and_tiny_rates(tmp_path, analysis):
    for label, frame in (("huge", panel(level=1e9)), ("tiny", panel(population=1e9))):
        folder = tmp_path / label
        folder.mkdir()
        results = succeeds(folder, design(analysis, TWO_DATES if analysis is STAGGERED else ONE), frame)
        headline = estimate(results, results["evidence"]["headline_estimand"])
        assert np.isfinite(headline["estimate"])
        if headline["method"] != "synthetic_control":
            assert headline["se"] > 0 and headline["ci_low"] < headline["ci_high"]


# ----------------------------------------------------------------------------- covariates (staggered_did)
def _covariate_panel() -> pd.DataFrame:
    frame = panel([f"U{i}" for i in range(12)])
    rng = np.random.default_rng(5)
    frame["c"] = 1.0
    frame["z"] = frame.groupby("area")["x"].transform("first")
    frame["z2"] = 3 * frame["z"] + 1
    frame["x2"] = 2 * frame["x"]
    frame["tv"] = rng.normal(size=len(frame))
    return frame


@pytest.mark.parametrize("covariates,estimation,expected", [
    (["c"], "doubly_robust", "analysis[0].covariates[0]: covariate 'c' takes the same value for every unit; remove it"),
    (["z", "z2"], "regression", "analysis[0].covariates[1]: covariate 'z2' is a linear combination of 'z' (collinear)"),
    (["x", "x2"], "ipw", "analysis[0].covariates[1]: covariate 'x2' is a linear combination of 'x' (collinear)"),
    (["tv"], "ipw", ("(the propensity score cannot be fitted: the covariates separate the adopting units from the "
                     "comparison units, or are collinear); use estimation: regression, or fewer covariates")),
])
def test_staggered_covariates_that_cannot_adjust(tmp_path, covariates, estimation, expected):
    """Was: "Singular matrix" with the advice "use estimation: regression" even when it was used."""
    units = {"adoption": {"U0": "2020-01", "U1": "2020-06", "U2": "2020-06"}}
    raw = design({**STAGGERED, "covariates": covariates, "estimation": estimation}, units)
    assert expected in fails(tmp_path, raw, _covariate_panel())


def test_staggered_covariate_missing_for_every_adopting_unit(tmp_path):
    frame = _covariate_panel()
    frame.loc[frame["area"] == "U0", "z"] = np.nan
    error = fails(tmp_path, design({**STAGGERED, "covariates": ["z"]}, {"adoption": {"U0": "2020-01"}}), frame)
    assert error == ("error: panel.csv: every adopting unit has a missing outcome or covariate value (left out: U0); "
                     "fill in the values, or remove the covariate from analysis covariates")


# ----------------------------------------------------------------------------- inference
def test_wild_cluster_with_every_sign_vector_counts_the_observed_one(tmp_path):
    """Was: p = 0.0 and a bounded interval from only 8 sign vectors (3 areas, 1 treated)."""
    frame = panel(["A", "B", "C"], counts=False)
    analysis = {**LINEAR, "inference": "wild_cluster", "weights": "rademacher"}
    results = succeeds(tmp_path, design(analysis, ONE, measure="continuous", exposure=False), frame)
    att = estimate(results, "att")
    assert att["p_value"] == 0.25  # the observed sign vector and its mirror: 2 of 8
    assert att["ci_low"] is None and att["ci_high"] is None  # unbounded: stored as null
    assert att["details"]["wild_cluster"]["enumerated"] is True


def test_bootstrap_t_keeps_the_boottest_convention_unless_asked():
    """3 areas x 6 periods, one treated from period 3: the strict share (boottest, wildboottest) and
    the sign-change randomization p-value differ by the observed sign vector and its mirror."""
    rng = np.random.default_rng(3)
    area, period = np.repeat(np.arange(3), 6), np.tile(np.arange(6), 3)
    d = ((area == 0) & (period >= 3)).astype(float)[:, None]
    y = rng.normal(size=18) + area + 0.3 * period + d[:, 0]
    W, enumerated = draw_weights(rng, 3, 999, "rademacher")
    assert enumerated and W.shape == (3, 8)
    project = TwoWayProjection(area, period, 3, 6)
    strict = bootstrap_t(y, d, area, 0, W, project)
    exact = bootstrap_t(y, d, area, 0, W, project, count_ties=True)
    t_star = np.abs(strict.t_boot)
    assert strict.p_value == np.mean(t_star > abs(strict.t_stat) * (1 + 1e-10)) == 0.5
    assert exact.p_value == 0.75 == strict.p_value + 2 / 8


def test_randomization_counts_assignments_that_cannot_be_fitted_as_extreme():
    """Was: NaN statistics counted as not extreme, which made the p-value smaller."""
    units = ["A", "B", "C", "D"]

    def statistic(assignment):
        return np.nan if "D" in assignment else (10.0 if "A" in assignment else 1.0)

    test = randomization_test(statistic, units, {"A": 1}, np.random.default_rng(0))
    assert test.exhaustive and test.n_assignments == 4
    assert test.p_value == 0.5 and test.to_dict()["non_finite"] == 1


def test_randomization_through_did_with_areas_without_counts(tmp_path):
    frame = panel(AREAS + ["G", "H"])
    frame.loc[frame["area"].isin(["G", "H"]), "y"] = 0
    adoption = {"adoption": {"A": "2020-01", "B": "2020-01"}}
    results = succeeds(tmp_path, design({**DID, "inference": "randomization"}, adoption), frame)
    record = estimate(results, "att")["details"]["randomization"]
    assert record["n_assignments"] == 28 and record["non_finite"] == 1   # G and H treated together
    assert record["p_value"] >= 2 / 28


def test_randomization_with_more_reps_than_assignments_enumerates(tmp_path):
    results = succeeds(tmp_path, design({**DID, "inference": "randomization", "reps": 5000}, ONE), panel())
    record = estimate(results, "att")["details"]["randomization"]
    assert record["exhaustive"] and record["n_assignments"] == 6 and record["p_value"] in {k / 6 for k in range(1, 7)}
    few = next(c for c in results["checks"] if c["name"] == "few_treated")
    assert few["status"] == "warn" and "cannot reject" in few["detail"]


# ----------------------------------------------------------------------------- synthetic control
def _identical_donors(treated_too: bool = False) -> pd.DataFrame:
    frame = panel()
    base = frame[frame["area"] == "B"][["y", "x", "pop"]].to_numpy()
    for unit in ["C", "D", "E", "F"] + (["A"] if treated_too else []):
        frame.loc[frame["area"] == unit, ["y", "x", "pop"]] = base
    return frame


def test_synthetic_control_with_identical_donors(tmp_path):
    """Was: placebo p = 1/6, the smallest possible, because duplicated donors have 0/0 ratios (and a
    divide-by-zero RuntimeWarning on stderr with predictors)."""
    raw = design({**SYNTH, "predictors": ["x", "y"]}, {"treated": ["A"]}, start="2020-01")
    results = succeeds(tmp_path, raw, _identical_donors())
    assert estimate(results, "placebo_p")["estimate"] == 1.0
    assert estimate(results, "placebo_p")["details"]["exact_placebos"] == 5
    check = next(c for c in results["checks"] if c["name"] == "placebo_duplicates")
    assert check["status"] == "warn" and check["values"]["units"] == ["B", "C", "D", "E", "F"]


def test_synthetic_control_when_the_treated_unit_equals_the_donors(tmp_path):
    """Was: att of rounding error (-7e-20) ranked first among exact-zero placebos: placebo p = 1/6."""
    results = succeeds(tmp_path, design(SYNTH, {"treated": ["A"]}, start="2020-01"), _identical_donors(True))
    assert estimate(results, "att")["estimate"] == 0.0
    assert estimate(results, "placebo_p")["estimate"] == 1.0


def test_synthetic_control_donor_pool_and_predictors(tmp_path):
    error = fails(tmp_path, design({**SYNTH, "donors": ["B"]}, {"treated": ["A"]}, start="2020-01"), panel())
    assert error.endswith("analysis[0]: synthetic control needs at least 2 donor units and has 1; list untreated units "
                          "under units.comparison (or donors: in this analysis)")
    frame = panel()
    frame.loc[frame["area"] == "A", "x"] = np.nan
    error = fails(tmp_path, design({**SYNTH, "predictors": ["x"]}, {"treated": ["A"]}, start="2020-01"), frame)
    assert "analysis[0].predictors[0]: predictor 'x' has no value for the treated unit 'A' in 2019-01..2019-12" in error


# ----------------------------------------------------------------------------- identifiers, frequencies, plans
def test_integer_and_string_unit_ids_give_the_same_results(tmp_path):
    frame = panel([1, 2, 3, 4, 5, 6])
    found = []
    for name in (3, "3"):
        folder = tmp_path / str(type(name).__name__)
        folder.mkdir()
        raw = design([DID, {**SYNTH, "unit": name, "donors": [1, "2", 4, 5, 6]}], {"adoption": {name: "2020-01"}})
        results = succeeds(folder, raw, frame)
        found.append([(e["estimand"], e["estimate"], e["p_value"]) for e in results["estimates"]])
    assert found[0] == found[1]


@pytest.mark.parametrize("freq,periods,start,adoption,analyses", [
    ("year", 3, "2018", {"A": "2019", "B": "2020"}, [DID, STAGGERED]),
    ("quarter", 12, "2018Q1", {"A": "2020Q1", "B": "2020Q3"}, [DID, STAGGERED, {**SYNTH, "unit": "A"}]),
])
def test_yearly_and_quarterly_data(tmp_path, freq, periods, start, adoption, analyses):
    frame = panel(periods=periods, start=start, freq=freq[0].upper())
    results = succeeds(tmp_path, design(analyses, {"adoption": adoption}, freq=freq), frame)
    for analysis in analyses:
        assert any(e["method"] == analysis["method"] and e["estimate"] is not None for e in results["estimates"])
    if freq == "year":
        (tmp_path / "synth").mkdir()
        error = fails(tmp_path / "synth", design({**SYNTH, "unit": "A"}, {"adoption": adoption}, freq=freq), frame)
        assert "only 1 period before A's start (2019); synthetic control needs at least 2" in error


def test_two_analyses_of_the_same_outcome_and_method_are_told_apart(tmp_path):
    raw = design([DID, {**DID, "inference": "randomization"}, {**SYNTH, "unit": "A"},
                  {**SYNTH, "unit": "A", "optimise_v": "none"}], ONE)
    results = succeeds(tmp_path, raw, panel())
    first, second = estimate(results, "att", "did", 0), estimate(results, "att", "did", 1)
    assert first["estimate"] == second["estimate"] and first["p_value"] != second["p_value"]
    assert estimate(results, "att", "synthetic_control", 2)["details"]["analysis"] == 2
    assert estimate(results, "att", "synthetic_control", 3)["details"]["analysis"] == 3


def test_missing_values_and_short_units(tmp_path):
    """NaN in a continuous outcome, a unit with a single period, a count row missing."""
    frame = panel(AREAS + ["G"], counts=False)
    frame.loc[(frame["area"] == "C") & (frame["period"] == "2019-05"), "y"] = np.nan
    frame = frame[(frame["area"] != "G") | (frame["period"] == "2019-03")]
    results = succeeds(tmp_path, design([LINEAR, STAGGERED], TWO_DATES, measure="continuous", exposure=False), frame)
    assert estimate(results, "att", "did")["details"]["observations"] == 6 * 24 - 1 + 1
    missing = next(c for c in results["checks"] if c["name"] == "missing_values")
    assert missing["values"]["dropped_units"] == ["C", "G"]
    (tmp_path / "synth").mkdir()
    error = fails(tmp_path / "synth", design({**SYNTH, "unit": "A"}, ONE, measure="continuous", exposure=False), frame)
    assert error == ("error: panel.csv: outcome 'y' is missing for unit 'C' in 2019-05; fill it in, narrow data.window, "
                     "or leave the unit out of the donors")
    counts = panel()
    counts = counts.drop(index=counts.index[(counts["area"] == "C") & (counts["period"] == "2019-05")])
    (tmp_path / "count").mkdir()
    error = fails(tmp_path / "count", design(DID, ONE), counts)
    assert error == ("error: panel.csv: unit 'C' has no row for period 2019-05; add the row (with 0 for a period with no "
                     "reports) or narrow data.window")


# ----------------------------------------------------------------------------- episodes: survival_did, its
def episodes(units=AREAS, months: int = 24, per_month: float = 12, seed: int = 2, censored: float = 0.05,
             none_found: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for unit in units:
        for m in range(months):
            month_start = pd.Timestamp("2019-01-01") + pd.DateOffset(months=m)
            for _ in range(rng.poisson(per_month)):
                reported = (month_start + pd.Timedelta(hours=float(rng.uniform(0, 27 * 24)))).floor("min")
                found = reported + pd.Timedelta(hours=float(rng.exponential(10.0)))
                open_episode = none_found or rng.random() < censored
                rows.append({"force": unit, "reported_at": str(reported),
                             "found_at": "" if open_episode else str(found.floor("min")),
                             "child_id": f"c{unit}{rng.integers(0, 200)}"})
    return pd.DataFrame(rows)


def episode_design(analysis, units: dict, window: dict | None = None) -> dict:
    raw = {"evalkit": 1, "title": "edge episodes", "intervention": {"name": "SPOC"},
           "data": {"source": "episodes.csv", "layout": "episodes", "extracted_at": "2020-12-31", "frequency": "month",
                    "columns": {"unit": "force", "reported_at": "reported_at", "found_at": "found_at",
                                "person": "child_id"}},
           "units": units,
           "outcomes": [{"name": "reports", "measure": "count"},
                        {"name": "time_to_found", "measure": "duration_hours", "horizon": 72}],
           "analysis": analysis if isinstance(analysis, list) else [analysis]}
    if window:
        raw["data"]["window"] = window
    return raw


SURVIVAL = {"method": "survival_did", "outcome": "time_to_found", "reps": 99}
PAIR = {"adoption": {"A": "2020-01", "B": "2020-01"}}


@pytest.mark.parametrize("case", ["no_censoring", "all_censored", "no_comparison", "only_post", "its_all_pre",
                                  "count_methods"])
def test_episode_cases_give_a_result_or_one_line(tmp_path, case):
    """The contract only (the wording belongs to survival_did's and its's authors)."""
    window = {"start": "2019-01", "end": "2020-12"}
    extract, raw = episodes(), episode_design(SURVIVAL, PAIR)
    if case == "no_censoring":
        extract = episodes(censored=0.0)
    elif case == "all_censored":
        extract = episodes(none_found=True)
    elif case == "no_comparison":
        raw = episode_design(SURVIVAL, {"adoption": {u: "2020-01" for u in AREAS}})
    elif case == "only_post":
        extract = extract[extract["reported_at"] >= "2020-01"]
        raw = episode_design(SURVIVAL, PAIR, window=window)
    elif case == "its_all_pre":
        raw = episode_design({"method": "its", "outcome": "reports"}, ONE, window={"start": "2019-01", "end": "2019-12"})
    elif case == "count_methods":
        raw = episode_design([DID | {"outcome": "reports"}, STAGGERED | {"outcome": "reports"},
                              {**SYNTH, "outcome": "reports", "unit": "A"}], TWO_DATES)
    results, error = run(tmp_path, raw, files={"episodes.csv": extract})
    if case in ("no_censoring", "count_methods"):
        assert error is None, error
        assert all(e["estimate"] is not None for e in results["estimates"]
                   if e["estimand"] in ("hazard_ratio_did", "att", "att_simple"))
    else:
        assert results is None and error.startswith("error: ")


def test_staggered_on_a_monthly_share_too_thin_in_every_adopting_area(tmp_path):
    """Was: "fill in the values, or remove the covariate", with no covariate declared."""
    raw = episode_design({"method": "staggered_did", "outcome": "found_24h"}, TWO_DATES)
    raw["outcomes"].append({"name": "found_24h", "measure": "share_found_within", "hours": 24})
    error = fails(tmp_path, raw, files={"episodes.csv": episodes(per_month=3)})
    assert error.endswith("outcomes[2].min_episodes: outcome 'found_24h' is missing in some period for every adopting "
                          "unit (fewer than 10 episodes in an area-period); lower min_episodes, use a coarser "
                          "data.frequency, or use method: survival_did")
