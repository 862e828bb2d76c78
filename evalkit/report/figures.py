"""Figures for the report as inline SVG, deterministic byte for byte.

matplotlib's SVG backend is made reproducible by a fixed hash salt, no date in the
metadata and text kept as text (no embedded glyphs).
"""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PALETTE = {"observed": "#1f1f1f", "fitted": "#1b6ca8", "counterfactual": "#c0392b", "band": "#f1b6ae"}

_RC = {
    "svg.hashsalt": "evalkit",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": False,
}


def _to_svg(fig, title: str) -> str:
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
    with matplotlib.rc_context(_RC):
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
        if (~in_fit).any():
            ax.plot(x[~in_fit], observed[~in_fit], "o", ms=2.8, mfc="white", color=PALETTE["observed"],
                    label="phase-in (not fitted)")
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
        return _to_svg(fig, title)


def _is_year_start(label: str) -> bool:
    return label.endswith("-01") or label.endswith("Q1") or len(label) == 4


def acf_figure(acf: list, n: int, title: str) -> str:
    """Residual autocorrelation by lag with approximate 95% limits."""
    with matplotlib.rc_context(_RC):
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
        return _to_svg(fig, title)
