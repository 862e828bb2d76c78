"""diagnosis.html: the headline's smallest detectable change, power curves, and each
analysis's false-positive rate, coverage and bias (jinja2, report.css, inline SVG).

Only rates and planted effects are shown: a diagnosis publishes no count from the data,
so the report's disclosure rules have nothing to suppress here.
"""

from __future__ import annotations


import matplotlib
import numpy as np

from ..report.figures import STYLE, to_svg
from ..report.diagnosis import calibration_words
from ..report.render import METHOD_NAMES, environment

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = ("#1b6ca8", "#c0392b", "#27864a", "#8e44ad", "#d35400", "#555555")


def _percent(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _pm(value, se) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" + (f" ± {100 * se:.1f}" if se is not None else "")


def _number(x, se=None) -> str:
    if x is None:
        return "-"
    text = f"{x:.3g}"
    return text + (f" ± {se:.2g}" if se is not None else "")


def power_figure(cells: list[dict], keys: list[tuple], title: str) -> str:
    """Power against the planted effect (a fall of 1 - E), one line per estimand."""
    with matplotlib.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.2, 3.6))
        for i, key in enumerate(keys):
            points = sorted((c["effect"], c["power"], c.get("power_se") or 0.0) for c in cells
                            if (c["analysis"], c["estimand"]) == key and c.get("power") is not None)
            if not points:
                continue
            e, p, se = (np.array(v, dtype=float) for v in zip(*points))
            colour = COLOURS[i % len(COLOURS)]
            ax.plot(100 * (1 - e), p, marker="o", color=colour, linewidth=1.5, label=f"{key[1]} ({key[0]})")
            ax.fill_between(100 * (1 - e), np.clip(p - 1.96 * se, 0, 1), np.clip(p + 1.96 * se, 0, 1), color=colour,
                            alpha=0.12, linewidth=0)
        ax.axhline(0.8, color="#888888", linestyle="--", linewidth=1)
        ax.axhline(0.05, color="#bbbbbb", linestyle=":", linewidth=1)
        ax.set_xlabel("Planted fall (%)")
        ax.set_ylabel("Share of simulations detecting it")
        ax.set_ylim(0, 1.02)
        ax.legend(frameon=False, fontsize=8, loc="lower right")
        return to_svg(fig, title)


def view_model(record: dict) -> dict:
    cells = record["cells"]
    headline = record.get("headline") or {}
    analyses = []
    for a in record["analyses"]:
        rows = []
        for c in cells:
            if c["analysis"] != a["analysis"] or c["estimand"] == "(fit)":
                continue
            rows.append({"estimand": c["estimand"], "effect": f"{c['effect']:g}", "truth": _number(c.get("truth")),
                         "mean": _number(c.get("mean_estimate"), c.get("mean_estimate_se")),
                         "bias": _number(c.get("bias"), c.get("bias_se")),
                         "rmse": _number(c.get("rmse"), c.get("rmse_se")),
                         "power": _pm(c.get("power"), c.get("power_se")),
                         "coverage": _pm(c.get("coverage"), c.get("coverage_se")),
                         "fpr": _pm(c.get("false_positive_rate"), c.get("false_positive_rate_se")),
                         "type_s": _pm(c.get("type_s"), c.get("type_s_se")),
                         "width": _number(c.get("mean_width"), c.get("mean_width_se")),
                         "failed": c.get("failed", 0)})
        keys = sorted({(a["analysis"], c["estimand"]) for c in cells if c["analysis"] == a["analysis"]
                       and c["estimand"] != "(fit)" and not c["estimand"].startswith("slope")
                       and any(m["analysis"] == a["analysis"] and m["estimand"] == c["estimand"] for m in record["mde"])})
        verdicts = [{"estimand": k, "verdict": v,
                     "words": calibration_words(v, ((a.get("calibration_reasons") or {}).get(k) or {}).get("reasons"))}
                    for k, v in (a.get("calibration") or {}).items()]
        analyses.append({**a, "name": METHOD_NAMES.get(a["method"], a["method"]), "rows": rows, "verdicts": verdicts,
                         "figure": power_figure(cells, keys, f"Power of {a['method']} ({a['outcome']})") if keys else None,
                         "mde": [m for m in record["mde"] if m["analysis"] == a["analysis"]]})
    sentence = mde_sentence(headline)
    return {"title": record["design"].get("title") or "Design diagnosis", "record": record, "headline": headline,
            "sentence": sentence, "analyses": analyses, "settings": record["settings"], "simulator": record["simulator"],
            "percent": _percent}


def mde_sentence(headline: dict) -> str:
    """The headline analysis's MDE in plain words."""
    if not headline:
        return "No analysis of the plan gives a headline, so no smallest detectable change is given."
    mde = headline.get("mde")
    method = headline.get("method")
    name = METHOD_NAMES.get(method, method) if method is not None else None
    if mde is None:
        return (f"Even the largest fall tried would be detected less than 8 times in 10 by the {name}: this design "
                "could miss large changes.")
    fall = round(100 * (1 - mde))
    return (f"The {name} would detect a fall of {fall}% or more at least 8 times in 10; smaller changes could be missed.")


def render_diagnosis(record: dict) -> str:
    return environment().get_template("diagnosis.html.j2").render(**view_model(record))


__all__ = ["render_diagnosis", "mde_sentence", "power_figure", "view_model"]
