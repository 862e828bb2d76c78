"""Moderator subgroups (EMMIE's "Moderators"): the same data restricted to one kind of episode.

From episode records carrying ``looked_after``, ``risk`` or ``age``, each subgroup's data
recount the declared count outcomes from that subgroup's episodes only, on the same
units, periods, exposure and adoption dates, so the declared analysis can be refitted
unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .episodes import derive_counts
from .prepare import AnalysisData

AGE_BANDS = ((0, 11, "under 12"), (12, 14, "12-14"), (15, 17, "15-17"))


def subgroup_masks(episodes: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """(moderator, level, episode mask) for every subgroup the episodes carry."""
    groups = []
    if "looked_after" in episodes:
        flag = pd.array(episodes["looked_after"], dtype="boolean")
        known = ~pd.isna(flag)
        if known.any():
            values = np.asarray(flag.fillna(False), dtype=bool)
            for level, mask in (("looked-after children", known & values), ("other children", known & ~values)):
                if mask.any():  # an extract of looked-after children only has no "other" subgroup
                    groups.append(("looked_after", level, mask))
    if "risk" in episodes:
        risk = episodes["risk"].astype("string").str.lower()
        for level in ("high", "medium", "low"):
            mask = (risk == level).fillna(False).to_numpy(dtype=bool)
            if mask.any():
                groups.append(("risk", f"{level} risk", mask))
    if "age" in episodes:
        age = pd.to_numeric(episodes["age"], errors="coerce").to_numpy()
        for low, high, label in AGE_BANDS:
            mask = (age >= low) & (age <= high)
            if mask.any():
                groups.append(("age_band", f"aged {label}", mask))
    return groups


def subgroup_data(data: AnalysisData, design, mask: np.ndarray) -> AnalysisData:
    """The data with count outcomes recounted from the masked episodes only."""
    if data.episodes is None:
        raise ValueError("subgroups are recounted from episode records, and these data have none")
    episodes = data.episodes.loc[mask]
    counts = derive_counts(episodes, data.units, data.periods).set_index(["unit", "period"])
    panel = data.panel.copy()
    keys = pd.MultiIndex.from_arrays([panel["unit"], panel["period"]])
    for outcome in design.outcomes:
        if outcome.measure == "count":
            panel[outcome.name] = counts[outcome.derive or outcome.name].reindex(keys).to_numpy()
    return replace(data, panel=panel, episodes=episodes.reset_index(drop=True))
