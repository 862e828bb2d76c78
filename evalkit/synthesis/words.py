"""The synthesis in plain words, in DOMAIN.md's evidence language.

One sentence per mechanism and outcome: how many evaluations, which way most of them
point, the pooled change with its likely range (the 95% interval), and what a new area
might see (the prediction interval), e.g. "Single points of contact: 6 evaluations, fewer
missing reports in most; pooled 9% fewer (likely range 3% to 14%); in a new area the
change could be anything from a 12% fall to a 2% rise." p-values stay in the annex.
"""

from __future__ import annotations

from ..evidence import percent_words, range_end_words
from .studies import Study

#: headings for the mechanisms (design file ``intervention.mechanism``), in the plural
MECHANISM_TITLES = {
    "information_sharing": "Information-sharing protocols",
    "cross_agency_technology": "Access to other agencies' systems",
    "single_point_of_contact": "Single points of contact",
    "multiagency_meetings": "Multi-agency meetings",
    "shared_terminology": "Shared terminology",
    "roles_responsibilities": "Clear roles and responsibilities",
    "joint_training": "Joint training",
    "other": "Other mechanisms",
}


def mechanism_title(mechanism: str) -> str:
    if mechanism.startswith("other: "):  # an intervention outside the review's mechanisms, by its name
        return f"Another mechanism: {mechanism[len('other: '):]}"
    return MECHANISM_TITLES.get(mechanism, mechanism.replace("_", " ").capitalize())


def _found(estimand: str) -> bool:
    """Hazard ratios of being found: above 1 = found sooner."""
    return "hazard" in estimand


def _count(k: int) -> str:
    return f"{k} evaluation{'s' if k != 1 else ''}"


def _direction(down: bool, label: str, estimand: str, scale: str) -> str:
    if scale == "ratio" and _found(estimand):
        return "children found sooner" if not down else "children found later"
    if scale == "ratio":
        return f"{'fewer' if down else 'more'} {label}"
    return f"{label} {'lower' if down else 'higher'}"


def _share(n: int, k: int) -> str:
    if n == k:
        return "in all" if k > 2 else ("in both" if k == 2 else "")
    if 2 * n > k:
        return "in most"
    return f"in {n} of {k}"


def _ratio_change(estimate: float, low: float, high: float, estimand: str) -> str:
    if low <= 1.0 <= high:
        if _found(estimand):
            return (f"little or no clear difference in how soon children are found (the data are consistent "
                    f"with anything from {range_end_words(low - 1)} to {range_end_words(high - 1)} in the chance of being "
                    "found at any given moment)")
        return (f"little or no clear difference (the data are consistent with anything from "
                f"{range_end_words(low - 1)} to {range_end_words(high - 1)})")
    ends = sorted((abs(low - 1), abs(high - 1)))
    if _found(estimand):
        word = "more" if estimate > 1 else "less"
        return (f"{percent_words(estimate - 1)} {word} likely to be found at any given moment "
                f"(likely range {percent_words(ends[0])} to {percent_words(ends[1])})")
    word = "fewer" if estimate < 1 else "more"
    return f"{percent_words(estimate - 1)} {word} (likely range {percent_words(ends[0])} to {percent_words(ends[1])})"


def _difference_change(estimate: float, low: float, high: float) -> str:
    if low <= 0.0 <= high:
        return f"little or no clear difference (the data are consistent with anything from {low:+.3g} to {high:+.3g})"
    return f"a change of {estimate:+.3g} (likely range {low:+.3g} to {high:+.3g})"


def change_words(scale: str, estimand: str, estimate: float, low: float, high: float) -> str:
    if scale == "ratio":
        return _ratio_change(estimate, low, high, estimand)
    return _difference_change(estimate, low, high)


def _prediction(scale: str, estimand: str, low: float, high: float) -> str:
    if scale == "ratio" and _found(estimand):
        return (f"in a new area the chance of being found at any given moment could change by anything from "
                f"{range_end_words(low - 1)} to {range_end_words(high - 1)}")
    if scale == "ratio":
        return f"in a new area the change could be anything from {range_end_words(low - 1)} to {range_end_words(high - 1)}"
    return f"in a new area the change could be anything from {low:+.3g} to {high:+.3g}"


def summary_sentence(members: list[Study], headline: dict, strong: dict | None) -> str:
    """The plain-words summary of one group (mechanism, outcome, estimand, scale).

    ``headline`` is the REML record for all evaluations (or the k = 1 record); ``strong``
    the REML record for design level 3 and above (None when no evaluation reaches it).
    """
    first = members[0]
    k = len(members)
    neutral = 1.0 if first.scale == "ratio" else 0.0
    down = sum(1 for s in members if s.estimate < neutral)
    majority_down = 2 * down >= k
    n_majority = down if majority_down else k - down
    lead = f"{mechanism_title(first.mechanism)}, {first.outcome_label}: {_count(k)}"
    if k == 1:
        s = first
        level = f" (design level {s.design_level})" if s.design_level is not None else ""
        if s.ci_low is None or s.ci_high is None:
            return f"{lead}{level}, too few to pool; it found an estimate without a likely range."
        return (f"{lead}{level}, too few to pool; it found "
                f"{change_words(s.scale, s.estimand, s.estimate, s.ci_low, s.ci_high)}.")
    spread = _share(n_majority, k)
    parts = [f"{lead}, {_direction(majority_down, first.outcome_label, first.estimand, first.scale)} {spread}".rstrip()]
    pooled = change_words(first.scale, first.estimand, headline["estimate"], headline["ci_low"], headline["ci_high"])
    parts.append(("pooled: " if pooled.startswith("little") else "pooled ") + pooled)
    if headline.get("pi_low") is not None:
        parts.append(_prediction(first.scale, first.estimand, headline["pi_low"], headline["pi_high"]))
    else:
        parts.append("two evaluations are too few to say what a new area might see")
    sentence = "; ".join(parts) + "."
    levels = sum(1 for s in members if s.design_level is not None and s.design_level >= 3)
    if strong is None:
        sentence += " None of them compared with similar areas with its checks passed (design level 3 or above)."
    elif levels < k:
        if strong["k"] == 1:
            sentence += " Only 1 of them reached design level 3 or above (compared with similar areas)."
        else:
            sentence += (f" Pooling only the {levels} at design level 3 or above (compared with similar areas): "
                         + change_words(first.scale, first.estimand, strong["estimate"], strong["ci_low"],
                                        strong["ci_high"]) + ".")
    else:
        sentence += " All of them compared with similar areas (design level 3 or above)."
    return sentence
