"""Relative-magnitudes sensitivity (Rambachan & Roth 2023) against HonestDiD's published examples.

References (tests/fixtures/honest/, made by make_reference.py; nothing here needs R,
honestdid or the network):
- the Medicaid-expansion example of the HonestDiD README: betahat and sigma rebuilt from the
  ehec data (medicaid_inputs.json), robust intervals printed in the R README (first
  post-period) and in the Stata README (average of the two post-periods);
- the same inputs through the Python port honestdid 0.1.1 (medicaid_honestdid_py.json);
- HonestDiD's own BCdata_EventStudy with the R package's results (bc_r_reference.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize

from evalkit.inference import honest
from evalkit.inference.honest import original_ci, relative_magnitudes_breakdown, relative_magnitudes_ci

FIXTURES = Path(__file__).parent / "fixtures" / "honest"


def load(name):
    data = json.loads((FIXTURES / name).read_text())
    return data, np.array(data["betahat"]), np.array(data["sigma"])


@pytest.fixture(scope="module")
def medicaid():
    return load("medicaid_inputs.json")


# ----------------------------------------------------------------------------- building blocks
def in_delta_rm(delta_pre, delta_post, mbar):
    """Delta^RM(Mbar) from its definition: every post-period first difference (from the
    reference period 0 on) at most Mbar times the largest pre-period first difference."""
    path = np.concatenate([delta_pre, [0.0], delta_post])
    diffs = np.diff(path)
    n_pre = len(delta_pre)
    return np.all(np.abs(diffs[n_pre:]) <= mbar * np.abs(diffs[:n_pre]).max() + 1e-12)


def test_the_union_of_polyhedra_is_delta_rm():
    rng = np.random.default_rng(7)
    num_pre, num_post, mbar = 3, 2, 1.5
    pieces = [honest._rm_constraints(num_pre, num_post, mbar, s, sign)
              for s in range(-(num_pre - 1), 1) for sign in (True, False)]
    hits = 0
    for _ in range(2000):
        delta = rng.normal(size=num_pre + num_post) * rng.choice([0.3, 1, 3], size=num_pre + num_post)
        member = any(np.all(A @ delta <= 1e-12) for A in pieces)
        assert member == in_delta_rm(delta[:num_pre], delta[num_pre:], mbar)
        hits += member
    assert 100 < hits < 1900  # both outcomes exercised


def test_eta_program_shortcuts_equal_the_linear_program():
    rng = np.random.default_rng(3)
    for k in (1, 2, 3):
        X = rng.normal(size=(9, k))
        sd = rng.uniform(0.5, 2.0, size=9)
        vertices = honest._dual_vertices(X, sd)
        for _ in range(50):
            y = rng.normal(size=9)
            res = optimize.linprog(np.eye(k + 1)[0], A_ub=-np.column_stack([sd, X]), b_ub=-y,
                                   bounds=[(None, None)] * (k + 1), method="highs")
            assert (vertices @ y).max() == pytest.approx(res.fun, abs=1e-9)
            if k == 1:
                exact = honest._lp_eta_one_nuisance(y, X[:, 0], sd)
                if exact is not None:
                    assert exact[0] == pytest.approx(res.fun, abs=1e-9)
                    assert exact[2] == pytest.approx(-res.ineqlin.marginals, abs=1e-8)


def test_inputs_are_checked():
    b, V = np.zeros(4), np.eye(4)
    with pytest.raises(ValueError, match="expected 5 pre- and post-period"):
        relative_magnitudes_breakdown(b, V, 3, 2)
    with pytest.raises(ValueError, match="at least one pre-period"):
        relative_magnitudes_breakdown(b, V, 0, 4)
    with pytest.raises(ValueError, match="'middle'"):
        relative_magnitudes_breakdown(b, V, 2, 2, target="middle")
    V[0, 1] = 0.5
    with pytest.raises(ValueError, match="not symmetric"):
        relative_magnitudes_breakdown(b, V, 2, 2)


# ----------------------------------------------------------------------------- R package, BC data
def test_bc_data_reproduces_the_r_package():
    """R HonestDiD on its BCdata_EventStudy, C-LF, Mbar 0.5 and 2 (4 pre, 4 post: three nuisance
    parameters). Tolerance 1e-9: the inputs are printed to 10 significant digits."""
    data, b, V = load("bc_r_reference.json")
    assert original_ci(b, V, 4, 4) == pytest.approx(data["r_original_ci"], abs=1e-9)
    r = data["r_delta_rm"]
    for i in (0, 3):
        ci = relative_magnitudes_ci(b, V, 4, 4, r["mbar"][i])
        assert (ci.lb, ci.ub) == pytest.approx((r["lb"][i], r["ub"][i]), abs=1e-9)


# ----------------------------------------------------------------------------- Medicaid (README)
README_FIRST = {0.5: (0.0240, 0.0672), 1.0: (0.0170, 0.0720), 1.5: (0.00824, 0.0797), 2.0: (-0.000916, 0.0881)}
STATA_AVERAGE = {0.0: (0.041, 0.075), 0.5: (0.033, 0.080), 1.0: (0.020, 0.090), 1.5: (0.006, 0.103),
                 2.0: (-0.008, 0.117)}


def printed(value: float) -> float:
    """Half a unit of the last digit R printed (3 significant digits)."""
    return 0.5 * 10 ** (np.floor(np.log10(abs(value))) - 2)


def test_medicaid_inputs_give_the_readme_original_interval(medicaid):
    _, b, V = medicaid
    assert original_ci(b, V, 5, 2) == pytest.approx((0.029, 0.064), abs=5e-4)  # printed to 3 decimals


@pytest.mark.parametrize("mbar", [0.5, 1.0, 1.5, 2.0])
def test_medicaid_first_effect_reproduces_the_r_readme(medicaid, mbar):
    """R README table (first post-period, C-LF): every bound to the digits R printed."""
    _, b, V = medicaid
    ci = relative_magnitudes_ci(b, V, 5, 2, mbar)
    lb, ub = README_FIRST[mbar]
    assert ci.lb == pytest.approx(lb, abs=printed(lb))
    assert ci.ub == pytest.approx(ub, abs=printed(ub))


def test_medicaid_average_effect_matches_the_stata_readme(medicaid):
    """Stata README (average of 2014 and 2015), printed to 3 decimals; Stata's own grid and
    simulation, so within 0.001 (2.7 grid steps)."""
    _, b, V = medicaid
    for mbar in (0.0, 1.0, 2.0):
        ci = relative_magnitudes_ci(b, V, 5, 2, mbar, target="average")
        assert (ci.lb, ci.ub) == pytest.approx(STATA_AVERAGE[mbar], abs=1e-3)


def test_medicaid_matches_the_python_port_with_its_simulation_size(medicaid):
    """honestdid 0.1.1 (1000 least-favourable draws, its own random numbers): within one grid step."""
    ref = json.loads((FIXTURES / "medicaid_honestdid_py.json").read_text())
    _, b, V = medicaid
    for key, target in (("first", "first"), ("average", "average")):
        for row in ref[key][:2]:
            ci = relative_magnitudes_ci(b, V, 5, 2, row["mbar"], target=target, lf_sims=1000)
            step = ci.grid[1] - ci.grid[0]
            assert ci.lb == pytest.approx(row["lb"], abs=step * 1.01)
            assert ci.ub == pytest.approx(row["ub"], abs=step * 1.01)


def test_medicaid_breakdown_value(medicaid):
    """README: significant at Mbar = 1.5, not at 2 ("breakdown value ... Mbar = 2")."""
    _, b, V = medicaid
    out = relative_magnitudes_breakdown(b, V, 5, 2)
    assert out["significant"] and not out["capped"]
    assert 1.5 < out["breakdown"] < 2.0
    assert out["breakdown"] == pytest.approx(1.943, abs=0.002)  # measured; guards regressions
    # 0 itself is rejected just below it and not just above (the test is inverted at 0, which
    # HonestDiD's even-sized grid symmetric about 0 never holds)
    def rejects_zero(mbar):
        return all(p.rejects(0.0) for p in honest._pieces(b, V, 5, 2, np.eye(2)[0], mbar, 0.05, 20000, 0))
    assert rejects_zero(out["breakdown"]) and not rejects_zero(out["breakdown"] + 2 * out["tol"])
    assert relative_magnitudes_ci(b, V, 5, 2, out["breakdown"] - 0.05).excludes_zero
    assert relative_magnitudes_breakdown(b, V, 5, 2) == out  # deterministic
    average = relative_magnitudes_breakdown(b, V, 5, 2, target="average")
    assert 1.5 < average["breakdown"] < 2.0  # Stata README: 0.006 at 1.5, -0.008 at 2


def test_breakdown_edges():
    rng = np.random.default_rng(0)
    V = np.diag(np.full(4, 0.01))
    # no effect: not significant even at Mbar = 0
    flat = relative_magnitudes_breakdown(np.array([0.01, -0.01, 0.0, 0.01]), V, 2, 2)
    assert flat["breakdown"] == 0.0 and not flat["significant"]
    # a huge effect over flat pre-trends survives every Mbar up to the cap
    big = relative_magnitudes_breakdown(np.array([0.02, -0.01, 5.0, 5.0]), V, 2, 2, mbar_max=3.0)
    assert big["capped"] and big["breakdown"] == 3.0
    # one post-period: HonestDiD's test without nuisance parameters
    b = np.array([0.05, -0.03, 0.6]) + rng.normal(0, 0.001, 3)
    one = relative_magnitudes_breakdown(b, np.diag(np.full(3, 0.01)), 2, 1)
    ci_low = relative_magnitudes_ci(b, np.diag(np.full(3, 0.01)), 2, 1, max(one["breakdown"] - 0.05, 0.0))
    assert 0 < one["breakdown"] < 10 and ci_low.excludes_zero
