"""Disclosure control for published counts (DOMAIN.md, "Disclosure control").

Defaults: counts 1-9 suppressed below national level, the rest rounded to 5. Presets:
``dfe`` rounds to 10 (no suppression beyond that rounding: 1-4 round to 0, shown as "<5");
``nhs`` suppresses 1-7 then rounds to 5. Zeros are true zeros and are shown. Model outputs
(ratios, intervals) need no suppression. results.json is the analyst's record and is not
controlled; the report is.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SUPPRESSED = "c"  # the Government Statistical Service's symbol for a confidential cell


@dataclass(frozen=True)
class DisclosureRule:
    min_count: int   # counts from 1 to min_count - 1 are suppressed
    round_to: int    # the rest are rounded to the nearest multiple
    enabled: bool = True

    def describe(self) -> str:
        if not self.enabled:
            return "Disclosure control is OFF: counts are shown exactly. Do not publish this report."
        parts = []
        if self.min_count > 1:
            parts.append(f"counts from 1 to {self.min_count - 1} are suppressed (shown as '{SUPPRESSED}')")
        if self.round_to > 1:
            parts.append(f"other counts are rounded to the nearest {self.round_to}")
        parts.append("no maxima, episode dates or identifiers are shown")
        return "; ".join(parts).capitalize() + "."


def rule_from_design(disclosure) -> DisclosureRule:
    """Build the rule from the design's ``report.disclosure`` (preset, then overrides)."""
    min_count, round_to, enabled = disclosure.resolved()
    return DisclosureRule(min_count=min_count, round_to=round_to, enabled=enabled)


def rule_from_dict(raw: dict) -> DisclosureRule:
    return DisclosureRule(int(raw["min_count"]), int(raw["round_to"]), bool(raw.get("enabled", True)))


def control_count(value, rule: DisclosureRule):
    """A published count: an int, or the suppression symbol."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    count = int(round(float(value)))
    if not rule.enabled:
        return count
    if count == 0:
        return 0
    if 0 < count < rule.min_count:
        return SUPPRESSED
    if rule.round_to > 1:
        rounded = int(math.floor(count / rule.round_to + 0.5) * rule.round_to)
        if rounded == 0:
            return f"<{rule.round_to}"
        return rounded
    return count


def control_table(rows: list[list], count_columns: list[int], rule: DisclosureRule, total_row: int | None = None) -> list[list]:
    """Control every count cell of a table, with secondary suppression.

    When exactly one cell of a column is primarily suppressed and the column has a total
    (``total_row``), the smallest other non-zero cell of that column is suppressed too, so
    the suppressed value cannot be recovered by subtraction. Rows are treated likewise when
    the last count column is a row total.
    """
    out = [list(r) for r in rows]
    primary = [[False] * len(r) for r in rows]
    for i, row in enumerate(rows):
        for j in count_columns:
            controlled = control_count(row[j], rule)
            primary[i][j] = controlled == SUPPRESSED
            out[i][j] = controlled
    if rule.enabled and total_row is not None:
        for j in count_columns:
            cells = [i for i in range(len(rows)) if i != total_row]
            hidden = [i for i in cells if out[i][j] == SUPPRESSED]
            if len(hidden) == 1:
                others = [i for i in cells if i not in hidden and isinstance(rows[i][j], (int, float)) and rows[i][j] > 0]
                if others:
                    smallest = min(others, key=lambda i: rows[i][j])
                    out[smallest][j] = SUPPRESSED
    return out


#: nouns that make the number before them a count of children or episodes (or of records of them)
COUNT_NOUNS = (r"episodes?|rows?|records?|children|child|persons?|people|reports?|incidents?|cases?|"
               r"missing reports?|repeat reports?|found|censored")
_COUNT_IN_TEXT = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?![\w.,%]|,\d)(\s+(?:" + COUNT_NOUNS + r"))\b",
                            re.IGNORECASE)

#: settings and details (by key) that hold counts of episodes, children or records
COUNT_KEYS = frozenset({
    "n_episodes", "episodes", "found", "censored", "rows", "n", "dropped_episodes", "other_areas", "phase_in",
    "exclude_periods", "n_found", "n_censored", "events", "persons", "reports", "repeat_reports", "at_risk",
    "dropped", "n_event", "n_risk", "trimmed",
})


def published_count_text(value, rule: DisclosureRule) -> str:
    """A count as prose under the rule: "240", "fewer than 10", "0"."""
    controlled = control_count(value, rule)
    if controlled == SUPPRESSED:
        return f"fewer than {rule.min_count}"
    if isinstance(controlled, str):  # "<5": below half the rounding base
        return f"fewer than {controlled[1:]}"
    return f"{controlled:,}" if isinstance(controlled, int) else ""


def control_text(text, rule: DisclosureRule):
    """Free text (a check's detail, a note, a setting) with every count of episodes, children,
    reports or rows put under the same rule as the tables: "3 episodes" -> "fewer than 10
    episodes", "52,908 rows" -> "52,910 rows". Model outputs (ratios, hours, p-values) and
    counts of areas or periods are left as they are."""
    if not isinstance(text, str) or not rule.enabled:
        return text

    def replace(match: re.Match) -> str:
        return published_count_text(int(match.group(1).replace(",", "")), rule) + match.group(2)

    return _COUNT_IN_TEXT.sub(replace, text)


def control_values(value, rule: DisclosureRule, key: str | None = None):
    """A settings/details structure with counts controlled: values under a count key (at any
    depth) by the rule, text by :func:`control_text`; everything else as it is."""
    if isinstance(value, dict):
        return {k: control_values(v, rule, k if k in COUNT_KEYS else key if key in COUNT_KEYS else k)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [control_values(v, rule, key) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if key in COUNT_KEYS and isinstance(value, (int, float)) and math.isfinite(value) and float(value).is_integer():
        return published_count_text(value, rule) if rule.enabled else value
    if isinstance(value, str):
        return control_text(value, rule)
    return value
