"""Figures for the report as inline SVG, deterministic byte for byte.

matplotlib's SVG backend is made reproducible by a fixed hash salt, no date in the
metadata and text kept as text (no embedded glyphs).
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

PALETTE = {"observed": "#1f1f1f", "fitted": "#1b6ca8", "counterfactual": "#c0392b", "band": "#f1b6ae"}

#: rc settings only (keys mypy checks against matplotlib's RcKeyType)
STYLE: dict[RcKeyType, Any] = {
    "svg.hashsalt": "evalkit",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": False,
    # labels come from the design and the data: "$" must stay a dollar sign, never start mathtext
    "text.parse_math": False,
}


def to_svg(fig, title: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Title": title}, bbox_inches="tight")
    plt.close(fig)
    svg = buffer.getvalue()
    start = svg.find("<svg")
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg[start:], flags=re.S)
    # an accessible name for screen readers; the figure is decorative otherwise
    return svg.replace("<svg ", f'<svg role="img" aria-label="{_escape(title)}" ', 1)


def _escape(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def its_figure(series: dict, observed_published: list, y_label: str, title: str, comparison: list | None = None) -> str:
    """Observed (disclosure-controlled), fitted and counterfactual with its band."""
    with matplotlib.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.2, 3.6))
        n = len(series["periods"])
        x = np.arange(n)
        start = series["start_index"]
        interruption = series["interruption_index"]
        low = np.array(series["counterfactual_low"], dtype=float)
        high = np.array(series["counterfactual_high"], dtype=float)
        post = x >= start
        ax.fill_between(x[post], low[post], high[post], color=PALETTE["band"], alpha=0.6, linewidth=0,
                        label="counterfactual, likely range")
        observed = np.array([np.nan if v is None else v for v in observed_published], dtype=float)
        in_fit = np.array(series["in_fit"], dtype=bool)
        ax.plot(x[in_fit], observed[in_fit], "o", ms=2.8, color=PALETTE["observed"], label="observed")
        # periods outside the fit: the phase-in (start to interruption) and declared exclusions (exclude_periods)
        phase_in = ~in_fit & (x >= start) & (x < series["interruption_index"])
        excluded = ~in_fit & ~phase_in
        if phase_in.any():
            ax.plot(x[phase_in], observed[phase_in], "o", ms=2.8, mfc="white", color=PALETTE["observed"],
                    label="phase-in (not fitted)")
        if excluded.any():
            for run_start, run_end in _runs(excluded):
                ax.axvspan(run_start - 0.5, run_end + 0.5, color="#f3e6c4", alpha=0.7, linewidth=0)
            ax.plot(x[excluded], observed[excluded], "x", ms=3.2, color="#7a5c00",
                    label="left out of the fit (excluded period)")
        if comparison is not None:
            ax.plot(x, [np.nan if v is None else v for v in comparison], "s", ms=2.2, color="#9a9a9a",
                    label="comparison (observed)")
            ax.plot(x, series["comparison_fitted"], color="#9a9a9a", linewidth=1.2, label="comparison (model)")
        ax.plot(x, series["fitted"], color=PALETTE["fitted"], linewidth=1.6, label="model")
        cf = np.array(series["counterfactual"], dtype=float)
        ax.plot(x[post], cf[post], color=PALETTE["counterfactual"], linewidth=1.4, linestyle="--",
                label="without the intervention (counterfactual)")
        ax.axvline(start - 0.5, color="#555555", linewidth=0.8)
        if interruption != start:
            ax.axvspan(start - 0.5, interruption - 0.5, color="#dddddd", alpha=0.5, linewidth=0)
        ticks = [i for i, p in enumerate(series["periods"]) if _is_year_start(p)] or list(range(0, n, max(1, n // 8)))
        ax.set_xticks(ticks)
        ax.set_xticklabels([series["periods"][i][:4] if _is_year_start(series["periods"][i]) else series["periods"][i]
                            for i in ticks])
        ax.set_ylabel(y_label)
        ax.set_ylim(bottom=0)
        ax.legend(frameon=False, fontsize=8, loc="lower left", ncol=2)
        return to_svg(fig, title)


def _runs(mask) -> list[tuple[int, int]]:
    """(first, last) index of each run of True in a boolean array."""
    runs, begin = [], None
    for i, flag in enumerate(list(mask) + [False]):
        if flag and begin is None:
            begin = i
        elif not flag and begin is not None:
            runs.append((begin, i - 1))
            begin = None
    return runs


def _is_year_start(label: str) -> bool:
    return label.endswith("-01") or label.endswith("Q1") or len(label) == 4


def acf_figure(acf: list, n: int, title: str) -> str:
    """Residual autocorrelation by lag with approximate 95% limits."""
    with matplotlib.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.2, 2.4))
        lags = np.arange(1, len(acf) + 1)
        ax.vlines(lags, 0, acf, color=PALETTE["fitted"], linewidth=2)
        limit = 1.96 / np.sqrt(max(n, 1))
        ax.axhline(limit, color="#888888", linestyle="--", linewidth=0.8)
        ax.axhline(-limit, color="#888888", linestyle="--", linewidth=0.8)
        ax.axhline(0, color="#333333", linewidth=0.8)
        ax.set_xlabel("lag (periods)")
        ax.set_ylabel("autocorrelation")
        ax.set_ylim(-1, 1)
        return to_svg(fig, title)


def _x_ticks(ax, periods: list, n: int) -> None:
    ticks = [i for i, p in enumerate(periods) if _is_year_start(p)]
    if len(ticks) > 12:
        ticks = ticks[:: max(1, len(ticks) // 10)]
    if not ticks:
        ticks = list(range(0, n, max(1, n // 8)))
    ax.set_xticks(ticks)
    ax.set_xticklabels([periods[i][:4] if _is_year_start(periods[i]) else periods[i] for i in ticks])


def event_study_figure(series: dict, y_label: str, title: str, max_pre: int = 24) -> str:
    """Effects by time since adoption: points with pointwise bars, a uniform band, zero line."""
    with matplotlib.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.2, 3.4))
        e = np.array(series["event_time"], dtype=float)
        shown = e >= -max_pre  # the distant pre-period rests on few cohorts: show the recent years
        use_ratio = series.get("ratio") is not None and any(v is not None for v in series.get("ratio") or [])
        if use_ratio:
            est = np.array([np.nan if v is None else (v - 1) * 100 for v in series["ratio"]], dtype=float)
            low = np.array([np.nan if v is None else (v - 1) * 100 for v in series["ratio_ci_low"]], dtype=float)
            high = np.array([np.nan if v is None else (v - 1) * 100 for v in series["ratio_ci_high"]], dtype=float)
            band = None
        else:
            def arr(key):
                return np.array([np.nan if v is None else v for v in series[key]], dtype=float)
            est, low, high = arr("estimate"), arr("ci_low"), arr("ci_high")
            band = (arr("band_low"), arr("band_high")) if series.get("band_low") else None
        e, est, low, high = e[shown], est[shown], low[shown], high[shown]
        if band is not None:
            band = (band[0][shown], band[1][shown])
            ax.fill_between(e, band[0], band[1], color=PALETTE["band"], alpha=0.5, linewidth=0,
                            label="uniform 95% band", step=None)
        transition = int(series.get("transition") or 0)
        if transition > 0:
            ax.axvspan(-0.5, transition - 0.5, color="#dddddd", alpha=0.6, linewidth=0, label="phase-in")
        pre = e < 0
        ax.errorbar(e[pre], est[pre], yerr=[est[pre] - low[pre], high[pre] - est[pre]], fmt="o", ms=3,
                    color="#777777", elinewidth=0.8, label="before adoption")
        ax.errorbar(e[~pre], est[~pre], yerr=[est[~pre] - low[~pre], high[~pre] - est[~pre]], fmt="o", ms=3,
                    color=PALETTE["fitted"], elinewidth=0.8, label="after adoption")
        ax.axhline(0, color="#333333", linewidth=0.8)
        ax.axvline(-0.5, color="#555555", linewidth=0.8, linestyle=":")
        ax.set_xlabel("periods since adoption")
        ax.set_ylabel("% change in rate" if use_ratio else y_label)
        ax.legend(frameon=False, fontsize=8, loc="lower left", ncol=2)
        return to_svg(fig, title)


def synth_figure(series: dict, treated_published: list, y_label: str, title: str) -> str:
    """Treated vs synthetic (top) and the gap with every placebo gap in grey (bottom)."""
    with matplotlib.rc_context(STYLE):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.2, 5.4), sharex=True)
        periods = series["periods"]
        n = len(periods)
        x = np.arange(n)
        start = series["start_index"]
        treated = np.array([np.nan if v is None else v for v in treated_published], dtype=float)
        top.plot(x, treated, color=PALETTE["observed"], linewidth=1.6, label=str(series.get("treated_unit", "treated")))
        top.plot(x, series["synthetic"], color=PALETTE["counterfactual"], linewidth=1.4, linestyle="--",
                 label="synthetic comparison")
        top.axvline(start - 0.5, color="#555555", linewidth=0.8)
        top.set_ylabel(y_label)
        top.legend(frameon=False, fontsize=8)
        treated_rmspe = (series.get("pre_rmspe") or {}).get("treated")
        for donor, gap in sorted((series.get("placebo_gaps") or {}).items()):
            donor_rmspe = (series.get("pre_rmspe") or {}).get(donor)
            if treated_rmspe and donor_rmspe and donor_rmspe > 5 * treated_rmspe:
                continue  # a placebo the donors cannot fit says nothing about the gap (Abadie et al. 2010)
            bottom.plot(x, [np.nan if v is None else v for v in gap], color="#c8c8c8", linewidth=0.8)
        bottom.plot(x, series["gap"], color=PALETTE["observed"], linewidth=1.6, label="gap: adopting area")
        bottom.axhline(0, color="#333333", linewidth=0.8)
        bottom.axvline(start - 0.5, color="#555555", linewidth=0.8)
        bottom.set_ylabel("gap")
        bottom.legend(frameon=False, fontsize=8, loc="lower left")
        _x_ticks(bottom, periods, n)
        return to_svg(fig, title)


def km_figure(curves: list[dict], display_hours: float, title: str, horizon: float | None = None) -> str:
    """Kaplan-Meier curves as the cumulative share found (KMunicate style: steps with a band).

    ``curves``: [{"label", "times", "survival", "lower", "upper"}]; the numbers-at-risk
    table is drawn by the template beneath the figure (so disclosure control applies to it).
    """
    colours = ["#1b6ca8", "#1b6ca8", "#7a7a7a", "#7a7a7a"]
    styles = [":", "-", ":", "-"]
    with matplotlib.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.2, 3.6))
        for i, c in enumerate(curves):
            t = np.array(c["times"], dtype=float)
            found = 1.0 - np.array(c["survival"], dtype=float)
            ax.step(t, found, where="post", color=colours[i % 4], linestyle=styles[i % 4], linewidth=1.6, label=c["label"])
            if c.get("lower") is not None and c.get("upper") is not None:
                low = 1.0 - np.array([np.nan if v is None else v for v in c["upper"]], dtype=float)
                high = 1.0 - np.array([np.nan if v is None else v for v in c["lower"]], dtype=float)
                ax.fill_between(t, low, high, step="post", color=colours[i % 4], alpha=0.12, linewidth=0)
        ax.set_ylim(0, 1)
        ax.set_xlim(0, display_hours)
        ax.set_ylabel("share found")
        ax.set_xlabel("hours since reported missing")
        if horizon:
            ax.axvline(horizon, color="#555555", linewidth=0.6, linestyle=":")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
        return to_svg(fig, title)
