"""Random-effects and fixed-effect meta-analysis of one effect across evaluations.

The engine of :mod:`evalkit.synthesis`: plain numpy/scipy on effect sizes ``yi`` and their
sampling variances ``vi``; it never sees a design or a results file. Each quantity follows
R metafor 3.8 (Viechtbauer 2010) for an intercept-only model, so that a number here can be
checked against ``rma()`` and ``predict()`` (tests/fixtures/synthesis/reference.R):

* tau^2 by REML: Fisher scoring from the Hedges (HE) estimate ``max(0, var(y) - mean(v))``,
  step ``(y'PPy - tr P) / tr(PP)`` halved while it would make tau^2 negative (so tau^2 is
  truncated at 0), then metafor's check that the likelihood at tau^2 = 0 is not higher.
  metafor stops when a step changes tau^2 by less than 1e-5; this engine iterates to
  1e-12 (the same fixed point, more digits).
* tau^2 by DerSimonian-Laird: ``max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w))``.
* Fixed effect (``FE``): tau^2 = 0; a sensitivity analysis, not the headline.
* Hartung-Knapp(-Sidik-Jonkman), metafor's ``test="knha"``: the variance of the pooled
  estimate is multiplied by ``s2w = sum w_i (y_i - mu)^2 / (k - 1)`` with random-effects
  weights, and intervals and p-values use t with k - 1 degrees of freedom. metafor does
  NOT truncate ``s2w`` at 1 under "knha" (so the interval can be narrower than the plain
  one); ``test="adhoc"`` is Knapp & Hartung's ad hoc variant, ``max(1, s2w)``.
* Q (Cochran), its chi-square p with k - 1 df (fixed-effect weights); I^2 and H^2 as
  metafor: for random effects ``I^2 = 100 tau^2 / (tau^2 + s^2)`` and ``H^2 = tau^2 / s^2 + 1``
  with the "typical" within-study variance ``s^2 = (k - 1) / (sum w - sum w^2 / sum w)``;
  for the fixed-effect model ``I^2 = max(0, 100 (Q - (k - 1)) / Q)`` and ``H^2 = Q / (k - 1)``.
* Prediction interval as ``predict()``: ``mu +- c sqrt(SE^2 + tau^2)`` with ``c`` the
  t_{k-1} quantile under "knha"/"adhoc" and the normal quantile otherwise; or, with
  ``prediction="hts"``, Higgins, Thompson & Spiegelhalter's (2009) t_{k-2} quantile
  (``predict(..., pi.type="riley")`` in metafor 3.8). SE is the model's own (HK-adjusted
  under "knha"). The fixed-effect model has no prediction interval (NaN; metafor gives NA).

Why by hand: statsmodels.stats.meta_analysis has DerSimonian-Laird and Paule-Mandel (and
an HKSJ-scaled interval) but no REML, no prediction interval and no leave-one-out
(docs/decisions.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special  # not scipy.stats: its import alone costs every evalkit command a second

__all__ = ["MetaResult", "meta_analysis", "leave_one_out", "tau2_reml", "tau2_dl", "SMALL_K"]

METHODS = ("REML", "DL", "FE")
TESTS = ("auto", "knha", "adhoc", "z")
PREDICTIONS = ("default", "hts")

#: below this many studies, test="auto" uses Hartung-Knapp (t with k - 1 df): the normal
#: quantile understates the uncertainty of tau^2 when k is small (IntHout et al. 2014); from
#: 20 studies on, t_{k-1} and z differ by under 5% and the plain z-test is kept
SMALL_K = 20

_TOLERANCE = 1e-12
_MAX_ITER = 10_000


@dataclass(frozen=True)
class MetaResult:
    """One pooled estimate on the ``yi`` scale (log scale for ratios), with its heterogeneity.

    ``df`` is None for a normal-theory test (z) and k - 1 under Hartung-Knapp; ``pi_df`` is
    None when the prediction interval uses the normal quantile. ``i2`` and ``h2`` follow
    metafor (I^2 in per cent). ``hk_factor`` is Hartung-Knapp's ``s2w`` (1 when not used).
    """

    k: int
    method: str
    test: str
    estimate: float
    se: float
    statistic: float
    df: int | None
    p_value: float
    ci_low: float
    ci_high: float
    tau2: float
    i2: float
    h2: float
    q: float
    q_df: int
    q_p: float
    pi_low: float
    pi_high: float
    pi_df: int | None
    prediction: str
    hk_factor: float
    iterations: int
    level: float

    def to_dict(self) -> dict:
        return asdict(self)


def _z_quantile(upper: float) -> float:
    """The normal quantile with ``upper`` probability above it."""
    return float(-special.ndtri(upper))


def _t_quantile(upper: float, df: int) -> float:
    """Student's t quantile with ``upper`` probability above it."""
    return float(-special.stdtrit(df, upper))


def _arrays(yi, vi) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    if y.shape != v.shape:
        raise ValueError(f"yi and vi differ in length ({y.size} and {v.size})")
    if y.size < 2:
        raise ValueError("a meta-analysis needs at least two studies")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(v))):
        raise ValueError("yi and vi must be finite")
    if np.any(v <= 0):
        raise ValueError("sampling variances vi must be positive")
    return y, v


def _fixed(y: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * y) / np.sum(w))


def _q(y: np.ndarray, v: np.ndarray) -> float:
    w = 1.0 / v
    return max(0.0, float(np.sum(w * (y - _fixed(y, w)) ** 2)))


def _trace_p(w: np.ndarray) -> float:
    """tr(P) for an intercept-only model: sum w - sum w^2 / sum w."""
    return float(np.sum(w) - np.sum(w ** 2) / np.sum(w))


def tau2_dl(yi, vi) -> float:
    """DerSimonian-Laird tau^2, truncated at 0 (metafor ``method="DL"``)."""
    y, v = _arrays(yi, vi)
    return max(0.0, (_q(y, v) - (y.size - 1)) / _trace_p(1.0 / v))


def _restricted_loglik(y: np.ndarray, v: np.ndarray, tau2: float) -> float:
    w = 1.0 / (v + tau2)
    mu = _fixed(y, w)
    return float(-0.5 * (y.size - 1) * math.log(2 * math.pi) - 0.5 * np.sum(np.log(v + tau2))
                 - 0.5 * math.log(np.sum(w)) - 0.5 * np.sum(w * (y - mu) ** 2))


def tau2_reml(yi, vi, tol: float = _TOLERANCE, max_iter: int = _MAX_ITER) -> tuple[float, int]:
    """REML tau^2 by metafor's Fisher scoring; returns (tau2, iterations).

    For an intercept-only model ``P = W - w w' / sum w`` so ``y'PPy = sum (w r)^2`` and
    ``y'Py = sum w r^2`` with ``r = y - mu_w``; ``tr(PP) = sum w^2 - 2 sum w^3 / sum w +
    (sum w^2 / sum w)^2``.
    """
    y, v = _arrays(yi, vi)
    tau2 = max(0.0, float(np.var(y, ddof=1) - np.mean(v)))  # Hedges (HE), metafor's start
    iterations, change = 0, tol + 1.0
    while change > tol:
        iterations += 1
        if iterations > max_iter:
            raise RuntimeError("REML Fisher scoring did not converge")
        w = 1.0 / (v + tau2)
        sw, sw2, sw3 = np.sum(w), np.sum(w ** 2), np.sum(w ** 3)
        r = y - np.sum(w * y) / sw
        trace_p = sw - sw2 / sw
        trace_pp = sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
        step = float((np.sum((w * r) ** 2) - trace_p) / trace_pp)
        while tau2 + step < 0.0:  # step halving keeps tau^2 >= 0: the truncation at 0
            step /= 2.0
        new = tau2 + step
        change = abs(new - tau2)
        tau2 = new
    if tau2 > tol and _restricted_loglik(y, v, 0.0) - _restricted_loglik(y, v, tau2) > np.finfo(float).eps ** 0.25:
        tau2 = 0.0  # metafor's ll0check: a local maximum below the boundary's likelihood
    if tau2 <= tol and _reml_score(y, v, 0.0) <= 0.0:
        tau2 = 0.0  # the maximum is on the boundary; do not report the last halving step
    return tau2, iterations


def _reml_score(y: np.ndarray, v: np.ndarray, tau2: float) -> float:
    w = 1.0 / (v + tau2)
    sw = np.sum(w)
    r = y - np.sum(w * y) / sw
    return float(np.sum((w * r) ** 2) - (sw - np.sum(w ** 2) / sw))


def meta_analysis(yi, vi, method: str = "REML", test: str = "auto", level: float = 0.95,
                  prediction: str = "default") -> MetaResult:
    """Pool ``yi`` (with sampling variances ``vi``) as metafor's ``rma()`` and ``predict()``.

    Parameters
    ----------
    yi, vi : array_like
        Effect sizes (log ratios or differences) and their sampling variances (> 0); k >= 2.
    method : {"REML", "DL", "FE"}
        tau^2 estimator; FE is the fixed-effect (common-effect) model.
    test : {"auto", "knha", "adhoc", "z"}
        "auto": Hartung-Knapp ("knha") for a random-effects model with fewer than
        :data:`SMALL_K` studies, z otherwise (always z for FE).
    level : float
        Coverage of the confidence and prediction intervals.
    prediction : {"default", "hts"}
        "default" as metafor's ``predict()``; "hts": t with k - 2 df (needs k >= 3).

    Returns
    -------
    MetaResult
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, not {test!r}")
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, not {prediction!r}")
    y, v = _arrays(yi, vi)
    k = y.size
    if test == "auto":
        test = "knha" if method != "FE" and k < SMALL_K else "z"
    iterations = 0
    if method == "REML":
        tau2, iterations = tau2_reml(y, v)
    elif method == "DL":
        tau2 = tau2_dl(y, v)
    else:
        tau2 = 0.0
    w = 1.0 / (v + tau2)
    mu = _fixed(y, w)
    variance = 1.0 / float(np.sum(w))
    hk_factor, df = 1.0, None
    if test in ("knha", "adhoc"):
        rss = float(np.sum(w * (y - mu) ** 2))
        hk_factor = 0.0 if rss <= np.finfo(float).eps else rss / (k - 1)
        if test == "adhoc":
            hk_factor = max(1.0, hk_factor)
        variance *= hk_factor
        df = k - 1
    se = math.sqrt(variance)
    alpha = 1.0 - level
    crit = _t_quantile(alpha / 2, df) if df is not None else _z_quantile(alpha / 2)
    statistic = mu / se if se > 0 else math.copysign(math.inf, mu) if mu else math.nan
    if df is not None:
        p_value = float(2 * special.stdtr(df, -abs(statistic)))
    else:
        p_value = float(2 * special.ndtr(-abs(statistic)))

    q = _q(y, v)
    q_p = float(special.chdtrc(k - 1, q))
    typical = (k - 1) / _trace_p(1.0 / v)
    if method == "FE":
        i2 = max(0.0, 100.0 * (q - (k - 1)) / q) if q > 0 else 0.0
        h2 = q / (k - 1)
    else:
        i2 = 100.0 * tau2 / (typical + tau2)
        h2 = tau2 / typical + 1.0

    pi_df = df
    pi_crit = crit
    if prediction == "hts":
        if k < 3:
            raise ValueError("the t_{k-2} prediction interval needs at least three studies")
        pi_df = k - 2
        pi_crit = _t_quantile(alpha / 2, pi_df)
    spread = math.sqrt(variance + tau2)
    if method == "FE":  # as predict() for a fixed-effect model: no spread between areas to predict
        spread, pi_df = math.nan, None
    return MetaResult(
        k=k, method=method, test=test, estimate=mu, se=se, statistic=float(statistic), df=df,
        p_value=p_value, ci_low=mu - crit * se, ci_high=mu + crit * se, tau2=tau2, i2=i2, h2=h2,
        q=q, q_df=k - 1, q_p=q_p, pi_low=mu - pi_crit * spread, pi_high=mu + pi_crit * spread,
        pi_df=pi_df, prediction=prediction, hk_factor=hk_factor, iterations=iterations, level=level,
    )


def leave_one_out(yi, vi, **options) -> list[MetaResult]:
    """Refit without each study in turn (metafor's ``leave1out()``); needs k >= 3.

    The i-th result omits study i; ``options`` are passed to :func:`meta_analysis`
    (with ``test="auto"`` the choice is made for the k - 1 studies left).
    """
    y, v = _arrays(yi, vi)
    if y.size < 3:
        raise ValueError("leave-one-out needs at least three studies")
    keep = ~np.eye(y.size, dtype=bool)
    return [meta_analysis(y[row], v[row], **options) for row in keep]
