"""Every assignment of a randomization test at once: did's statistic as arrays.

Randomization inference refits did's model for every re-assignment of the adoption dates
(thousands of them), and test inversion refits them again at each trial effect. Refitting
one at a time with :func:`evalkit.methods.did.estimate.estimate` (a Newton solve of the
whole design) took minutes a fit, too slow to diagnose by simulation. Here the panel is
held as a grid (areas x periods) and all assignments are solved together as arrays of
shape (assignments, areas, periods):

* ``poisson_statistics`` (PPML TWFE and Wooldridge's extended TWFE): the score equations
  of a Poisson model with area, period and cell effects say that the fitted counts add up
  to the observed ones over every area, every period and every cell. Each block has a
  closed-form solution given the others (an area's effect is its count over its expected
  count without it, and so on), so the fit is reached by updating the three blocks in
  turn (iterative proportional fitting, the cyclic maximisation of a concave likelihood:
  it converges to the same maximum as Newton's method) until no effect moves by more than
  ``tol`` on the log scale. Cells: ``twfe`` one effect shared by every treated
  post-adoption area-period; ``extended_twfe`` one per adoption cohort and period.
* ``linear_statistics`` (the linear TWFE): ``b = sum(D~ y~) / sum(D~ D~)`` with ``~`` the
  two-way demeaning on the rows in the fit, by alternating projections (exact in one pass
  on a balanced grid).

Rows, separation and the statistic follow ``estimate`` exactly: phase-in rows are left
out, Poisson rows in an area, period or cell with no counts are separated (mean 0), the
statistic is the log of the expected counts with over without the effects on the treated
post-adoption rows (Poisson) or the coefficient (linear). Where the fast path cannot be
sure of giving ``estimate``'s answer (an area or period whose effect only cells inform, a
linear design that does not identify ``b``), the assignment is flagged for
``estimate`` (``fallback``). tests/test_did_fast.py compares both on random balanced and
unbalanced panels with zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bacon import NEVER
from .estimate import DiDSample


@dataclass
class Grid:
    """The analysis panel as (areas x periods) arrays; missing area-periods have ``present`` False."""

    y: np.ndarray
    present: np.ndarray
    exposure: np.ndarray

    @classmethod
    def of(cls, sample: DiDSample, y: np.ndarray | None = None, exposure: np.ndarray | None = None) -> Grid:
        """The grid of ``sample`` (its ``y`` and exposure unless given, one value per sample row)."""
        shape = (sample.n_units, sample.n_times)
        present = np.zeros(shape, dtype=bool)
        present[sample.unit, sample.time] = True
        if int(present.sum()) != len(sample.unit):
            raise ValueError("the sample has two rows for one area and period")
        values = np.zeros(shape)
        values[sample.unit, sample.time] = sample.y if y is None else y
        expo = np.ones(shape)
        rows = sample.exposure if exposure is None else exposure
        if rows is not None:
            expo[sample.unit, sample.time] = rows
        return cls(values, present, expo)


@dataclass
class Layout:
    """Rows and cells of every assignment: the arrays ``estimate``'s ``cells`` gives one at a time."""

    keep: np.ndarray        # (B, U, T) rows in the model (present, not phasing in)
    post: np.ndarray        # (B, U, T) treated rows from the end of the phase-in on
    in_cell: np.ndarray     # (B, U, T) rows with a cell effect
    cohort: np.ndarray      # (B, U) cohort code of each area, n_cohorts for never-treated
    eligible: np.ndarray    # (n_cohorts + 1, T) cohort-periods that are cells
    n_cohorts: int


def layout(sample: DiDSample, positions: np.ndarray, estimator: str, present: np.ndarray) -> Layout:
    """Rows kept, post-adoption rows and cells of each assignment (rows of ``positions``)."""
    positions = np.asarray(positions)
    dates = np.unique(positions[positions != NEVER])
    C = len(dates)
    T = sample.n_times
    cohort = np.where(positions == NEVER, C, np.searchsorted(dates, np.maximum(positions, 0)))
    t = np.arange(T)
    start = dates[:, None] + sample.transition
    post_ct = np.vstack([t[None, :] >= start, np.zeros((1, T), dtype=bool)])
    phase_ct = np.vstack([(t[None, :] >= dates[:, None]) & (t[None, :] < start), np.zeros((1, T), dtype=bool)])
    eligible = post_ct.copy()
    if estimator == "extended_twfe" and sample.control_group == "never_treated":
        eligible[:C] |= t[None, :] < dates[:, None] - 1
    keep = present[None, :, :] & ~phase_ct[cohort]
    return Layout(keep, post_ct[cohort] & keep, eligible[cohort] & keep, cohort, eligible, C)


def _cohort_sums(values: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """(B, U, T) -> (B, C + 1, T): sums over the areas of each cohort."""
    return np.matmul(onehot, values)


def poisson_statistics(sample: DiDSample, positions: np.ndarray, estimator: str, exposure: np.ndarray | None = None,
                       start: dict | None = None, tol: float = 1e-12, max_iter: int = 5000):
    """The PPML statistic (log ratio) of every assignment, by iterative proportional fitting.

    Parameters
    ----------
    sample : DiDSample
        A Poisson sample (``y`` counts, exposure or None).
    positions : (B, U) int array
        Adoption position of each area in each assignment (``NEVER`` for never-treated).
    estimator : "twfe" or "extended_twfe"
    exposure : array, optional
        One exposure per sample row in place of the sample's (test inversion's shifted offset).
    start : dict, optional
        The state a previous call returned for the same assignments: its effects start this
        fit (warm start across the trial effects of a test inversion).
    tol : float
        Stop when no area, period or cell effect moves by more than this on the log scale.

    Returns
    -------
    statistics : (B,) array, NaN where ``estimate`` gives NaN
    fallback : (B,) bool array, assignments to refit with ``estimate``
    state : dict, the effects reached (for ``start``)
    """
    grid = Grid.of(sample, exposure=exposure)
    positions = np.atleast_2d(np.asarray(positions))
    B = positions.shape[0]
    lay = layout(sample, positions, estimator, grid.present)
    C1 = lay.n_cohorts + 1
    onehot = (lay.cohort[:, None, :] == np.arange(C1)[None, :, None]).astype(float)   # (B, C+1, U)
    keep = lay.keep
    Y = np.where(keep, grid.y[None], 0.0)
    # separation (twfe.separated): a group with rows but no counts has all its counts 0, so
    # leaving its rows out changes no other group's total: one pass finds them all
    unit_rows, unit_y = keep.sum(axis=2), Y.sum(axis=2)
    time_rows, time_y = keep.sum(axis=1), Y.sum(axis=1)
    fit = keep & ~((unit_rows > 0) & (unit_y <= 0))[:, :, None] & ~((time_rows > 0) & (time_y <= 0))[:, None, :]
    shared = estimator == "twfe"
    cell_rows = _cohort_sums(lay.in_cell.astype(float), onehot)
    cell_y = _cohort_sums(np.where(lay.in_cell, Y, 0.0), onehot)
    if shared:
        empty_cells = (cell_rows.sum(axis=(1, 2)) > 0) & (cell_y.sum(axis=(1, 2)) <= 0)
        fit &= ~(lay.in_cell & empty_cells[:, None, None])
    else:
        empty_ct = (cell_rows > 0) & (cell_y <= 0)                                        # (B, C+1, T)
        empty_rows = np.matmul(onehot.transpose(0, 2, 1), empty_ct.astype(float)) > 0
        fit &= ~(lay.in_cell & empty_rows)
    in_cell = lay.in_cell & fit
    plain = fit & ~in_cell
    unit_in = fit.any(axis=2)
    time_in = fit.any(axis=1)
    statistics = np.full(B, np.nan)
    fallback = np.zeros(B, dtype=bool)
    never = lay.cohort == lay.n_cohorts
    estimable = (lay.post & fit).any(axis=(1, 2)) & (fit & never[:, :, None]).any(axis=(1, 2))
    # an area or period whose effect only cells inform (no counts outside its cells): its
    # maximum may not exist; leave it to estimate's Newton solve, whatever that gives
    plain_y = np.where(plain, Y, 0.0)
    fallback |= estimable & ((unit_in & ~(plain_y.sum(axis=2) > 0)).any(axis=1)
                             | (time_in & ~(plain_y.sum(axis=1) > 0)).any(axis=1))
    solve = estimable & ~fallback
    state = {"alpha": None, "lam": None, "kappa": None, "iterations": 0}
    if not solve.any():
        return statistics, fallback, state
    idx = np.flatnonzero(solve)
    fitf = fit[idx].astype(float)
    base = grid.exposure[None] * fitf                     # (b, U, T)
    Yf = Y[idx] * fitf
    Yu, Yt = Yf.sum(axis=2), Yf.sum(axis=1)
    oh = onehot[idx]
    cellf = in_cell[idx]
    Yc = _cohort_sums(np.where(cellf, Yf, 0.0), oh)       # (b, C+1, T)
    elig = lay.eligible[None, :, :]
    spread = np.ascontiguousarray(oh.transpose(0, 2, 1))  # (b, U, C+1): a cohort-period value to its areas
    if start is not None and start.get("alpha") is not None and start["alpha"].shape[0] == B:
        alpha, lam, kappa = start["alpha"][idx].copy(), start["lam"][idx].copy(), start["kappa"][idx].copy()
    else:
        alpha = np.ones(Yu.shape)
        lam = np.ones(Yt.shape)
        kappa = np.ones(Yc.shape)
    base_cell = np.where(cellf, base, 0.0)
    base_plain = base - base_cell
    has_unit, has_time = unit_in[idx], time_in[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        for iteration in range(1, max_iter + 1):  # noqa: B007 - the count is returned
            # expected counts without the area effect, by area: the rows outside cells, and each
            # cell row at its cohort-period's effect (matrix products only, no (B, U, T) temporaries)
            cell_part = np.matmul(base_cell, (lam[:, None, :] * kappa).transpose(0, 2, 1))     # (b, U, C+1)
            den_u = np.matmul(base_plain, lam[:, :, None])[:, :, 0] + np.sum(spread * cell_part, axis=2)
            new_alpha = np.where(has_unit, Yu / den_u, 0.0)
            G = np.matmul(oh * new_alpha[:, None, :], base_cell)                                # (b, C+1, T)
            den_t = np.matmul(new_alpha[:, None, :], base_plain)[:, 0, :] + np.sum(kappa * G, axis=1)
            new_lam = np.where(has_time, Yt / den_t, 0.0)
            E = G * new_lam[:, None, :]
            if shared:
                ratio = Yc.sum(axis=(1, 2)) / E.sum(axis=(1, 2))
                new_kappa = np.where(elig, ratio[:, None, None], 1.0)
            else:
                new_kappa = np.where(elig & (E > 0), Yc / E, 1.0)
            move = np.maximum(np.maximum(_log_move(new_alpha, alpha), _log_move(new_lam, lam)),
                              _log_move(new_kappa, kappa))
            alpha, lam, kappa = new_alpha, new_lam, new_kappa
            if np.all(move < tol):
                break
        # not settled within max_iter (a maximum that barely exists): estimate decides
        unsettled = ~(move < tol)
        fallback[idx[unsettled]] = True
        K = np.matmul(spread, kappa)
        m0 = grid.exposure[None] * alpha[:, :, None] * lam[:, None, :]
        post = lay.post[idx]
        total1 = np.sum(np.where(post & (fitf > 0), m0 * K, 0.0), axis=(1, 2))
        total0 = np.sum(np.where(post, m0, 0.0), axis=(1, 2))
        statistics[idx] = np.where(unsettled, np.nan, np.log(total1 / total0))
    effects: dict[str, np.ndarray] = {}
    for name, solved in (("alpha", alpha), ("lam", lam), ("kappa", kappa)):
        every = np.ones((B,) + solved.shape[1:])
        every[idx] = solved
        every[~(every > 0)] = 1.0      # an effect left at 0 (an area or period out of this fit) restarts at 1
        effects[name] = every
    return statistics, fallback, {**effects, "iterations": iteration}


def _log_move(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """The largest change of each assignment's effects on the log scale."""
    ok = (new > 0) & (old > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(ok, np.abs(np.log(np.where(ok, new, 1.0) / np.where(ok, old, 1.0))), 0.0)
    return change.reshape(change.shape[0], -1).max(axis=1)


def linear_statistics(sample: DiDSample, positions: np.ndarray, y: np.ndarray | None = None,
                      tol: float = 1e-14, max_iter: int = 10000):
    """The linear TWFE coefficient of every assignment: ``sum(D~ y~) / sum(D~ D~)``.

    ``~`` is the residual from unit and period effects on the rows in the fit (phase-in rows
    left out), computed by alternating unit and period demeaning (one pass on a complete
    grid). ``y``: one outcome per sample row in place of the sample's.

    Returns the statistics and the assignments to refit with ``estimate`` (none identified).
    """
    grid = Grid.of(sample, y=y)
    positions = np.atleast_2d(np.asarray(positions))
    lay = layout(sample, positions, "twfe", grid.present)
    w = lay.keep.astype(float)
    d = lay.post.astype(float)
    values = np.where(lay.keep, grid.y[None], 0.0)
    both = np.stack([values, d], axis=1)                 # (B, 2, U, T): demean y and D together
    wb = w[:, None]
    n_unit = np.maximum(w.sum(axis=2), 1.0)[:, None, :, None]
    n_time = np.maximum(w.sum(axis=1), 1.0)[:, None, None, :]
    complete = bool(lay.keep.all())
    resid = both
    for _ in range(max_iter):
        before = resid
        resid = (resid - (resid * wb).sum(axis=3, keepdims=True) / n_unit) * wb
        resid = (resid - (resid * wb).sum(axis=2, keepdims=True) / n_time) * wb
        if complete:
            break
        if np.max(np.abs(resid - before)) <= tol * max(1.0, float(np.max(np.abs(resid)))):
            break
    y_t, d_t = resid[:, 0], resid[:, 1]
    dd = np.sum(d_t * d_t, axis=(1, 2))
    fallback = ~(dd > 1e-8 * np.maximum(np.sum(d, axis=(1, 2)), 1.0)) | ~lay.post.any(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        statistics = np.where(fallback, np.nan, np.sum(d_t * y_t, axis=(1, 2)) / dd)
    return statistics, fallback


__all__ = ["Grid", "Layout", "layout", "poisson_statistics", "linear_statistics"]


# ----------------------------------------------------------------------------- exact where it matters
#: an entry within this many standard errors (x max(1, |statistic|)) of a value a decision or
#: an output rests on is recomputed by ``estimate``: the fast path agrees with it to about
#: 1e-12 (tests/test_did_fast.py), so no decision can differ
DECISIVE_WINDOW = 1e-6
#: and at least this many entries nearest each threshold
DECISIVE_NEAREST = 2
#: area-periods solved at once (assignments x areas x periods), to bound memory
CHUNK_CELLS = 1_000_000


class PermutationStatistics:
    """did's statistic for every assignment of a randomization test, fast and exact where it matters.

    ``vector(theta)`` gives the statistic of every assignment (the observed one first) on the
    data with the null effect ``theta`` removed from the observed treated post-adoption rows
    (``theta = 0``: the data as they are). Every entry comes from the array solvers above,
    except the entries some output rests on, which come from ``estimate`` itself, the same
    call (warm start included) the one-at-a-time path made: the observed assignment's; at
    each null evaluated, those within ``DECISIVE_WINDOW`` of that null's rejection threshold;
    on every line a test inversion interpolates between two evaluated nulls, those within the
    window of the threshold at the interval's ends, at each null and at three times its
    distance from the estimate; and at 0, those at or near the smallest and largest value and
    the histogram's bin edges. ``refresh`` adds the entries the latest vectors make decisive;
    did repeats the test and its inversion until none is added, so every comparison and every
    number reported is the one-at-a-time path's to the last bit (the fast entries only decide
    which side of a threshold they fall, by margins a million times their error).
    """

    def __init__(self, sample: DiDSample, estimator: str, positions: np.ndarray, treated_post: np.ndarray,
                 start_params: np.ndarray | None, se: float):
        self.sample, self.estimator = sample, estimator
        self.positions = np.atleast_2d(np.asarray(positions))
        self.treated_post = treated_post.astype(float)
        self.start_params = start_params
        self.scale = float(se) if np.isfinite(se) and se > 0 else 1.0
        self._fast: dict[float, np.ndarray] = {}
        self._fallback: dict[float, np.ndarray] = {}
        self._exact: dict[tuple[int, float], float] = {}
        self._states: dict[float, list[dict]] = {}
        self.decisive: dict[float, set[int]] = {}
        self.exact_fits = 0
        #: every entry from ``estimate`` (the one-at-a-time path, on the same assignments)
        self.everywhere = False

    # the data at a null
    def _shifted(self, theta: float) -> DiDSample:
        from dataclasses import replace

        sample = self.sample
        if theta == 0.0:
            return sample
        if sample.family == "poisson":
            base = sample.exposure if sample.exposure is not None else np.ones(len(sample.y))
            return replace(sample, exposure=base * np.exp(theta * self.treated_post))
        return replace(sample, y=sample.y - theta * self.treated_post)

    def exact(self, b: int, theta: float) -> float:
        """``estimate``'s statistic of assignment ``b`` at the null ``theta`` (cached)."""
        from .estimate import estimate

        key = (int(b), float(theta))
        if key not in self._exact:
            fit = estimate(self._shifted(theta), self.positions[b], self.estimator, covariance=False,
                           start=self.start_params)
            self._exact[key] = float(fit.statistic)
            self.exact_fits += 1
        return self._exact[key]

    def fast(self, theta: float) -> np.ndarray:
        """The array solvers' statistics at ``theta`` (assignments they leave to ``estimate`` included).

        Assignments are solved in chunks of at most ``CHUNK_CELLS`` area-periods in all, so
        memory stays bounded (a few dozen MiB) whatever the numbers of areas and assignments.
        """
        theta = float(theta)
        if theta not in self._fast:
            shifted = self._shifted(theta)
            n = len(self.positions)
            size = max(1, CHUNK_CELLS // max(1, self.sample.n_units * self.sample.n_times))
            near = min(self._states, key=lambda t: abs(t - theta)) if self._states else None
            values, fallback, states = np.full(n, np.nan), np.zeros(n, dtype=bool), []
            for k, first in enumerate(range(0, n, size)):
                chunk = slice(first, first + size)
                if self.sample.family == "poisson":
                    start = None if near is None else self._states[near][k]
                    values[chunk], fallback[chunk], state = poisson_statistics(shifted, self.positions[chunk],
                                                                               self.estimator, start=start)
                    states.append(state)
                else:
                    values[chunk], fallback[chunk] = linear_statistics(shifted, self.positions[chunk])
            if states:
                self._states[theta] = states
            self._fast[theta], self._fallback[theta] = values, fallback
        return self._fast[theta]

    def vector(self, theta: float) -> np.ndarray:
        """Every assignment's statistic at ``theta``: fast, with the decisive entries exact."""
        theta = float(theta)
        if self.everywhere:
            return np.array([self.exact(b, theta) for b in range(len(self.positions))])
        out = self.fast(theta).copy()
        wanted = {0} | self.decisive.get(theta, set()) | set(np.flatnonzero(self._fallback[theta]).tolist())
        for b in sorted(wanted):
            out[b] = self.exact(b, theta)
        return out

    # which entries decide
    def _near(self, values: np.ndarray, threshold: float, nearest: int = 0) -> set[int]:
        """Entries whose |value| is within the window of ``threshold`` (and the ``nearest`` closest)."""
        gap = np.abs(np.abs(values) - threshold)
        gap = np.where(np.isfinite(gap), gap, np.inf)
        # the window covers the tie tolerance of the p-value (randomization.TIE_TOLERANCE) too
        window = DECISIVE_WINDOW * self.scale * max(1.0, threshold) + 1e-8 * threshold
        chosen = set(np.flatnonzero(gap <= window).tolist())
        if nearest:
            order = np.argsort(gap[1:], kind="stable")[:nearest] + 1
            chosen |= {int(b) for b in order if np.isfinite(gap[b])}
        return chosen

    def refresh(self, estimate: float, ends: tuple[float | None, float | None] = (None, None)) -> bool:
        """Mark the entries the evaluated nulls make decisive; True when any was added."""
        added = False

        def mark(theta: float, entries: set[int]) -> None:
            nonlocal added
            have = self.decisive.setdefault(theta, set())
            new = entries - have
            if new:
                have |= new
                added = True

        thetas = sorted(self._fast)
        vectors = {t: self.vector(t) for t in thetas}
        for t, v in vectors.items():
            mark(t, self._near(v, abs(v[0]), DECISIVE_NEAREST))
        if 0.0 in vectors:
            v = vectors[0.0]
            finite = np.isfinite(v)
            if finite.any():
                lo, hi = float(v[finite].min()), float(v[finite].max())
                span = max(hi - lo, 1e-300)
                window = DECISIVE_WINDOW * max(span, self.scale)
                edges = np.histogram(v[finite], bins=30)[1]
                near_edge = finite & (np.min(np.abs(np.where(finite, v, 0.0)[:, None] - edges[None, :]), axis=1) <= window)
                extreme = finite & ((v <= lo + window) | (v >= hi - window))
                mark(0.0, set(np.flatnonzero(near_edge | extreme).tolist()))
        points = [e for e in ends if e is not None] + thetas + [estimate + 3.0 * (t - estimate) for t in thetas]
        for i, a in enumerate(thetas):
            for c in thetas[i + 1:]:
                va, vc = vectors[a], vectors[c]
                for e in points:
                    line = va + (e - a) / (c - a) * (vc - va)
                    if np.isfinite(line[0]):
                        near = self._near(line, abs(line[0]))
                        mark(a, near)
                        mark(c, near)
        return added


__all__ += ["PermutationStatistics"]
