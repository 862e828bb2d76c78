"""Frequency weights in the Kaplan-Meier and Cox engines, and the distinct-episode table
survival_did fits on (the national-scale speed-up): a table of distinct rows with their
counts must give exactly what the episodes themselves give.

The R-matching tests are in test_survival.py; these compare each engine with itself on
expanded data (no reference files).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import evalkit
from evalkit.data import load_data
from evalkit.data.durations import group_time_order, kaplan_meier
from evalkit.methods.survival.cox import _covariate_patterns, fit_cox
from evalkit.methods.survival.survival import _distinct_episodes, survival_frame

from .conftest import ROOT

DESIGN = ROOT / "tests" / "fixtures" / "survival" / "design.yaml"


def _episodes(seed: int = 3, n: int = 4000):
    """Episodes with heavy ties (hours rounded to the quarter hour) and some censoring."""
    rng = np.random.default_rng(seed)
    area = rng.integers(0, 6, n)
    treated = (area < 3).astype(float)
    post = (rng.random(n) < 0.5).astype(float)
    hours = np.round(rng.exponential(np.where(treated * post == 1, 6.0, 8.0)) * 4) / 4
    found = rng.random(n) < 0.9
    return area, treated, post, hours, found


def _collapse(*columns):
    """Distinct rows of the columns and how many times each occurs."""
    frame = pd.DataFrame({f"c{i}": c for i, c in enumerate(columns)})
    counted = frame.groupby(list(frame.columns), sort=True).size().reset_index(name="count")
    return [counted[f"c{i}"].to_numpy() for i in range(len(columns))], counted["count"].to_numpy()


def test_group_time_order_sorts_like_lexsort():
    area, _, _, hours, _ = _episodes()
    order = group_time_order(area, hours)
    reference = np.lexsort((hours, area))
    np.testing.assert_array_equal(area[order], area[reference])
    np.testing.assert_array_equal(hours[order], hours[reference])
    assert sorted(order.tolist()) == list(range(area.size))
    # codes too wide for int16 still sort by code first
    wide = area * 100_000
    np.testing.assert_array_equal(wide[group_time_order(wide, hours)], wide[reference])


def test_weighted_kaplan_meier_is_the_expanded_table():
    area, _, post, hours, found = _episodes()
    codes = area * 2 + post.astype(int)
    expanded = kaplan_meier(codes, hours, found, n_groups=12)
    (c, h, f), count = _collapse(codes, hours, found)
    weighted = kaplan_meier(c, h, f, n_groups=12, weights=count)
    for field in ("time", "n_risk", "n_event", "n_censor", "survival", "greenwood", "bounds", "n"):
        np.testing.assert_array_equal(getattr(weighted, field), getattr(expanded, field), err_msg=field)
    # rows of weight 0 are left out; fractional or negative weights are refused
    zero = kaplan_meier(np.append(c, 0), np.append(h, 999.0), np.append(f, True), n_groups=12,
                        weights=np.append(count, 0))
    np.testing.assert_array_equal(zero.survival, expanded.survival)
    with pytest.raises(ValueError, match="whole numbers"):
        kaplan_meier(c, h, f, weights=count + 0.5)
    with pytest.raises(ValueError, match="negative"):
        kaplan_meier(c, h, f, weights=-count)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_weighted_cox_is_the_expanded_fit(ties):
    area, treated, post, hours, found = _episodes()
    cluster = area % 4  # clusters that cut across strata
    X = np.column_stack([post, treated * post])
    expanded = fit_cox(hours, found, X, strata=area, cluster=cluster, ties=ties)
    (a, cl, p, tp, h, f), count = _collapse(area, cluster, post, treated * post, hours, found)
    assert count.size < area.size / 2  # the collapse is real
    weighted = fit_cox(h, f, np.column_stack([p, tp]), strata=a, cluster=cl, ties=ties, weights=count)
    np.testing.assert_allclose(weighted.params, expanded.params, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(weighted.se(robust=True), expanded.se(robust=True), rtol=1e-9)
    np.testing.assert_allclose(weighted.se(robust=False), expanded.se(robust=False), rtol=1e-10)
    assert weighted.loglik == pytest.approx(expanded.loglik, rel=1e-12)
    assert weighted.loglik_null == pytest.approx(expanded.loglik_null, rel=1e-12)
    assert (weighted.n, weighted.events, weighted.strata, weighted.clusters) == \
        (expanded.n, expanded.events, expanded.strata, expanded.clusters)
    zph_w, zph_e = weighted.zph(), expanded.zph()
    for term in ("x0", "x1"):
        assert zph_w["terms"][term]["chisq"] == pytest.approx(zph_e["terms"][term]["chisq"], rel=1e-8)
    assert zph_w["global"]["chisq"] == pytest.approx(zph_e["global"]["chisq"], rel=1e-8)


def test_covariate_patterns_without_sorting_indicators():
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.integers(0, 2, 500), rng.choice([-1.5, 0.0, 2.0], 500), rng.integers(0, 2, 500)]).astype(float)
    patterns, pattern = _covariate_patterns(X)
    np.testing.assert_array_equal(patterns[pattern], X)
    assert len(patterns) == len(np.unique(X, axis=0))
    # a constant indicator column still gives one pattern per distinct row
    constant = np.column_stack([np.zeros(10), np.arange(10) % 2])
    patterns, pattern = _covariate_patterns(constant)
    np.testing.assert_array_equal(patterns[pattern], constant)
    assert len(patterns) == 2


def test_distinct_episodes_stand_for_exactly_the_analysis_episodes():
    design = evalkit.load_design(DESIGN)
    data = load_data(design)
    spec = design.analysis[0]
    frame, dropped = survival_frame(design, data, spec)
    episodes, dropped_too = _distinct_episodes(design, data, spec, "analysis[0]")
    assert dropped_too == dropped
    assert episodes.n == len(frame) and (episodes.count > 0).all()
    assert episodes.units == sorted(frame["unit"].astype(str).unique().tolist())
    rows = pd.DataFrame({"unit": np.asarray(episodes.units, dtype=object)[episodes.unit], "post": episodes.post,
                         "hours": episodes.hours, "found": episodes.found, "treated": episodes.treated})
    expanded = rows.loc[rows.index.repeat(episodes.count)]
    key = ["unit", "post", "hours", "found", "treated"]
    ours = expanded[key].sort_values(key).reset_index(drop=True)
    theirs = frame.assign(unit=frame["unit"].astype(str))[key].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours.astype({"unit": object}), theirs.astype({"unit": object}))
    # no two rows stand for the same (area, post, hours, found)
    assert not rows.duplicated(["unit", "post", "hours", "found"]).any()
