"""synthesis.html: the jinja2 template reports/templates/synthesis.html.j2 and forest plots.

Forest plots are matplotlib SVG made deterministic by the report's own settings
(evalkit.report.figures): same synthesis, same bytes. The page shows model outputs
(ratios, intervals) only: no counts, so nothing needs disclosure control.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np

from ..report import figures
from ..report.render import environment

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TEMPLATE = "synthesis.html.j2"
#: ratio-axis ticks: readable round ratios on the log axis, whatever its range
RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0,
               10.0, 20.0, 50.0, 100.0)


def forest_figure(studies: list[dict], pooled: list[dict], title: str) -> str:
    """One row per evaluation (interval and a square sized by its weight), then the pooled
    estimates as diamonds with their prediction interval as a thin bar."""
    scale = studies[0]["scale"]
    ratio = scale == "ratio"
    rows = []  # (label, estimate, low, high, kind, weight, pi_low, pi_high)
    headline = next((p for p in pooled if p["subset"] == "all" and p["method"] == "REML"), None)
    weights = headline["details"]["weights"] if headline else {}
    for s in studies:
        level = f"level {s['design_level']}" if s["design_level"] is not None else "level ?"
        rows.append((f"{s['id']} ({level})", s["estimate"], s["ci_low"], s["ci_high"], "study",
                     weights.get(s["id"], 100.0 / len(studies)), None, None))
    for p in pooled:
        if p["method"] != "REML" or p["estimate"] is None:
            continue
        label = "Pooled, all" if p["subset"] == "all" else "Pooled, level 3+"
        rows.append((f"{label} (k = {p['k']})", p["estimate"], p["ci_low"], p["ci_high"], "pooled", None,
                     p["pi_low"], p["pi_high"]))
    n = len(rows)
    with matplotlib.rc_context(figures.STYLE):
        fig, ax = plt.subplots(figsize=(7.2, 0.42 * n + 1.0))
        y = np.arange(n)[::-1].astype(float)
        for yy, (_label, est, low, high, kind, weight, pi_low, pi_high) in zip(y, rows):
            if kind == "study":
                if low is not None and high is not None:
                    ax.plot([low, high], [yy, yy], color=figures.PALETTE["observed"], linewidth=1.1)
                size = 4.0 + 8.0 * math.sqrt((weight or 0) / 100.0)
                ax.plot([est], [yy], "s", ms=size, color=figures.PALETTE["fitted"])
            else:
                if pi_low is not None and pi_high is not None:
                    ax.plot([pi_low, pi_high], [yy, yy], color=figures.PALETTE["counterfactual"], linewidth=1.0)
                ax.fill([low, est, high, est], [yy, yy + 0.28, yy, yy - 0.28], color=figures.PALETTE["observed"])
        ax.axvline(1.0 if ratio else 0.0, color="#555555", linewidth=0.8, linestyle="--")
        if ratio:
            ax.set_xscale("log")
            low, high = ax.get_xlim()
            ticks = _ratio_ticks(low, high)
            ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_xlabel("ratio (below 1 = fewer; log axis)" if "hazard" not in studies[0]["estimand"]
                          else "hazard ratio of being found (above 1 = sooner; log axis)")
        else:
            ax.set_xlabel("difference (0 = no change)")
        ax.set_yticks(y)
        ax.set_yticklabels([r[0] for r in rows])
        ax.set_ylim(-0.8, n - 0.2)
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
        return figures.to_svg(fig, title)


def _ratio_ticks(low: float, high: float) -> list[float]:
    """Round ratios in [low, high], spaced at least a seventh of the log range apart, 1 always kept."""
    gap = (math.log(high) - math.log(low)) / 7
    inside = [t for t in RATIO_TICKS if low <= t <= high]
    chosen = [1.0] if low <= 1.0 <= high else inside[:1]
    for t in sorted(inside, key=lambda t: abs(math.log(t))):
        if all(abs(math.log(t) - math.log(c)) >= gap for c in chosen):
            chosen.append(t)
    return sorted(chosen)


def render_synthesis_html(synthesis: dict) -> str:
    """synthesis.html from the synthesis.json record (nothing is recomputed here)."""
    from .words import mechanism_title

    sections = []
    for summary in synthesis["summaries"]:
        key = (summary["mechanism"], summary["outcome"], summary["estimand"], summary["scale"])
        studies = [s for s in synthesis["studies"]
                   if (s["mechanism"], s["outcome"], s["estimand"], s["scale"]) == key]
        pooled = [p for p in synthesis["pooled"]
                  if (p["mechanism"], p["outcome"], p["estimand"], p["scale"]) == key]
        heading = f"{studies[0]['outcome_label'].capitalize()} ({key[2].replace('_', ' ')}, {key[3]})"
        title = f"{mechanism_title(key[0])}: {studies[0]['outcome_label']} ({key[2].replace('_', ' ')})"
        notes = list(dict.fromkeys(p["note"] for p in pooled if p["note"] and p["method"]))
        sections.append({"key": key, "title": heading, "sentence": summary["sentence"], "studies": studies,
                         "pooled": pooled, "notes": notes, "figure": forest_figure(studies, pooled, title)})
    mechanisms: list[dict] = []
    for section in sections:
        if not mechanisms or mechanisms[-1]["mechanism"] != section["key"][0]:
            mechanisms.append({"mechanism": section["key"][0], "title": mechanism_title(section["key"][0]),
                               "sections": []})
        mechanisms[-1]["sections"].append(section)
    env = environment()
    env.filters["ratio_or_value"] = _number
    return env.get_template(TEMPLATE).render(s=synthesis, mechanisms=mechanisms)


def _number(x, digits: int = 3) -> str:
    """Estimates and bounds with a fixed 3 decimals (0.800, not 0.8); tiny or huge values in g form."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if x == 0 or 0.01 <= abs(x) < 1000:
        return f"{x:.{digits}f}"
    return f"{x:.{digits}g}"
