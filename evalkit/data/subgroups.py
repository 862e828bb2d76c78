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

from .episodes import EpisodeCells, counts_frame
from .prepare import AnalysisData

AGE_BANDS = ((0, 11, "under 12"), (12, 14, "12-14"), (15, 17, "15-17"))
RISK_LEVELS = ("high", "medium", "low")


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
        for level, mask in zip(RISK_LEVELS, _lowercase_matches(episodes["risk"], RISK_LEVELS)):
            if mask.any():
                groups.append(("risk", f"{level} risk", mask))
    if "age" in episodes:
        age = pd.to_numeric(episodes["age"], errors="coerce").to_numpy()
        for low, high, label in AGE_BANDS:
            mask = (age >= low) & (age <= high)
            if mask.any():
                groups.append(("age_band", f"aged {label}", mask))
    return groups


def _lowercase_matches(values: pd.Series, levels) -> list[np.ndarray]:
    """For each level, the rows whose value as lower-case text is that level (missing: none)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        # the distinct values are lower-cased, then looked up by code: a string per row
        # (3.5 million nationally) cost 230 MiB and a third of a second
        lowered = pd.Series(values.cat.categories).astype("string").str.lower()
        codes = values.cat.codes.to_numpy()
        return [np.append((lowered == level).fillna(False).to_numpy(dtype=bool), False)[codes] for level in levels]
    text = values.astype("string").str.lower()
    return [(text == level).fillna(False).to_numpy(dtype=bool) for level in levels]


def subgroup_data(data: AnalysisData, design, mask: np.ndarray, cells: EpisodeCells | None = None,
                  keep_episodes: bool = True) -> AnalysisData:
    """The data with count outcomes recounted from the masked episodes only.

    ``cells``: ``EpisodeCells.of(data.episodes, data.units, data.periods)``, made once
    for all the subgroups of one set of episodes (the counts are the same without it).
    ``keep_episodes=False`` (with ``cells``): the subgroup's data carry no episode records,
    for a refit that reads only the recounted panel (a copy of millions of rows saved).
    """
    if data.episodes is None:
        raise ValueError("subgroups are recounted from episode records, and these data have none")
    if cells is not None and not keep_episodes:
        episodes = None
        recount = cells.count(mask)
    else:
        episodes = data.episodes.loc[mask]
        recount = cells.count(mask) if cells is not None else EpisodeCells.of(episodes, data.units, data.periods).count()
    counts = counts_frame(data.units, data.periods, *recount).set_index(["unit", "period"])
    panel = data.panel.copy()
    keys = pd.MultiIndex.from_arrays([panel["unit"], panel["period"]])
    for outcome in design.outcomes:
        if outcome.measure == "count":
            panel[outcome.name] = counts[outcome.derive or outcome.name].reindex(keys).to_numpy()
    return replace(data, panel=panel, episodes=None if episodes is None else episodes.reset_index(drop=True))
