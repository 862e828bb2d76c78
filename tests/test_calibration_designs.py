"""The shipped calibration designs (issue 12): 1, 2 and 4 adopting areas of 12, simulated from
their ``diagnose:`` blocks, and a 200-simulation check that default intervals hold 95%.

The full table (every analysis of every plan, 1,000 simulations, and the shipped example
planted into its data) is benchmarks/calibration.py's; here the cheapest run that still
tests something: survival_did (the Cox hazard ratio and the restricted-mean difference at
their default inference) on the 4-area design, 200 simulations at no change and a 15% fall
on 2 workers. A coverage passes when it is within 93-97% allowing for 3 Monte Carlo SEs
(about 1.5 points at 200), a rejection rate of a true null within 3-7% likewise.

Measured on 2026-12-03 (benchmarks/calibration.py, 100-200 simulations): survival_did's
two intervals and staggered_did's four aggregations hold on the 2- and 4-area designs; its's
cumulative effect does not (84-87% coverage with 1 and 4 adopting areas) and its level
change is borderline (89-90%); did gives no interval with 1 adopting area of 12 (12
assignments) and was too slow to diagnose with 4 (2,970 assignments enumerated a fit).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import evalkit
from evalkit.diagnose.model import ModelSimulator

from .conftest import ROOT

DESIGNS = {1: "calibration_1_area.yaml", 2: "calibration_2_areas.yaml", 4: "calibration_4_areas.yaml"}
SIMS = 200


def _design(n: int) -> evalkit.Design:
    return evalkit.load_design(ROOT / "designs" / DESIGNS[n])


@pytest.mark.parametrize("n", sorted(DESIGNS))
def test_calibration_designs_declare_the_default_plan_and_a_model(n):
    design = _design(n)
    model = design.diagnose
    assert model is not None and model.areas == 12 and sum(model.adoption.values()) == n
    assert model.autocorrelation == 0.5  # users' monthly series are persistent
    methods = [s.method for s in design.analysis]
    assert methods[:2] == ["its", "did"] and methods[-1] == "survival_did"
    assert ("staggered_did" in methods) == (len(model.adoption) > 1)
    for spec in design.analysis:  # nothing but defaults: the table is about what a user gets
        assert spec.model_fields_set <= {"method", "outcome"}, spec
    simulator = ModelSimulator(design)
    draw = next(simulator.draws(0, [1.0]))
    assert len(draw.data.adoption) == n and len(draw.data.comparison_units) == 12 - n


def test_autocorrelated_shocks_persist_with_the_declared_variance():
    design = _design(1)
    simulator = ModelSimulator(design)
    shocks = simulator._shocks(np.random.default_rng(1), 400, 60)
    variance = np.log1p(design.diagnose.overdispersion)
    centred = np.log(shocks) + variance / 2  # mean 0 by construction (no per-series demeaning bias)
    assert shocks.mean() == pytest.approx(1.0, abs=0.01)
    assert shocks.var() == pytest.approx(design.diagnose.overdispersion, rel=0.1)
    lag1 = np.sum(centred[:, :-1] * centred[:, 1:]) / np.sum(centred[:, :-1] ** 2)
    assert lag1 == pytest.approx(0.5, abs=0.03)
    # autocorrelation 0 keeps the independent gamma shocks (and the same random numbers)
    independent = ModelSimulator(design.model_copy(update={"diagnose": design.diagnose.model_copy(
        update={"autocorrelation": 0.0})}))
    shape = 1 / design.diagnose.overdispersion
    assert np.array_equal(independent._shocks(np.random.default_rng(2), 3, 5),
                          np.random.default_rng(2).gamma(shape, 1 / shape, (3, 5)))


def _within(rate: float, se: float, band: tuple[float, float]) -> bool:
    return band[0] - 3 * se <= rate <= band[1] + 3 * se


@pytest.fixture(scope="module")
def survival_diagnosis():
    from evalkit.diagnose import diagnose

    design = _design(4)
    design4 = design.model_copy(update={"analysis": [s for s in design.analysis if s.method == "survival_did"]})
    design4._path, design4._sha256 = design._path, design._sha256
    return diagnose(design4, sims=SIMS, effect=[0.85], workers=2, model="synthetic", mde=False)


@pytest.mark.slow
@pytest.mark.parametrize("estimand", ["rmst_difference_did", "hazard_ratio_did"])
def test_survival_did_default_intervals_hold_with_four_adopting_areas(survival_diagnosis, estimand):
    record = survival_diagnosis.analyses[0]
    assert record["failed_fits"] == 0
    for effect in (1.0, 0.85):
        cell = survival_diagnosis.cell(estimand, effect, method="survival_did")
        n = cell["simulations"] - cell["failed"]
        assert n == SIMS and cell["unbounded_intervals"] == 0
        se = math.sqrt(0.95 * 0.05 / n)  # the MC SE at the target, not at the (possibly far) estimate
        assert _within(cell["coverage"], se, (0.93, 0.97)), (estimand, effect, cell["coverage"])
        if effect == 1.0:
            assert _within(cell["false_positive_rate"], se, (0.03, 0.07)), (estimand, cell["false_positive_rate"])
