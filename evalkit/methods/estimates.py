"""One way to turn a coefficient and its standard error into an estimate's record.

Every method reports ratio estimands on the log scale internally (a log rate ratio, a log
hazard ratio) and difference estimands on their own scale; the interval is built on that
scale and a ratio's ends are exponentiated, so a ratio interval is never symmetric and never
crosses zero. Before this module each method built its ratio, interval and p-value its own
way (issue 14); now they all call :func:`wald` or :func:`wald_estimate`, and a method whose
interval comes from another procedure (randomization test inversion, a bootstrap, placebo
inversion) builds its record itself and says which procedure in ``details``.

An engine never imports this module (it holds the results layer's record type); the front
ends do.
"""

from __future__ import annotations

import numpy as np

from ..results import Estimate


def finite_or_none(x) -> float | None:
    """``None`` for a missing or non-finite number, else the number as a float (JSON has no NaN)."""
    return None if x is None or not np.isfinite(x) else float(x)


def wald(coef: float, se: float, critical: float, ratio: bool) -> tuple[float, float, float]:
    """The estimate and its interval ``coef -/+ critical * se``, exponentiated for a ratio.

    ``coef`` and ``se`` are on the log scale when ``ratio`` is true. A non-finite ``se``
    gives NaN ends (numpy's arithmetic), which :func:`wald_estimate` records as missing.
    """
    if ratio:
        return float(np.exp(coef)), float(np.exp(coef - critical * se)), float(np.exp(coef + critical * se))
    return float(coef), float(coef - critical * se), float(coef + critical * se)


def wald_estimate(common: dict, estimand: str, coef: float, se: float, critical: float, ratio: bool,
                  p_value: float | None, details: dict | None = None, group: str | None = None) -> Estimate:
    """An :class:`~evalkit.results.Estimate` whose interval is ``coef -/+ critical * se``.

    Parameters
    ----------
    common : dict
        ``outcome`` and ``method`` (every method builds this once per analysis).
    estimand : str
        The estimand's name (catalogue and report words key on it).
    coef, se : float
        The coefficient or linear combination and its standard error, on the log scale
        for a ratio.
    critical : float
        The reference distribution's critical value at the design's alpha (normal or t:
        the method decides, since the small-sample reference is part of its inference).
    ratio : bool
        True: the record's scale is ``ratio`` (1 = no change); false: ``difference``.
    p_value : float or None
        Computed by the caller with the same reference distribution as ``critical``.
    details : dict, optional
        Method-specific details, recorded as given (their order is results.json's order).
    """
    value, low, high = wald(coef, se, critical, ratio)
    return Estimate(**common, estimand=estimand, scale="ratio" if ratio else "difference",
                    estimate=finite_or_none(value), se=finite_or_none(se), ci_low=finite_or_none(low),
                    ci_high=finite_or_none(high), p_value=p_value, group=group,
                    details=dict(details or {}))
