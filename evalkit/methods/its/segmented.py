"""Segmented regression for interrupted time series: the numerical core of ``its``.

Model (log link for counts, identity for gaussian)::

    g(E[y_t]) = log(exposure_t) + b0 + b1 * time_t + b2 * level_t + b3 * slope_t + seasonal_t

with ``time_t`` centred at the interruption (so b1 is the pre-intervention slope and b0 the
pre-trend level there), ``level_t`` the step (0 before, 1 after; a linear ramp through a
phase-in when asked), and ``slope_t = post_t * (time_t + origin)`` the slope change, 0 at the
first post-intervention period (Linden's itsa) or at the last pre-intervention period
(Lopez Bernal et al. 2017; ``origin`` = 1). Centring the slope term at the interruption keeps
b2 the jump at the interruption; an uncentred ``post * time`` turns b2 into the level change
extrapolated back to time 0 (the trap in METHODS.md).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.tools.sm_exceptions import ConvergenceWarning

COUNT_FAMILIES = ("poisson", "quasipoisson", "negbin")


def newey_west_auto_lags(n: int) -> int:
    """Newey & West (1994) rule of thumb: floor(4 * (n / 100) ** (2 / 9))."""
    return int(np.floor(4.0 * (n / 100.0) ** (2.0 / 9.0)))


@dataclass
class SegmentedDesign:
    """Columns of the segmented-regression design matrix and which periods are fitted."""

    X: np.ndarray
    X_counterfactual: np.ndarray
    names: list[str]
    fitted_mask: np.ndarray      # False for excluded transition periods
    post_mask: np.ndarray        # True from the interruption on (transition periods included)
    interruption: int            # position of the first fully-post period


def segmented_design(periods: pd.PeriodIndex, start: int, transition: int, transition_mode: str,
                     harmonics: int, season_length: int | None, slope_change: bool,
                     slope_origin: str) -> SegmentedDesign:
    """Build the design matrix.

    Parameters
    ----------
    periods : PeriodIndex
        The series' periods, consecutive.
    start : int
        Position of the intervention's first period.
    transition : int
        Phase-in periods after ``start``: excluded from the fit (``exclude``) or modelled as a
        linear ramp of the level change (``ramp``).
    """
    n = len(periods)
    position = np.arange(n, dtype=float)
    interruption = start + transition
    time = position - interruption
    post = (position >= interruption).astype(float)
    if transition_mode == "ramp" and transition > 0:
        level = np.clip((position - start + 1.0) / (transition + 1.0), 0.0, 1.0)
        fitted_mask = np.ones(n, dtype=bool)
    else:
        level = post.copy()
        fitted_mask = (position < start) | (position >= interruption)
    columns = [np.ones(n), time, level]
    names = ["intercept", "pre_slope", "level_change"]
    if slope_change:
        origin = 1.0 if slope_origin == "last_pre" else 0.0
        columns.append(post * (time + origin))
        names.append("slope_change")
    if harmonics:
        cycle = season_length or _periods_a_year(periods)
        calendar = season_position(periods, cycle)
        for k in range(1, harmonics + 1):
            angle = 2.0 * np.pi * k * calendar / cycle
            columns += [np.sin(angle), np.cos(angle)]
            names += [f"sin{k}", f"cos{k}"]
    X = np.column_stack(columns)
    X_cf = X.copy()
    X_cf[:, names.index("level_change")] = 0.0
    if slope_change:
        X_cf[:, names.index("slope_change")] = 0.0
    return SegmentedDesign(X, X_cf, names, fitted_mask, position >= start, interruption)


def _periods_a_year(periods: pd.PeriodIndex) -> int:
    code = periods.freqstr[0]
    return {"M": 12, "Q": 4}.get(code, 1)


def season_position(periods: pd.PeriodIndex, cycle: int) -> np.ndarray:
    """Calendar position within the year (month 1-12, quarter 1-4), as in tsModel::harmonic."""
    code = periods.freqstr[0]
    if code == "M" and cycle == 12:
        return np.asarray(periods.month, dtype=float)
    if code == "Q" and cycle == 4:
        return np.asarray(periods.quarter, dtype=float)
    return np.arange(1, len(periods) + 1, dtype=float)


@dataclass
class SegmentedFit:
    """A fitted segmented regression: coefficients, their covariance, and the inference used."""

    params: np.ndarray
    cov: np.ndarray
    names: list[str]
    family: str
    dispersion: float
    df_resid: int
    nobs: int
    lags: int | None
    use_t: bool
    alpha_nb: float | None
    pearson_residuals: np.ndarray
    pearson_dispersion: float      # Pearson chi2 / df of the Poisson fit, for the check
    rho: float | None = None

    def se(self, name: str) -> float:
        i = self.names.index(name)
        return float(np.sqrt(self.cov[i, i]))

    def critical(self, alpha: float) -> float:
        if self.use_t:
            return float(stats.t.ppf(1 - alpha / 2, self.df_resid))
        return float(stats.norm.ppf(1 - alpha / 2))

    def p_value(self, z: float) -> float:
        if self.use_t:
            return float(2 * stats.t.sf(abs(z), self.df_resid))
        return float(2 * stats.norm.sf(abs(z)))


def _hac(lags: int | None, groups: np.ndarray | None, correction: bool) -> dict:
    """statsmodels covariance arguments: Bartlett HAC, within each series when stacked."""
    if groups is None:
        return {"cov_type": "HAC", "cov_kwds": {"maxlags": lags, "use_correction": correction}}
    # stacked series (controlled ITS): autocovariances within each series, summed, as
    # Stata's newey on panel data
    return {"cov_type": "hac-panel", "cov_kwds": {"groups": groups, "maxlags": lags,
                                                  "use_correction": "hac" if correction else False}}


def fit_segmented(y: np.ndarray, X: np.ndarray, names: list[str], family: str, offset: np.ndarray | None,
                  errors: str, lags: int | None, groups: np.ndarray | None = None) -> SegmentedFit:
    """Fit the segmented regression with the declared family and error structure.

    ``groups`` marks stacked series (rows sorted by series, then time): Newey-West
    autocovariances are then taken within each series.
    """
    n, k = X.shape
    if family in COUNT_FAMILIES:
        poisson = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset).fit()
        mu = poisson.mu
        pearson = (y - mu) / np.sqrt(mu)
        pearson_dispersion = float(np.sum(pearson**2) / (n - k))
        if family == "negbin":
            return _fit_negbin(y, X, names, offset, errors, lags, poisson, pearson_dispersion, groups)
        scale = 1.0 if family == "poisson" else pearson_dispersion
        if errors == "newey_west":
            # the sandwich does not depend on the dispersion: statsmodels' GLM HAC matches
            # the textbook Bartlett-kernel sandwich with no small-sample adjustment
            robust = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset).fit(**_hac(lags, groups, False))
            cov = np.asarray(robust.cov_params())
        else:
            cov = np.asarray(poisson.cov_params()) * scale
        return SegmentedFit(np.asarray(poisson.params), cov, names, family, scale, n - k, n,
                            lags if errors == "newey_west" else None, False, None, pearson, pearson_dispersion)
    # gaussian: ordinary least squares, t-based inference as Stata's regress/newey
    ols = sm.OLS(y, X).fit()
    resid = ols.resid
    sigma2 = float(np.sum(resid**2) / (n - k))
    if errors == "newey_west":
        robust = sm.OLS(y, X).fit(**_hac(lags, groups, True))
        cov = np.asarray(robust.cov_params())
        params = np.asarray(ols.params)
        rho = None
    elif errors == "prais_winsten":
        params, cov, rho, sigma2, resid = prais_winsten(y, X)
    else:
        cov = np.asarray(ols.cov_params())
        params = np.asarray(ols.params)
        rho = None
    return SegmentedFit(params, cov, names, family, sigma2, n - k, n,
                        lags if errors == "newey_west" else None, True, None,
                        resid / np.sqrt(sigma2), float("nan"), rho)


def _fit_negbin(y, X, names, offset, errors, lags, poisson, pearson_dispersion, groups=None) -> SegmentedFit:
    n, k = X.shape
    model = sm.NegativeBinomial(y, X, offset=offset, loglike_method="nb2")
    # start from the Poisson fit and the moment estimate of alpha: var = mu + alpha mu^2
    mu = np.asarray(poisson.mu)
    alpha0 = max(float(np.sum(((y - mu) ** 2 - mu) / mu**2) / (n - k)), 1e-4)
    kwargs = _hac(lags, groups, False) if errors == "newey_west" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = model.fit(start_params=np.append(np.asarray(poisson.params), alpha0), method="newton",
                           maxiter=200, disp=0, **kwargs)
        if not result.mle_retvals.get("converged", False):
            result = model.fit(start_params=np.append(np.asarray(poisson.params), alpha0), method="bfgs",
                               maxiter=5000, disp=0)
            result = model.fit(start_params=result.params, method="newton", maxiter=200, disp=0, **kwargs)
    if not result.mle_retvals.get("converged", False) or not np.all(np.isfinite(result.params)):
        raise NegbinNotConverged()
    params = np.asarray(result.params)
    cov = np.asarray(result.cov_params())[:k, :k]
    alpha = float(params[-1])
    mu = np.exp(X @ params[:k] + (offset if offset is not None else 0.0))
    pearson = (y - mu) / np.sqrt(mu + alpha * mu**2)
    return SegmentedFit(params[:k], cov, names, "negbin", alpha, n - k, n,
                        lags if errors == "newey_west" else None, False, alpha, pearson, pearson_dispersion)


class NegbinNotConverged(RuntimeError):
    """The negative binomial likelihood did not converge (the caller says what to do)."""


def prais_winsten(y: np.ndarray, X: np.ndarray, tol: float = 1e-8, max_iter: int = 100):
    """Iterated Prais-Winsten AR(1) regression (the first observation kept, scaled by sqrt(1 - rho^2)).

    rho is estimated from the OLS residuals of the untransformed model as
    sum(e_t e_{t-1}) / sum(e_{t-1}^2) (Stata's ``prais`` default "regress" rho) and
    iterated to convergence.
    """
    n, k = X.shape
    params = np.linalg.lstsq(X, y, rcond=None)[0]
    rho = 0.0
    for _ in range(max_iter):
        e = y - X @ params
        new_rho = float(np.dot(e[1:], e[:-1]) / np.dot(e[:-1], e[:-1]))
        new_rho = float(np.clip(new_rho, -0.999, 0.999))
        ys, Xs = _pw_transform(y, X, new_rho)
        new_params = np.linalg.lstsq(Xs, ys, rcond=None)[0]
        converged = abs(new_rho - rho) < tol and np.max(np.abs(new_params - params)) < tol
        params, rho = new_params, new_rho
        if converged:
            break
    ys, Xs = _pw_transform(y, X, rho)
    resid_t = ys - Xs @ params
    sigma2 = float(resid_t @ resid_t / (n - k))
    cov = sigma2 * np.linalg.inv(Xs.T @ Xs)
    return params, cov, rho, sigma2, resid_t


def _pw_transform(y, X, rho):
    scale = np.sqrt(1.0 - rho**2)
    ys = np.concatenate([[scale * y[0]], y[1:] - rho * y[:-1]])
    Xs = np.vstack([scale * X[0], X[1:] - rho * X[:-1]])
    return ys, Xs


def breusch_godfrey(residuals: np.ndarray, X: np.ndarray, order: int) -> tuple[float, float]:
    """Breusch-Godfrey LM test: n R^2 of the residuals on X and their own lags (zeros pre-sample)."""
    n = len(residuals)
    lagged = np.column_stack([np.concatenate([np.zeros(j), residuals[:-j]]) for j in range(1, order + 1)])
    Z = np.column_stack([X, lagged])
    coef = np.linalg.lstsq(Z, residuals, rcond=None)[0]
    fitted = Z @ coef
    total = np.sum((residuals - residuals.mean()) ** 2)
    r2 = 1.0 - np.sum((residuals - fitted) ** 2) / total if total > 0 else 0.0
    statistic = float(n * r2)
    return statistic, float(stats.chi2.sf(statistic, order))


def acf(residuals: np.ndarray, nlags: int) -> list[float]:
    """Sample autocorrelations of the residuals at lags 1..nlags."""
    centred = residuals - residuals.mean()
    denom = float(centred @ centred)
    if denom == 0:
        return [0.0] * nlags
    return [float(centred[j:] @ centred[:-j] / denom) for j in range(1, nlags + 1)]
