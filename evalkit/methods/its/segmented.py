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
# the model modules, not statsmodels.api: the api imports every model and its test runner
# (about 0.3-0.5 s and 27 MiB of a national run, benchmarks/national.py)
from statsmodels.discrete.discrete_model import NegativeBinomial
from statsmodels.genmod.families import Poisson
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.regression.linear_model import OLS
from scipy import stats
from statsmodels.tools.sm_exceptions import ConvergenceWarning

COUNT_FAMILIES = ("poisson", "quasipoisson", "negbin")
#: the small_sample options that refer t statistics to a simulated fixed-b reference
FIXED_B = ("fixed_b_ar1", "fixed_b")


def newey_west_auto_lags(n: int) -> int:
    """Newey & West (1994) rule of thumb: floor(4 * (n / 100) ** (2 / 9))."""
    return int(np.floor(4.0 * (n / 100.0) ** (2.0 / 9.0)))


def fixed_b_auto_lags(n: int) -> int:
    """Lazarus, Lewis, Stock & Watson (2018) bandwidth for Newey-West with fixed-b critical values.

    Their rule is a Bartlett bandwidth S = 1.3 sqrt(T) (weights 1 - j / S); statsmodels'
    ``maxlags`` L has weights 1 - j / (L + 1), so L = round(1.3 sqrt(T)) - 1. A wider window
    than Newey & West (1994) trades a little power for a variance estimate whose own noise
    the fixed-b reference then accounts for; on short monthly series the narrow rule leaves
    residual autocorrelation out and the normal reference ignores the estimate's noise
    (docs/methods/its.md, "Small-sample intervals").
    """
    return max(1, int(round(1.3 * np.sqrt(n))) - 1)


@dataclass(frozen=True)
class ScaledT:
    """A reference distribution ``scale * t(df)`` for a t statistic (df inf: a scaled normal).

    A fixed-b distribution is known through quantiles (Kiefer-Vogelsang's polynomial, or
    draws); an interval at the design's level and a p-value need one distribution. It is
    pinned by two quantiles of |T|: exactly at the design's level ``1 - alpha`` (so the
    interval's critical value is the fixed-b one) and at a farther level, which sets the
    tail for p-values. A p-value below alpha is then exactly an interval that excludes no
    change: both come from this one distribution.
    """

    df: float
    scale: float

    @classmethod
    def through(cls, level: float, quantile: float, far_level: float, far_quantile: float) -> "ScaledT":
        """The scaled t whose two-sided ``level`` and ``far_level`` quantiles of |T| are those given."""
        from scipy.optimize import brentq

        a, b = 0.5 + level / 2, 0.5 + far_level / 2
        target = far_quantile / quantile
        normal_ratio = stats.norm.ppf(b) / stats.norm.ppf(a)
        df = float("inf")
        if target > normal_ratio * (1 + 1e-9):
            def gap(log_df: float) -> float:
                d = np.exp(log_df)
                return stats.t.ppf(b, d) / stats.t.ppf(a, d) - target

            low = np.log(0.3)
            df = float(np.exp(brentq(gap, low, np.log(1e7), xtol=1e-12))) if gap(low) > 0 else 0.3
        base = stats.t.ppf(a, df) if np.isfinite(df) else stats.norm.ppf(a)
        return cls(df, float(quantile / base))

    def critical(self, alpha: float) -> float:
        q = 1 - alpha / 2
        return float(self.scale * (stats.t.ppf(q, self.df) if np.isfinite(self.df) else stats.norm.ppf(q)))

    def p_value(self, z: float) -> float:
        x = abs(z) / self.scale
        return float(2 * (stats.t.sf(x, self.df) if np.isfinite(self.df) else stats.norm.sf(x)))


#: draws of the statistic's null distribution, and their seed: fixed, so the same data give
#: the same interval to the last bit
FIXED_B_DRAWS = 1999
FIXED_B_SEED = 20050101


def standard_draws(n: int, seed: int = FIXED_B_SEED) -> np.ndarray:
    """The reference's standard normal draws, one column a draw: the same for the same ``n``
    (read-only: :func:`median_unbiased_rho` makes them once and reuses them at every step)."""
    rng = np.random.default_rng(seed)
    out = np.ascontiguousarray(rng.standard_normal((FIXED_B_DRAWS, n)).T)
    out.setflags(write=False)
    return out


def series_blocks(groups: np.ndarray) -> list[np.ndarray]:
    """Row positions of each stacked series (rows sorted by series, then time)."""
    breaks = np.flatnonzero(np.diff(groups) != 0) + 1
    return np.split(np.arange(len(groups)), breaks)


def ar1_errors(draws: np.ndarray, blocks: list[np.ndarray], rho: float) -> np.ndarray:
    """Stationary AR(1) series with unit variance, coefficient ``rho``, from standard normal
    ``draws`` (rows: time; each block its own series); ``rho`` 0 returns the draws."""
    if rho == 0:
        return draws
    from scipy.signal import lfilter

    out = np.empty_like(draws)
    innovation = np.sqrt(1.0 - rho**2)
    for rows in blocks:
        part = draws[rows[0]:rows[-1] + 1].copy()
        part[0] /= innovation   # so the first value is the draw itself: stationary from the start
        out[rows[0]:rows[-1] + 1] = lfilter([innovation], [1.0, -rho], part, axis=0)
    return np.ascontiguousarray(out)


def panel_constant_share(residuals: np.ndarray, blocks: list[np.ndarray], rho: float, share: float) -> float:
    """Share of the working residuals' variance that is a constant within each stacked series.

    controlled_its's comparison panels share one intercept (Stata's itsa), so an area whose
    rate sits above or below the others leaves a constant in its residuals; the within-panel
    Newey-West sums it as if it were autocorrelation, which widens the interval although the
    contrasts do not load on it. The reference carries the same constants so its statistic
    is computed as the estimate's is. Moment estimate: the panel means' spread beyond what
    the within-panel errors give a mean of T periods (their long-run variance at the AR(1)
    plug-in: 1 + 2 share rho / (1 - rho) times the within variance). 0 for one series.
    """
    if len(blocks) < 2:
        return 0.0
    u = np.asarray(residuals, dtype=float)
    means = np.array([u[rows].mean() for rows in blocks])
    sizes = np.array([len(rows) for rows in blocks], dtype=float)
    within = sum(float(np.sum((u[rows] - m) ** 2)) for rows, m in zip(blocks, means)) / (len(u) - len(blocks))
    long_run = 1.0 + 2.0 * share * rho / (1.0 - rho)
    between = float(np.mean(sizes * means**2))
    tau = max(between - within * long_run, 0.0) / float(np.mean(sizes))
    return tau / (tau + within) if tau + within > 0 else 0.0


def reference_errors(n: int, blocks: list[np.ndarray], rho: float, share: float = 1.0,
                     draws: np.ndarray | None = None, noise: np.ndarray | None = None) -> np.ndarray:
    """The reference's errors, one column a draw: a stationary AR(1) (coefficient ``rho``) with
    variance ``share`` plus independent noise with variance ``1 - share``, within each series.

    For counts the working residuals are Pearson residuals: a Poisson part, independent from
    period to period whatever the rate does, and the extra-Poisson part, which carries the
    persistence of the rate (Zeger 1988: a latent AR(1) log rate); its share of the residual
    variance is :func:`persistent_share`'s. Gaussian residuals are all share 1. ``rho`` 0 (or
    ``share`` 0) gives the independent standard normal draws of the plain fixed-b reference,
    unchanged; the noise has its own seeded draws. ``draws`` and ``noise``: those draws, when
    the caller already made them (:func:`standard_draws` with its two seeds).
    """
    draws = standard_draws(n) if draws is None else draws
    if rho == 0 or share <= 0:
        return draws
    persistent = ar1_errors(draws, blocks, rho)
    if share >= 1:
        return persistent
    noise = standard_draws(n, FIXED_B_SEED + 1) if noise is None else noise
    return np.ascontiguousarray(np.sqrt(share) * persistent + np.sqrt(1.0 - share) * noise)


def lag1_autocorrelation(u: np.ndarray, blocks: list[np.ndarray]) -> np.ndarray:
    """Lag-1 autocorrelation of residuals ``u`` (a column each) within each series, pooled:
    sum of within-series lag-1 products of the series-demeaned residuals over their sum of squares."""
    u = u.reshape(len(u), -1)
    num = np.zeros(u.shape[1])
    den = np.zeros(u.shape[1])
    for rows in blocks:
        part = u[rows[0]:rows[-1] + 1]
        part = part - part.mean(axis=0)
        num += np.einsum("tr,tr->r", part[1:], part[:-1])
        den += np.einsum("tr,tr->r", part, part)
    return num / np.where(den > 0, den, 1.0)


#: the plug-in AR(1) coefficient of the reference is kept inside [0, RHO_MAX]
RHO_MAX = 0.95
RHO_MIN = 0.0


def persistent_share(dispersion: float | None, Xw: np.ndarray, blocks: list[np.ndarray], rho: float) -> float:
    """The persistent (extra-Poisson) part's share of the working residuals' variance.

    ``dispersion`` None (gaussian): all of it. For counts the Pearson dispersion D estimates
    1 + s * tr(M R) / (n - k), s the extra-Poisson variance on the Pearson scale and R the
    AR(1) correlation matrix at ``rho``: the residual maker M removes more of a persistent
    series than of independent noise (tr(M R) < n - k), so s = (D - 1) (n - k) / tr(M R),
    and the share is s / (1 + s).
    """
    if dispersion is None:
        return 1.0
    n, k = Xw.shape
    lost = 0.0   # tr(H R), H the hat matrix: tr(M R) = n - tr(H R)
    hat_factor = np.linalg.solve(Xw.T @ Xw, Xw.T)
    for rows in blocks:
        lag = np.abs(np.subtract.outer(np.arange(len(rows)), np.arange(len(rows))))
        R = rho ** lag.astype(float)
        lost += float(np.einsum("ij,ji->", Xw[rows], hat_factor[:, rows] @ R))
    kept = (n - lost) / (n - k)
    extra = max(float(dispersion) - 1.0, 0.0) / max(kept, 1e-6)
    return extra / (1.0 + extra)


def median_unbiased_rho(residuals: np.ndarray, Xw: np.ndarray, groups: np.ndarray | None,
                        dispersion: float | None = None) -> tuple[float, float, float]:
    """The lag-1 autocorrelation of the working residuals, the AR(1) coefficient whose
    residuals' median lag-1 autocorrelation (the same regressors, the same statistic) equals
    it, and the persistent part's share of the variance (:func:`persistent_share`).

    A residual autocorrelation is biased towards zero, by about (1 + 3 rho) / T for a mean
    alone (Kendall 1954) and by more with a trend, a step and a slope change (the residual
    maker removes low-frequency movement); on 36-60 points the bias is 0.1-0.2. Andrews'
    (1993) median-unbiased correction inverts the statistic's median as a function of rho;
    here that function is simulated for the design's own regressors from the reference's
    draws (fixed seed: deterministic). For counts the Poisson part of the residuals is
    independent noise that dilutes the autocorrelation (Zeger 1988), so the coefficient is
    that of the persistent part, whose share is estimated jointly. Clipped to [0, RHO_MAX]: a
    negative coefficient is taken as 0 (independent errors, the plain fixed-b reference).
    """
    n = Xw.shape[0]
    groups = np.zeros(n) if groups is None else np.asarray(groups)
    blocks = series_blocks(groups)
    observed = float(lag1_autocorrelation(np.asarray(residuals, dtype=float), blocks)[0])
    bread = np.linalg.inv(Xw.T @ Xw)
    # the same seeded draws at every step of the root search (about twenty): made once
    draws, noise = standard_draws(n), standard_draws(n, FIXED_B_SEED + 1)

    def median_at(rho: float) -> float:
        e = reference_errors(n, blocks, rho, persistent_share(dispersion, Xw, blocks, rho), draws, noise)
        return float(np.median(lag1_autocorrelation(e - Xw @ (bread @ (Xw.T @ e)), blocks)))

    if not np.isfinite(observed) or observed <= median_at(RHO_MIN):
        rho = RHO_MIN
    elif observed >= median_at(RHO_MAX):
        rho = RHO_MAX
    else:
        from scipy.optimize import brentq

        rho = float(brentq(lambda r: median_at(r) - observed, RHO_MIN, RHO_MAX, xtol=1e-6))
    return observed, rho, persistent_share(dispersion, Xw, blocks, rho)


class FixedBSimulation:
    """The fixed-b null distribution of a Newey-West t statistic for this design's own regressors.

    Kiefer & Vogelsang's (2005) fixed-b critical values are derived for stationary regressors;
    with the trend, step and slope-change columns of a segmented regression the limit
    depends on the regressors (Bunzel & Vogelsang 2005 for a trend), and on short series the
    finite-sample distribution matters too. Both are pivotal in the error autocorrelation,
    so the distribution is simulated here, exactly as the estimate's statistic is computed,
    with independent standard normal errors: for a contrast ``c``, the numerator
    ``c' B^-1 Xw' e`` and the Bartlett sandwich of the residuals ``M e`` (``Xw`` the
    regressors times the square roots of the fit's working weights, so a GLM is treated as
    its weighted least squares; ``M`` the residual maker; lags and series as declared; the
    same n / (n - k) factor). For a location model this is Kiefer & Vogelsang's distribution
    (tests/test_its_calibration.py checks it against their polynomial).

    The fixed-b limit is pivotal in the autocorrelation; 36-60 points are not the limit. With
    ``rho`` > 0 (``small_sample: fixed_b_ar1``, the default) the errors are simulated with the
    persistence the residuals show (:func:`median_unbiased_rho`): an AR(1) part with variance
    ``share`` plus independent noise (:func:`reference_errors`), and, for stacked series, a
    constant per series with variance ``panel_share`` (:func:`panel_constant_share`). The same
    seeded draws: the same data give the same reference.
    """

    def __init__(self, Xw: np.ndarray, lags: int, groups: np.ndarray | None, factor: float, alpha: float,
                 rho: float = 0.0, share: float = 1.0, panel_share: float = 0.0):
        n, k = Xw.shape
        self.Xw = Xw
        self.bread = np.linalg.inv(Xw.T @ Xw)
        groups = np.zeros(n) if groups is None else np.asarray(groups)
        # each series' rows, with lags zeros either side: the Bartlett sum is then a sum of
        # squared moving sums (below), O(draws x rows) whatever the lags
        # (lags beyond the series keep their weights 1 - j / (lags + 1), as statsmodels')
        self.lags = int(lags)
        self.blocks = series_blocks(groups)
        self.rho = float(rho)
        self.share = float(share)
        # draws in columns: the moving sums below run down contiguous rows; with rho > 0 each
        # series' errors carry an AR(1) part made from the same standard normal draws
        self.e = reference_errors(n, self.blocks, self.rho, self.share)
        self.panel_share = float(panel_share)
        if self.panel_share > 0:
            constants = np.random.default_rng(FIXED_B_SEED + 2).standard_normal((len(self.blocks), FIXED_B_DRAWS))
            per_row = np.repeat(constants, [len(rows) for rows in self.blocks], axis=0)
            self.e = np.ascontiguousarray(np.sqrt(1.0 - self.panel_share) * self.e
                                          + np.sqrt(self.panel_share) * per_row)
        self.u = self.e - Xw @ (self.bread @ (Xw.T @ self.e))
        self.factor = factor
        self.alpha = alpha
        self._cache: dict = {}

    def statistics(self, c: np.ndarray) -> np.ndarray:
        """Draws of |T| for the contrast ``c`` under the null.

        The Bartlett long-run variance sum_{s,t} (1 - |s - t| / (L + 1)) z_s z_t equals
        sum_m S_m^2 / (L + 1), S_m the sum of z over the window m..m + L (zeros outside the
        series), since a pair (s, t) shares L + 1 - |s - t| windows.
        """
        g = self.Xw @ (self.bread @ c)
        numerator = g @ self.e
        z = self.u * g[:, None]
        width = self.lags + 1
        lrv = np.zeros(z.shape[1])
        for rows in self.blocks:
            padded = np.zeros((len(rows) + 2 * self.lags + 1, z.shape[1]))
            padded[self.lags + 1:self.lags + 1 + len(rows)] = z[rows[0]:rows[-1] + 1]
            cumulative = np.cumsum(padded, axis=0)
            window = cumulative[width:] - cumulative[:-width]
            lrv += np.einsum("mr,mr->r", window, window) / width
        return np.abs(numerator) / np.sqrt(self.factor * lrv)

    def reference(self, c: np.ndarray) -> ScaledT:
        key = np.round(c / (np.max(np.abs(c)) or 1.0), 12).tobytes()
        if key not in self._cache:
            draws = self.statistics(c)
            level = 1 - self.alpha
            far = max(0.99, 1 - self.alpha / 5)
            q = np.quantile(draws, [level, far])
            self._cache[key] = ScaledT.through(level, float(q[0]), far, float(q[1]))
        return self._cache[key]


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
    fixed_b: FixedBSimulation | None = None   # the reference when small_sample is fixed_b
    se_type: str = "model"
    small_sample: str = "none"
    residual_lag1: float | None = None        # fixed_b_ar1: the working residuals' lag-1 autocorrelation

    def se(self, name: str) -> float:
        i = self.names.index(name)
        return float(np.sqrt(self.cov[i, i]))

    def contrast(self, name: str) -> np.ndarray:
        """The contrast vector that picks one coefficient."""
        c = np.zeros(len(self.names))
        c[self.names.index(name)] = 1.0
        return c

    @property
    def reference(self) -> str:
        """The reference distribution's name, as results.json records it."""
        if self.fixed_b is not None:
            return self.small_sample
        return f"t({self.df_resid})" if self.use_t else "normal"

    def procedure(self, c: np.ndarray | None = None) -> dict:
        """What an estimate's details say about its interval and p-value (``c``: its contrast)."""
        out: dict[str, str | float | None] = {"se_type": self.se_type, "reference": self.reference}
        if self.fixed_b is not None and c is not None:
            ref = self.fixed_b.reference(c)
            out["fixed_b_df"] = ref.df if np.isfinite(ref.df) else None
            out["fixed_b_scale"] = ref.scale
            out["critical_value"] = ref.critical(self.fixed_b.alpha)
        if self.fixed_b is not None and self.small_sample == "fixed_b_ar1":
            out["reference_rho"] = self.fixed_b.rho
            out["reference_persistent_share"] = self.fixed_b.share
            if len(self.fixed_b.blocks) > 1:
                out["reference_panel_share"] = self.fixed_b.panel_share
            out["residual_lag1"] = self.residual_lag1
        return out

    def critical(self, alpha: float, c: np.ndarray | None = None) -> float:
        """Critical value at ``alpha`` for the contrast ``c`` (fixed-b depends on it; None: the
        first post-interruption contrast the caller has no better choice for, the level change)."""
        if self.fixed_b is not None:
            return self.fixed_b.reference(self._default(c)).critical(alpha)
        if self.use_t:
            return float(stats.t.ppf(1 - alpha / 2, self.df_resid))
        return float(stats.norm.ppf(1 - alpha / 2))

    def p_value(self, z: float, c: np.ndarray | None = None) -> float:
        if self.fixed_b is not None:
            return self.fixed_b.reference(self._default(c)).p_value(z)
        if self.use_t:
            return float(2 * stats.t.sf(abs(z), self.df_resid))
        return float(2 * stats.norm.sf(abs(z)))

    def _default(self, c):
        return c if c is not None else self.contrast("level_change")


def _hac(lags: int | None, groups: np.ndarray | None, correction: bool) -> dict:
    """statsmodels covariance arguments: Bartlett HAC, within each series when stacked."""
    if groups is None:
        return {"cov_type": "HAC", "cov_kwds": {"maxlags": lags, "use_correction": correction}}
    # stacked series (controlled ITS): autocovariances within each series, summed, as
    # Stata's newey on panel data
    return {"cov_type": "hac-panel", "cov_kwds": {"groups": groups, "maxlags": lags,
                                                  "use_correction": "hac" if correction else False}}


def fit_segmented(y: np.ndarray, X: np.ndarray, names: list[str], family: str, offset: np.ndarray | None,
                  errors: str, lags: int | None, groups: np.ndarray | None = None,
                  small_sample: str = "none", alpha: float = 0.05) -> SegmentedFit:
    """Fit the segmented regression with the declared family and error structure.

    ``groups`` marks stacked series (rows sorted by series, then time): Newey-West
    autocovariances are then taken within each series. ``small_sample: fixed_b`` (with
    ``errors: newey_west``) keeps the same standard errors and refers each estimate's t
    statistic to its fixed-b null distribution for this design (:class:`FixedBSimulation`);
    ``none`` uses the normal (counts) or t(n - k) (gaussian) reference. ``fixed_b_ar1`` (the
    default) simulates that reference with AR(1) errors at the working residuals' bias-corrected
    coefficient instead of independent ones. ``alpha`` is the design's: the fixed-b reference
    is exact at that level.
    """
    fit = _fit_segmented(y, X, names, family, offset, errors, lags, groups, small_sample)
    if errors == "newey_west":
        fit.se_type = "newey_west" if groups is None else "newey_west_within_series"
        if small_sample in FIXED_B:
            if lags is None:  # the callers resolve ``lags: auto`` to a number before fitting
                raise ValueError(f"small_sample: {small_sample} needs the Newey-West lags as a number")
            n, k = X.shape
            if family in COUNT_FAMILIES:
                mu = np.exp(X @ fit.params + (offset if offset is not None else 0.0))
                weight = mu / (1.0 + fit.alpha_nb * mu) if family == "negbin" else mu
                factor = 1.0
            else:
                weight = np.ones(n)
                factor = n / (n - k)   # Stata's newey factor, in the statistic as in the estimate
            Xw = X * np.sqrt(weight)[:, None]
            rho, share, panel_share = 0.0, 1.0, 0.0
            if small_sample == "fixed_b_ar1":
                # the working residuals: Pearson for counts (the weighted least squares'
                # residuals), standardised OLS residuals for gaussian
                dispersion = fit.pearson_dispersion if family in COUNT_FAMILIES else None
                fit.residual_lag1, rho, share = median_unbiased_rho(fit.pearson_residuals, Xw, groups, dispersion)
                if groups is not None:
                    panel_share = panel_constant_share(fit.pearson_residuals, series_blocks(np.asarray(groups)),
                                                       rho, share)
            fit.small_sample = small_sample
            fit.fixed_b = FixedBSimulation(Xw, lags, groups, factor, alpha, rho, share, panel_share)
    elif errors == "prais_winsten":
        fit.se_type = "prais_winsten"
    return fit


def _fit_segmented(y, X, names, family, offset, errors, lags, groups, small_sample) -> SegmentedFit:
    n, k = X.shape
    if family in COUNT_FAMILIES:
        poisson = GLM(y, X, family=Poisson(), offset=offset).fit()
        mu = poisson.mu
        pearson = (y - mu) / np.sqrt(mu)
        pearson_dispersion = float(np.sum(pearson**2) / (n - k))
        if family == "negbin":
            return _fit_negbin(y, X, names, offset, errors, lags, poisson, pearson_dispersion, groups)
        scale = 1.0 if family == "poisson" else pearson_dispersion
        if errors == "newey_west":
            # the sandwich does not depend on the dispersion: statsmodels' GLM HAC matches
            # the textbook Bartlett-kernel sandwich with no small-sample adjustment
            robust = GLM(y, X, family=Poisson(), offset=offset).fit(**_hac(lags, groups, False))
            cov = np.asarray(robust.cov_params())
        else:
            cov = np.asarray(poisson.cov_params()) * scale
        return SegmentedFit(np.asarray(poisson.params), cov, names, family, scale, n - k, n,
                            lags if errors == "newey_west" else None, False, None, pearson, pearson_dispersion)
    # gaussian: ordinary least squares, t-based inference as Stata's regress/newey
    ols = OLS(y, X).fit()
    resid = ols.resid
    sigma2 = float(np.sum(resid**2) / (n - k))
    if errors == "newey_west":
        robust = OLS(y, X).fit(**_hac(lags, groups, True))
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
    model = NegativeBinomial(y, X, offset=offset, loglike_method="nb2")
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
