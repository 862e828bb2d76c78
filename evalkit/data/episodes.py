"""Episode records: validation, and the outcomes derived from them.

One row per missing episode. From these evalkit derives, per unit and period, the number
of reports, of distinct persons and of repeat reports (periods with no reports are zero,
not missing), and per episode the hours to found with a censoring flag.

Definitions (docs/data.md):
- an episode counts in the period of ``reported_at``, and only inside the window;
- hours to found = found_at - reported_at; an episode with no found_at, or found after
  ``extracted_at``, is right-censored at ``extracted_at`` (never dropped, never "found");
- a repeat report is an episode of a person with an earlier episode anywhere in the
  extract (before the window too): the ordinary "repeat missing" definition.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import EvalkitError
from .sources import first_bad, row_label


def parse_timestamps(values: pd.Series, where: str, column: str, kind: str, allow_empty: bool) -> pd.Series:
    """Parse a column of timestamps; empty cells become NaT when allowed."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        empty = parsed.isna()
    else:
        text = values.astype("string").str.strip()
        empty = text.isna() | (text == "")
        try:
            parsed = pd.to_datetime(text.where(~empty), errors="coerce", format="ISO8601")
        except (ValueError, TypeError):
            parsed = pd.to_datetime(text.where(~empty), errors="coerce", format="mixed")
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        bad = first_bad(parsed.isna() & ~empty)
        if bad is not None:
            raise EvalkitError(
                where, f"'{text.iloc[bad][:40]}' in column '{column}' is not a date-time",
                "write dates as YYYY-MM-DD HH:MM", key=row_label(bad, kind),
            )
    if not allow_empty:
        bad = first_bad(empty)
        if bad is not None:
            raise EvalkitError(where, f"column '{column}' is empty", "every episode needs a value here", key=row_label(bad, kind))
    return parsed.astype("datetime64[ns]")


def validate_episodes(raw: pd.DataFrame, columns: dict, where: str, extracted_at: pd.Timestamp | None) -> pd.DataFrame:
    """Turn the file's columns into evalkit's episode frame.

    Returns a frame with ``unit``, ``reported_at``, ``found_at`` (NaT when open),
    ``person`` (when mapped), optional ``looked_after``/``risk``/``age``/``sex``,
    ``hours_to_found`` and ``censored``, plus ``row`` (the file position, for messages).
    """
    kind = raw.attrs.get("kind", "csv")
    episodes = pd.DataFrame({"row": np.arange(len(raw))})
    unit = raw[columns["unit"]]
    if unit.dtype == object or str(unit.dtype).startswith("str") or str(unit.dtype) == "string":
        unit = unit.astype("string").str.strip()
        bad = first_bad(unit.isna() | (unit == ""))
        if bad is not None:
            raise EvalkitError(where, f"column '{columns['unit']}' is empty", "every episode needs its area", key=row_label(bad, kind))
        unit = coerce_unit_ids(unit)
    episodes["unit"] = unit.to_numpy()
    episodes["reported_at"] = parse_timestamps(raw[columns["reported_at"]], where, columns["reported_at"], kind, False).to_numpy()
    if "found_at" in columns:
        found = parse_timestamps(raw[columns["found_at"]], where, columns["found_at"], kind, True)
        episodes["found_at"] = found.to_numpy()
        bad = first_bad(pd.Series(episodes["found_at"] < episodes["reported_at"]))
        if bad is not None:
            raise EvalkitError(where, f"found_at ({episodes['found_at'].iloc[bad]}) is before reported_at ({episodes['reported_at'].iloc[bad]})",
                               "correct the dates or swap the columns in data.columns", key=row_label(bad, kind))
    else:
        episodes["found_at"] = pd.Series(pd.NaT, index=episodes.index, dtype="datetime64[ns]")
    for role in ("person", "episode", "sex", "risk"):
        if role in columns:
            episodes[role] = raw[columns[role]].astype("string").str.strip().to_numpy()
    if "episode" in episodes:
        dup = first_bad(pd.Series(episodes["episode"].duplicated().to_numpy()))
        if dup is not None:
            raise EvalkitError(where, f"episode id '{episodes['episode'].iloc[dup]}' appears twice",
                               "remove the duplicate record", key=row_label(dup, kind))
    if "age" in columns:
        age = pd.to_numeric(raw[columns["age"]].replace("", np.nan), errors="coerce")
        episodes["age"] = age.to_numpy()
    if "looked_after" in columns:
        episodes["looked_after"] = _parse_flag(raw[columns["looked_after"]], where, columns["looked_after"], kind)
    if extracted_at is not None:
        late = first_bad(pd.Series(episodes["reported_at"] > extracted_at))
        if late is not None:
            raise EvalkitError(where, f"episode reported ({episodes['reported_at'].iloc[late]}) after the extract was taken ({extracted_at:%Y-%m-%d})",
                               "correct data.extracted_at or the record", key=row_label(late, kind))
    open_or_late = episodes["found_at"].isna()
    if extracted_at is not None:
        open_or_late |= episodes["found_at"] > extracted_at
    elif open_or_late.any():
        bad = first_bad(open_or_late)
        raise EvalkitError(where, "episodes without found_at need data.extracted_at to be censored at",
                           "add data.extracted_at: <date the extract was taken>", key=row_label(bad, kind))
    end = episodes["found_at"].where(~open_or_late, extracted_at if extracted_at is not None else pd.NaT)
    episodes["hours_to_found"] = (end - episodes["reported_at"]).dt.total_seconds().to_numpy() / 3600.0
    episodes["censored"] = open_or_late.to_numpy()
    return episodes


def coerce_unit_ids(unit: pd.Series) -> pd.Series:
    """Unit identifiers keep their type: all-integer ids become integers."""
    as_int = pd.to_numeric(unit, errors="coerce")
    if as_int.notna().all() and (as_int == np.floor(as_int)).all() and unit.str.fullmatch(r"-?\d+").all():
        return as_int.astype("int64")
    return unit.astype(object)


def _parse_flag(values: pd.Series, where: str, column: str, kind: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy()
    text = values.astype("string").str.strip().str.lower()
    mapping = {"1": True, "true": True, "yes": True, "y": True, "t": True,
               "0": False, "false": False, "no": False, "n": False, "f": False}
    parsed = text.map(mapping)
    bad = first_bad(parsed.isna() & text.notna() & (text != ""))
    if bad is not None:
        raise EvalkitError(where, f"'{values.iloc[bad]}' in column '{column}' is not yes/no",
                           "write 1/0, true/false or yes/no", key=row_label(bad, kind))
    return parsed.astype("boolean").to_numpy()


def mark_repeats(episodes: pd.DataFrame) -> pd.Series:
    """True for an episode of a person already reported missing earlier in the extract."""
    if "person" not in episodes:
        return pd.Series(False, index=episodes.index)
    order = episodes.sort_values(["person", "reported_at"], kind="mergesort")
    earlier = order["person"].duplicated(keep="first") & order["person"].notna()
    return earlier.reindex(episodes.index)


def derive_counts(episodes: pd.DataFrame, units: list, periods: pd.PeriodIndex) -> pd.DataFrame:
    """Reports, distinct persons and repeat reports per unit and period, zero-filled.

    ``episodes`` must carry ``unit``, ``period`` and ``repeat`` and hold only episodes in
    the window.
    """
    grid = pd.MultiIndex.from_product([units, periods], names=["unit", "period"])
    grouped = episodes.groupby(["unit", "period"], sort=True)
    counts = pd.DataFrame({"reports": grouped.size()})
    counts["repeat_reports"] = grouped["repeat"].sum()
    if "person" in episodes:
        counts["persons"] = grouped["person"].nunique()
    else:
        counts["persons"] = counts["reports"]
    counts = counts.reindex(grid, fill_value=0).astype("int64")
    return counts.reset_index()
