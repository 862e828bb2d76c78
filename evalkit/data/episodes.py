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

Everything is vectorised for national extracts (millions of rows): text columns are
handled through their distinct values (pandas Categoricals, codes and categories), and
the per-cell counts are numpy ``bincount``s over (unit, period) cell numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import EvalkitError
from .sources import first_bad, release_unused_memory, row_label

#: Ages accepted in an ``age`` column (children's services see young adults up to 25).
AGE_RANGE = (0, 25)


_ISO_DATE = r"\d{4}-\d{1,2}-\d{1,2}"
_ISO_TIME = r"[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?"
_ISO_ZONE = r"\s*(?:Z|[+-]\d{2}(?::?\d{2})?)"
#: the only forms read without a declared data.date_format: ISO 8601 date, date-time, date-time with zone
_ISO_FORMS = {
    "date": re.compile(rf"^{_ISO_DATE}$"),
    "datetime": re.compile(rf"^{_ISO_DATE}{_ISO_TIME}$"),
    "zoned": re.compile(rf"^{_ISO_DATE}{_ISO_TIME}{_ISO_ZONE}$"),
}


def parse_timestamps(values: pd.Series, where: str, column: str, kind: str, allow_empty: bool,
                     date_format: str | None = None, timezone: str | None = None) -> pd.Series:
    """Parse a column of timestamps; empty cells become NaT when allowed.

    Without a declared ``date_format``, text is read only in ISO 8601 form
    (``2021-04-03 14:22``, a ``T`` or seconds allowed, ``2021-04-03`` for a date alone):
    ``01/04/2021`` could be the 1st of April or the 4th of January, so it is refused, never
    guessed. With ``date_format`` (a :func:`datetime.strptime` format such as
    ``%d/%m/%Y %H:%M``) every value must match it exactly. A column mixing dates alone with
    date-times, or values with a time zone with values without one, is refused: they cannot
    be placed on one clock. Zoned values are converted to UTC.

    With ``timezone`` (an IANA name, ``data.timezone``) values without a zone, text or
    zone-less timestamps from Parquet or SQL alike, are that zone's wall-clock time and are
    converted to UTC too (:func:`local_to_utc`); zoned values keep their own offset.

    The returned Series has ``attrs["zoned"]``: whether the values carried time zones, and
    with ``timezone`` ``attrs["ambiguous"]`` and ``attrs["nonexistent"]``: the positions of
    the values that fell in the hour the clocks went back or in the hour they skipped, and
    ``attrs["written"]``: those values' wall-clock times as written, before conversion
    (``{"positions": sorted int64 array, "values": datetime64[ns] array}``). Elsewhere a
    local time and its UTC instant convert both ways exactly; at a clock change they do not,
    and the order checks compare what the file says (:func:`validate_episodes`).
    """
    zoned_column = False
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
        if getattr(parsed.dt, "tz", None) is not None:
            zoned_column = True
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        empty = parsed.isna()
    elif pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise EvalkitError(where, f"column '{column}' holds numbers, not date-times",
                           "store date-times as timestamps or as text like 2021-04-03 14:22", key=row_label(0, kind))
    else:
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        text = values.astype("string").str.strip()
        empty = text.isna() | (text == "")
        if date_format is None:
            parsed, zoned_column = _parse_iso(text, empty, where, column, kind)
        else:
            parsed, zoned_column = _parse_declared(text, empty, where, column, kind, date_format)
    _check_nanosecond_range(parsed, where, column, kind)
    if not allow_empty:
        bad = first_bad(empty)
        if bad is not None:
            raise EvalkitError(where, f"column '{column}' is empty", "every episode needs a value here", key=row_label(bad, kind))
    result = parsed.astype("datetime64[ns]")
    at_change: dict = {"ambiguous": np.empty(0, np.int64), "nonexistent": np.empty(0, np.int64)}
    at_change["written"] = {"positions": np.empty(0, np.int64), "values": np.empty(0, "datetime64[ns]")}
    if timezone is not None and not zoned_column:
        wall = result
        try:
            result, at_change = local_to_utc(result, timezone)
            positions = np.union1d(at_change["ambiguous"], at_change["nonexistent"]).astype(np.int64)
            at_change["written"] = {"positions": positions, "values": wall.to_numpy()[positions]}
        except (OverflowError, ValueError):  # pandas' OutOfBoundsDatetime is a ValueError
            stamps = result.to_numpy()
            day = np.timedelta64(1, "D")
            edge = first_bad(pd.Series((stamps < np.datetime64(pd.Timestamp.min) + day)
                                       | (stamps > np.datetime64(pd.Timestamp.max) - day)))
            position = 0 if edge is None else edge
            raise EvalkitError(where, f"'{pd.Timestamp(stamps[position])}' in column '{column}' is outside the years 1678-2261 once "
                               f"read as {timezone} time", "correct the date-time", key=row_label(position, kind)) from None
    return _with_attrs(result, zoned_column, timezone, at_change)


def _with_attrs(result: pd.Series, zoned_column: bool, timezone: str | None, at_change: dict) -> pd.Series:
    result.attrs["zoned"] = zoned_column
    if timezone is not None:
        result.attrs.update(at_change)
    return result


def local_to_utc(wall: pd.Series, timezone: str) -> tuple[pd.Series, dict]:
    """Zone-less wall-clock times of ``timezone`` as UTC instants (zone-less datetime64[ns]).

    A local time is not always one instant. In the hour the clocks go back (01:00-01:59 on
    the last Sunday of October in Europe/London) every time occurs twice; in the hour they
    skip in spring (01:00-01:59 on the last Sunday of March) none occurs. Real extracts
    hold such times (a child reported at 01:30 that night), so they are not refused but read
    by one rule, Python's own (:mod:`zoneinfo` with ``fold=0``): an **ambiguous** time is
    the first reading, the offset before the change (01:30 BST, 00:30 UTC); a
    **nonexistent** time is read with the offset before the change too, which moves it
    forward by the gap (01:30 read as 01:30 GMT, i.e. 02:30 BST). Where they are is
    returned for a data check.

    Returns
    -------
    Series, dict
        The instants, and ``{"ambiguous": positions, "nonexistent": positions}`` (int64
        arrays of row positions, usually empty or a handful).
    """
    import zoneinfo

    zone = zoneinfo.ZoneInfo(timezone)
    # pandas handles the unambiguous bulk; the few values at a clock change are read one by one
    local = wall.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    instants = local.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    unresolved = local.isna().to_numpy() & wall.notna().to_numpy()
    kinds: dict = {"ambiguous": [], "nonexistent": []}
    if unresolved.any():
        stamps = wall.to_numpy()[unresolved]
        fixed = np.empty(len(stamps), dtype="datetime64[ns]")
        for i, stamp in enumerate(stamps):
            moment = pd.Timestamp(stamp).to_pydatetime(warn=False)
            first = moment.replace(tzinfo=zone, fold=0)
            offset = first.utcoffset()
            assert offset is not None  # a ZoneInfo always has an offset
            fixed[i] = stamp - np.timedelta64(int(offset.total_seconds() * 1e9), "ns")
            later = moment.replace(tzinfo=zone, fold=1).utcoffset()
            kinds["nonexistent" if later is not None and later > offset else "ambiguous"].append(i)  # a gap: later offset ahead
        values = instants.to_numpy().copy()
        values[unresolved] = fixed
        instants = pd.Series(values, index=wall.index)
    positions = np.flatnonzero(unresolved)
    return instants, {name: positions[np.array(found, dtype=np.int64)] for name, found in kinds.items()}


def utc_to_local(instants: np.ndarray, timezone: str) -> np.ndarray:
    """UTC instants (zone-less datetime64[ns]) as ``timezone``'s zone-less wall-clock times."""
    import zoneinfo

    stamps = pd.DatetimeIndex(instants).tz_localize("UTC").tz_convert(zoneinfo.ZoneInfo(timezone))
    return stamps.tz_localize(None).to_numpy().astype("datetime64[ns]")


def _parse_iso(text: pd.Series, empty: pd.Series, where: str, column: str, kind: str):
    forms = {name: text.str.fullmatch(pattern.pattern).fillna(False) & ~empty for name, pattern in _ISO_FORMS.items()}
    known = forms["date"] | forms["datetime"] | forms["zoned"]
    bad = first_bad(~empty & ~known)
    if bad is not None:
        value = str(text.iloc[bad])[:40]
        if re.match(r"^\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}", value):
            what, fix = (f"'{value}' in column '{column}' is not written YYYY-MM-DD; dates written like it can be "
                         "day-first or month-first",
                         "declare data.date_format (e.g. '%d/%m/%Y %H:%M' for UK day-first dates), or write "
                         "YYYY-MM-DD HH:MM")
        else:
            what, fix = f"'{value}' in column '{column}' is not a date-time", "write dates as YYYY-MM-DD HH:MM"
        raise EvalkitError(where, what, fix, key=row_label(bad, kind))
    present = ~empty
    for name, other, words in (("zoned", ("date", "datetime"), ("has a time zone", "do not")),
                               ("date", ("datetime", "zoned"), ("is a date without a time of day", "have times"))):
        mine = forms[name]
        theirs = forms[other[0]] | forms[other[1]]
        if mine.any() and theirs.any():
            first_is_mine = bool(mine[present].iloc[0])
            bad = first_bad(present & (theirs if first_is_mine else mine))
            assert bad is not None  # both forms are present, so a row of the later form exists
            value = str(text.iloc[bad])[:40]
            if name == "zoned":
                what = (f"'{value}' in column '{column}' has no time zone, but earlier date-times do" if first_is_mine
                        else f"'{value}' in column '{column}' has a time zone, but earlier date-times do not")
                fix = "write every date-time with a time zone (e.g. +01:00), or none"
            else:
                what = (f"'{value}' in column '{column}' has a time of day, but earlier values are dates alone"
                        if first_is_mine else f"'{value}' in column '{column}' {words[0]}, but earlier values {words[1]}")
                fix = "give every value a time (e.g. 2021-04-03 00:00) or declare data.date_format"
            raise EvalkitError(where, what, fix, key=row_label(bad, kind))
    zoned = bool(forms["zoned"].any())
    candidates = text.where(~empty)
    try:
        parsed = pd.to_datetime(candidates, errors="coerce", format="ISO8601", utc=zoned)
    except (ValueError, TypeError, OverflowError):
        parsed = _each(candidates, lambda v: pd.to_datetime(v, format="ISO8601", utc=zoned))
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    bad = first_bad(parsed.isna() & ~empty)
    if bad is not None:
        raise EvalkitError(where, f"'{str(text.iloc[bad])[:40]}' in column '{column}' is not a date-time",
                           "write dates as YYYY-MM-DD HH:MM", key=row_label(bad, kind))
    return parsed, zoned


def _parse_declared(text: pd.Series, empty: pd.Series, where: str, column: str, kind: str, date_format: str):
    zoned = "%z" in date_format or "%Z" in date_format
    candidates = text.where(~empty)
    try:
        parsed = pd.to_datetime(candidates, errors="coerce", format=date_format, utc=zoned)
    except (ValueError, TypeError, OverflowError):
        parsed = _each(candidates, lambda v: pd.to_datetime(v, format=date_format, utc=zoned))
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    bad = first_bad(parsed.isna() & ~empty)
    if bad is not None:
        raise EvalkitError(where, f"'{str(text.iloc[bad])[:40]}' in column '{column}' does not match the declared "
                           f"date_format '{date_format}'", "correct the value or data.date_format", key=row_label(bad, kind))
    return parsed, zoned


def _each(values: pd.Series, parse) -> pd.Series:
    """Parse value by value (slow path, for a column with values outside what pandas parses in bulk)."""
    out = []
    for value in values:
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            out.append(pd.NaT)
            continue
        try:
            stamp = parse(value)
            out.append(pd.NaT if stamp is pd.NaT else stamp)
        except (ValueError, TypeError, OverflowError):
            out.append(pd.NaT)
    return pd.Series(pd.to_datetime(pd.Series(out, dtype=object), errors="coerce", utc=False), index=values.index)


def _check_nanosecond_range(values: pd.Series, where: str, column: str, kind: str) -> None:
    """Date-times read at another resolution (text, Parquet, SQL) must fit evalkit's nanoseconds."""
    stamps = values.to_numpy()
    if stamps.dtype == object:  # date-times pandas could not hold in one resolution
        for position, stamp in enumerate(stamps):
            if stamp is not None and stamp is not pd.NaT and not (pd.Timestamp.min <= pd.Timestamp(stamp) <= pd.Timestamp.max):
                raise EvalkitError(where, f"'{stamp}' in column '{column}' is outside the years 1678-2261",
                                   "correct the date-time", key=row_label(position, kind))
        return
    if stamps.dtype == np.dtype("datetime64[ns]"):
        return
    low, high = np.datetime64(pd.Timestamp.min.ceil("s")), np.datetime64(pd.Timestamp.max.floor("s"))
    outside = ~np.isnat(stamps) & ((stamps < low.astype(stamps.dtype)) | (stamps > high.astype(stamps.dtype)))
    bad = first_bad(outside)
    if bad is not None:
        raise EvalkitError(where, f"'{stamps[bad]}' in column '{column}' is outside the years 1678-2261",
                           "correct the date-time", key=row_label(bad, kind))


def text_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """A text column as (codes, distinct stripped values); code -1 for an empty cell.

    Works on the distinct values only, so a Categorical of millions of rows costs little.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.int64, copy=False)
        categories = values.cat.categories
    else:
        codes, categories = pd.factorize(values, use_na_sentinel=True)
        codes = codes.astype(np.int64, copy=False)
    stripped = pd.Series(np.asarray(categories, dtype=object)).map(
        lambda v: v.strip() if isinstance(v, str) else ("" if v is None or v != v else str(v)))
    merged_codes, merged = pd.factorize(stripped.where(stripped != "", None), use_na_sentinel=True)
    mapping = np.append(merged_codes.astype(np.int64), -1)
    return mapping[codes], pd.Index(np.asarray(merged, dtype=object), dtype=object)


def _categorical(codes: np.ndarray, categories: pd.Index) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=categories)


def validate_episodes(raw: pd.DataFrame, columns: dict, where: str, extracted_at: pd.Timestamp | None,
                      date_formats: dict | None = None, timezone: str | None = None) -> pd.DataFrame:
    """Turn the file's columns into evalkit's episode frame.

    Returns a frame with ``unit``, ``reported_at``, ``found_at`` (NaT when open),
    ``person`` (a Categorical of pseudonyms, when mapped), optional ``looked_after``/
    ``risk``/``age``/``sex``, ``hours_to_found`` and ``censored``, plus ``row`` (the file
    position, for messages). Episode ids are checked for duplicates and not kept.

    With ``timezone`` (``data.timezone``) every date-time, ``extracted_at`` included, is
    placed on UTC first, so hours to found, censoring and the order checks use real
    elapsed time across clock changes; ``reported_at`` and ``found_at`` are then kept as
    that zone's wall-clock time, because periods (and adoption dates) follow the local
    calendar: a report at 00:30 BST on 1 April is April's. The frame's
    ``attrs["local_time"]`` holds the zone and the numbers of episodes with an ambiguous or
    a nonexistent date-time (:func:`local_to_utc`), for a data check. Without ``timezone`` nothing changes:
    zone-less values are taken as written, and mixing them with zoned ones is refused.

    An episode found "before" it was reported only because one of its times was read at a
    clock change (reported 01:30 in the skipped spring hour, read as 02:30 BST, and found
    at 02:10 BST), while the times as written are in order, is not refused: it is taken as
    found when reported (0 hours to found) and counted as ``reordered`` in
    ``attrs["local_time"]``. Any other found-before-reported episode is refused, naming
    the cells as the file writes them.
    """
    kind = raw.attrs.get("kind", "csv")
    n = len(raw)
    if "episode" in columns:
        # first, while nothing else is built: hashing millions of ids takes memory for a moment
        _check_unique_episodes(raw[columns["episode"]], where, columns["episode"], kind)
        release_unused_memory()
    # the columns are built as arrays and put in the frame once at the end, without a copy
    # (pandas copies an array assigned to a column: on a national extract that is a second
    # copy of every column for a moment)
    built: dict = {"row": np.arange(n)}
    built["unit"] = _unit_values(raw[columns["unit"]], where, columns["unit"], kind)
    formats = date_formats or {}
    utc_columns = raw.attrs.get("utc_columns", ())  # a database's zone-aware values, read as UTC (data/sql.py)

    def zone_of(role):
        return None if columns[role] in utc_columns else timezone

    reported = parse_timestamps(raw[columns["reported_at"]], where, columns["reported_at"], kind, False,
                                formats.get("reported_at"), zone_of("reported_at"))
    reported_at = built["reported_at"] = reported.to_numpy()
    zones = {"reported_at": reported.attrs.get("zoned", False)}
    at_change = {name: [reported.attrs.get(name, np.empty(0, np.int64))] for name in ("ambiguous", "nonexistent")}
    written = [reported.attrs.get("written")]
    del reported
    if timezone is not None:
        _refuse_outside_local_clock(reported_at, timezone, where, raw[columns["reported_at"]], kind)
    reordered = 0
    if "found_at" in columns:
        found = parse_timestamps(raw[columns["found_at"]], where, columns["found_at"], kind, True, formats.get("found_at"),
                                 zone_of("found_at"))
        zones["found_at"] = found.attrs.get("zoned", False) if found.notna().any() else zones["reported_at"]
        for name in ("ambiguous", "nonexistent"):
            at_change[name].append(found.attrs.get(name, np.empty(0, np.int64)))
        written.append(found.attrs.get("written"))
        found_at = built["found_at"] = found.to_numpy()
        del found
        if timezone is not None:
            _refuse_outside_local_clock(found_at, timezone, where, raw[columns["found_at"]], kind)
            excused = _reversed_by_the_clock(reported_at, found_at, written, timezone)
            if len(excused):  # found when reported: the file's order, with no time passed
                found_at = built["found_at"] = found_at.copy()
                found_at[excused] = reported_at[excused]
                reordered = len(excused)
        bad = first_bad(found_at < reported_at)
        if bad is not None:
            shown = [_cell(raw[columns[role]], bad) for role in ("found_at", "reported_at")]
            raise EvalkitError(where, f"found_at ({shown[0]}) is before reported_at ({shown[1]})",
                               "correct the dates or swap the columns in data.columns", key=row_label(bad, kind))
    else:
        found_at = built["found_at"] = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    if "person" in columns:
        person = raw[columns["person"]]
        if isinstance(person.dtype, pd.CategoricalDtype) and not person.cat.categories.hasnans:
            built["person"] = person.array  # pseudonymised at reading: already clean
        else:
            codes, categories = text_codes(person)
            built["person"] = _categorical(codes, categories)
        del person
    for role in ("sex", "risk"):
        if role in columns:
            codes, categories = text_codes(raw[columns[role]])
            built[role] = _categorical(codes, categories)
    if "age" in columns:
        built["age"] = _ages(raw[columns["age"]], where, columns["age"], kind)
    if "looked_after" in columns:
        built["looked_after"] = _parse_flag(raw[columns["looked_after"]], where, columns["looked_after"], kind)
    if extracted_at is not None:
        date_alone = extracted_at.tzinfo is None and extracted_at == extracted_at.normalize() + pd.Timedelta(days=1, microseconds=-1)
        if not date_alone:  # a date alone (the end of that day) sits with zoned and local data alike
            zones["data.extracted_at"] = extracted_at.tzinfo is not None
        if timezone is not None:  # the end of a local day, or a local time, like the data's; or an instant
            extracted_at = _extracted_on_utc(extracted_at, timezone, where)
        elif extracted_at.tzinfo is not None:
            extracted_at = extracted_at.tz_convert("UTC").tz_localize(None)
    if len(set(zones.values())) > 1 and timezone is None:  # with data.timezone every value is on UTC
        # a clock time with a zone and one without cannot be compared: durations would shift by the offset
        with_zone = [k for k, v in zones.items() if v]
        without = [k for k, v in zones.items() if not v]
        raise EvalkitError(where, f"{' and '.join(with_zone)} {'has' if len(with_zone) == 1 else 'have'} a time zone but "
                           f"{' and '.join(without)} {'does' if len(without) == 1 else 'do'} not, so "
                           "durations between them are unknown", "give every date-time the same kind of time (all with "
                           "a zone, or all local), in the data and in data.extracted_at")
    if extracted_at is not None:
        late = first_bad(reported_at > np.datetime64(extracted_at))
        if late is not None:
            taken = pd.Timestamp(_as_written(np.array([extracted_at], dtype="datetime64[ns]"), timezone)[0])
            raise EvalkitError(where, f"episode reported ({_cell(raw[columns['reported_at']], late)}) after the extract "
                               f"was taken ({taken:%Y-%m-%d})",
                               "correct data.extracted_at or the record", key=row_label(late, kind))
    open_or_late = np.isnat(found_at)
    if extracted_at is not None:
        open_or_late |= found_at > np.datetime64(extracted_at)
        end = np.where(open_or_late, np.datetime64(extracted_at, "ns"), found_at)
    else:
        bad = first_bad(open_or_late)
        if bad is not None:
            raise EvalkitError(where, "episodes without found_at need data.extracted_at to be censored at",
                               "add data.extracted_at: <date the extract was taken>", key=row_label(bad, kind))
        end = found_at
    elapsed = (end - reported_at).astype("timedelta64[ns]").astype(np.int64)
    del end
    # end >= reported_at here, so a negative span is an overflow: more than 292 years in nanoseconds
    long = first_bad(elapsed < 0)
    if long is not None:
        raise EvalkitError(where, f"episode reported {_cell(raw[columns['reported_at']], long)} lasts more than 292 years "
                           "to its end", "correct the date", key=row_label(long, kind))
    built["hours_to_found"] = elapsed / 3.6e12
    del elapsed
    built["censored"] = open_or_late
    if timezone is not None:  # periods follow the local calendar date: keep the wall-clock times
        built["reported_at"] = utc_to_local(reported_at, timezone)
        built["found_at"] = utc_to_local(found_at, timezone)
    frame = pd.DataFrame(built, copy=False)
    if timezone is not None:  # episodes, not values: an episode reported and found in that hour counts once
        frame.attrs["local_time"] = {"timezone": timezone, **{name: int(len(np.unique(np.concatenate(found))))
                                                              for name, found in at_change.items()},
                                     "reordered": reordered}
    return frame


def _as_written(instants: np.ndarray, timezone: str | None) -> np.ndarray:
    """Instants as the extract's wall clock shows them, for messages."""
    return instants if timezone is None else utc_to_local(instants, timezone)


def _cell(values: pd.Series, position: int) -> str:
    """A date-time cell as the file holds it (text as written, a timestamp as stored), for messages:
    the value the user searches the file for, not evalkit's reading of it."""
    value = values.iloc[position]
    if isinstance(value, str):
        return value.strip()[:40]
    try:
        return str(pd.Timestamp(value))
    except (ValueError, TypeError, OverflowError):
        return str(value)[:40]


def _refuse_outside_local_clock(instants: np.ndarray, timezone: str, where: str, values: pd.Series, kind: str) -> None:
    """Refuse, in one line naming the row, an instant whose wall-clock time in ``timezone`` falls outside
    the years 1678-2261 that evalkit's nanosecond clock holds (``2262-04-11T23:00Z`` is the 12th in
    Tokyo). Only values within a day of either end can (no zone is a day from UTC), so only they are
    tried, one by one: a national extract costs two comparisons."""
    day = 86_400 * 10**9  # nanoseconds
    low = pd.Timestamp.min.value + day
    span = np.uint64(pd.Timestamp.max.value - day - low)
    # one pass: below ``low`` wraps round to above ``span`` as unsigned (NaT too, dropped below)
    suspects = np.flatnonzero((instants.view(np.int64) - low).view(np.uint64) > span)
    for position in suspects[~np.isnat(instants[suspects])]:
        try:
            utc_to_local(instants[position:position + 1], timezone)
        except (OverflowError, ValueError):  # pandas' OutOfBoundsDatetime is a ValueError
            raise EvalkitError(where, f"'{_cell(values, int(position))}' in column '{values.name}' is outside the years "
                               f"1678-2261 once read as {timezone} time", "correct the date-time",
                               key=row_label(int(position), kind)) from None


def _extracted_on_utc(extracted_at: pd.Timestamp, timezone: str, where: str) -> pd.Timestamp:
    """``data.extracted_at`` on UTC: a zone-less value read as ``timezone``'s wall-clock time, a zoned
    one at its own offset. Refused in one line when it, or its local time (periods follow the local
    calendar), is outside the years 1678-2261."""
    try:
        if extracted_at.tzinfo is not None:
            instant = extracted_at.tz_convert("UTC").tz_localize(None).as_unit("ns")
        else:
            instant = pd.Timestamp(local_to_utc(pd.Series([extracted_at]), timezone)[0].iloc[0]).as_unit("ns")
        utc_to_local(np.array([instant], dtype="datetime64[ns]"), timezone)  # for messages, later
    except (OverflowError, ValueError):  # pandas' OutOfBoundsDatetime is a ValueError
        raise EvalkitError(where, f"extracted_at '{extracted_at}' is outside the years 1678-2261 once read as {timezone} "
                           "time", "correct data.extracted_at", key="data.extracted_at") from None
    return instant


def _reversed_by_the_clock(reported_at: np.ndarray, found_at: np.ndarray, written: list, timezone: str) -> np.ndarray:
    """Positions of the episodes found before they were reported only on the UTC clock: one of their
    times is at a clock change (``attrs["written"]`` of :func:`parse_timestamps`) and the wall-clock
    times as written are in order (found at or after reported).

    Reported at 01:30 on the night the clocks skip 01:00-02:00 is read as 02:30 (zoneinfo, fold=0);
    found at 02:10 the same night is then 20 minutes before. The file is right about the order, and
    the rule's reading of an impossible time is not worth refusing the file: the caller takes such
    an episode as found when it was reported.
    """
    stashed = [w for w in written if w is not None and len(w["positions"])]
    if not stashed:  # no time at a clock change: nothing to excuse, and no pass over the rows
        return np.empty(0, np.int64)
    rows = np.flatnonzero(found_at < reported_at)  # NaT compares False: open episodes are never here
    rows = rows[np.isin(rows, np.concatenate([w["positions"] for w in stashed]))]
    if not len(rows):
        return rows
    wall = []
    for instants, stash in zip((reported_at, found_at), written):
        local = utc_to_local(instants[rows], timezone)
        if stash is not None and len(stash["positions"]):
            # elsewhere the instant's local time is the written one; at a change, the stashed value is
            at = np.minimum(np.searchsorted(stash["positions"], rows), len(stash["positions"]) - 1)
            mine = stash["positions"][at] == rows
            local[mine] = stash["values"][at[mine]]
        wall.append(local)
    return rows[wall[1] >= wall[0]]


def _unit_values(values: pd.Series, where: str, column: str, kind: str) -> np.ndarray | pd.Categorical:
    """Unit ids, one per row: integer ids stay integers, text ids are stripped.

    Text ids are a Categorical (one byte per episode for a few dozen areas, where a text
    column holds every area's name again on each of millions of rows).
    """
    if pd.api.types.is_integer_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype):
        bad = first_bad(values.isna())
        if bad is not None:
            raise EvalkitError(where, f"column '{column}' is empty", "every episode needs its area", key=row_label(bad, kind))
        return values.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(values):
        bad = first_bad(values.isna() | (values != np.floor(values)))
        if bad is not None:
            raise EvalkitError(where, f"'{values.iloc[bad]}' in column '{column}' is not an area id",
                               "every episode needs its area (a name or a whole-number code)", key=row_label(bad, kind))
        return values.to_numpy().astype(np.int64)
    codes, categories = text_codes(values)
    bad = first_bad(codes < 0)
    if bad is not None:
        raise EvalkitError(where, f"column '{column}' is empty", "every episode needs its area", key=row_label(bad, kind))
    ids = coerce_unit_ids(pd.Series(categories, dtype="string"))
    if ids.dtype == np.int64:
        return ids.to_numpy()[codes]
    return pd.Categorical.from_codes(codes, categories=pd.Index(ids.to_numpy(dtype=object)))


def _check_unique_episodes(values: pd.Series, where: str, column: str, kind: str) -> None:
    """Refuse a repeated episode id, naming the row of its second occurrence.

    Sort-based, with Arrow (a stable sort of the ids, then neighbours compared): for a
    national extract's millions of distinct ids it is several times faster, and lighter,
    than a hash of them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    try:
        ids = pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        ids = pa.array(values.astype(object).map(lambda v: None if v is None or v != v else str(v)), type=pa.string())
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if len(ids) < 2:
        return
    order = pc.sort_indices(ids)  # stable: equal ids keep their row order
    ordered = ids.take(order)
    same = pc.fill_null(pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1)), False)
    repeats = np.flatnonzero(same.to_numpy(zero_copy_only=False))
    if not len(repeats):
        return
    # in each run of equal ids every element after the first is a later occurrence
    position = int(order.to_numpy()[repeats + 1].min())
    raise EvalkitError(where, f"episode id '{str(values.iloc[position])[:40]}' appears twice",
                       "remove the duplicate record", key=row_label(position, kind))


def _ages(values: pd.Series, where: str, column: str, kind: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        ages = values.astype("float64")
    else:
        codes, categories = text_codes(values)
        numbers = pd.to_numeric(pd.Series(categories, dtype=object), errors="coerce").to_numpy(dtype=float)
        bad_category = np.isnan(numbers)
        bad = first_bad((codes >= 0) & np.append(bad_category, False)[codes])
        if bad is not None:
            raise EvalkitError(where, f"'{str(values.iloc[bad]).strip()[:40]}' in column '{column}' is not an age",
                               "write the age in whole years, or leave it empty", key=row_label(bad, kind))
        ages = pd.Series(np.append(numbers, np.nan)[codes], index=values.index)
    low, high = AGE_RANGE
    bad = first_bad(ages.notna() & ((ages < low) | (ages > high) | ~np.isfinite(ages.fillna(0))))
    if bad is not None:
        raise EvalkitError(where, f"age {ages.iloc[bad]:g} in column '{column}' is outside {low}-{high}",
                           "correct the age, or leave it empty", key=row_label(bad, kind))
    return ages.to_numpy(dtype=float)


def coerce_unit_ids(unit: pd.Series) -> pd.Series:
    """Unit identifiers keep their type: all-integer ids become integers."""
    as_int = pd.to_numeric(unit, errors="coerce")
    # "01" stays text: a leading zero is part of an identifier, not of a number
    if as_int.notna().all() and (as_int == np.floor(as_int)).all() and unit.str.fullmatch(r"-?(0|[1-9]\d*)").all():
        return as_int.astype("int64")
    return unit.astype(object)


_FLAGS = {"1": True, "true": True, "yes": True, "y": True, "t": True,
          "0": False, "false": False, "no": False, "n": False, "f": False}


def _parse_flag(values: pd.Series, where: str, column: str, kind: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values) and not values.isna().any():
        return values.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        values = values.astype(object).map(lambda v: None if v is None or v != v else str(int(v)) if float(v).is_integer() else str(v))
    codes, categories = text_codes(values)
    parsed = pd.Series(categories, dtype=object).map(lambda v: _FLAGS.get(str(v).lower()))
    bad_category = parsed.isna().to_numpy()
    bad = first_bad((codes >= 0) & np.append(bad_category, False)[codes])
    if bad is not None:
        raise EvalkitError(where, f"'{str(values.iloc[bad]).strip()[:40]}' in column '{column}' is not yes/no",
                           "write 1/0, true/false or yes/no", key=row_label(bad, kind))
    flags = pd.array(np.append(parsed.to_numpy(dtype=object), [None])[codes], dtype="boolean")
    return flags.to_numpy(dtype=object, na_value=pd.NA) if flags.isna().any() else flags.to_numpy(dtype=bool)


def person_codes(episodes: pd.DataFrame) -> np.ndarray | None:
    """Integer person numbers (-1 when unknown), or None when no person is mapped."""
    if "person" not in episodes:
        return None
    person = episodes["person"]
    if isinstance(person.dtype, pd.CategoricalDtype):
        return person.cat.codes.to_numpy().astype(np.int64, copy=False)
    codes, _ = text_codes(person)
    return codes


def mark_repeats(episodes: pd.DataFrame) -> pd.Series:
    """True for an episode of a person already reported missing earlier in the extract.

    A person's first episode (earliest ``reported_at``; among ties, the first row) is not
    a repeat; every other episode of theirs is. Episodes without a person never are.
    """
    codes = person_codes(episodes)
    if codes is None:
        return pd.Series(False, index=episodes.index)
    known = codes >= 0
    n_persons = int(codes.max()) + 1 if known.any() else 0
    reported = episodes["reported_at"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    earliest = np.full(n_persons, np.iinfo(np.int64).max)
    np.minimum.at(earliest, codes[known], reported[known])
    rows = np.arange(len(episodes))
    is_earliest = known.copy()
    is_earliest[known] = reported[known] == earliest[codes[known]]
    first_row = np.full(n_persons, len(episodes))
    np.minimum.at(first_row, codes[is_earliest], rows[is_earliest])
    first = np.zeros(len(episodes), dtype=bool)
    first[known] = rows[known] == first_row[codes[known]]
    return pd.Series(known & ~first, index=episodes.index)


def unit_positions(values: pd.Series, units: list) -> np.ndarray:
    """Position of each row's unit in ``units`` (-1 when absent).

    Text units are looked up with Arrow (``index_in``): a hash of millions of Python
    strings against a few dozen areas is ten times slower through a pandas Index.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):  # the distinct areas looked up once, then their codes
        lookup = np.append(pd.Index(units).get_indexer(values.cat.categories), -1)
        return lookup[values.cat.codes.to_numpy()].astype(np.int64)
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype) \
            and not isinstance(values.dtype, pd.CategoricalDtype):
        if all(isinstance(u, str) for u in units):
            import pyarrow as pa
            import pyarrow.compute as pc

            try:
                found = pc.index_in(pa.array(values, from_pandas=True), value_set=pa.array(units, type=pa.string()))
                return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
            except (pa.ArrowException, TypeError, ValueError):
                # mixed types: fall through to the general lookup below
                found = None
    return pd.Index(units).get_indexer(values)


def period_positions(period: pd.Series, periods: pd.PeriodIndex) -> np.ndarray:
    """Position of each row's period in ``periods`` (-1 outside or missing).

    For a run of consecutive periods of the column's own frequency (every analysis
    window) the position is the period's ordinal minus the first one's: no hash table
    of millions of periods, as ``get_indexer`` builds. Anything else goes through
    ``get_indexer``.
    """
    array = period.array
    ordinals = getattr(array, "asi8", None)
    span = periods.asi8
    if ordinals is not None and len(span) and array.dtype == periods.dtype and bool((np.diff(span) == 1).all()):
        position = ordinals - span[0]
        position[(position < 0) | (position >= len(periods)) | (ordinals == np.iinfo(np.int64).min)] = -1
        return position
    return periods.get_indexer(period)


def derive_counts(episodes: pd.DataFrame, units: list, periods: pd.PeriodIndex) -> pd.DataFrame:
    """Reports, distinct persons and repeat reports per unit and period, zero-filled.

    ``episodes`` must carry ``unit``, ``period`` and ``repeat`` and hold only episodes in
    the window. Returns one row per (unit, period), units outer, in the given orders.
    """
    return counts_frame(units, periods, *EpisodeCells.of(episodes, units, periods).count())


def counts_frame(units: list, periods: pd.PeriodIndex, reports: np.ndarray, repeats: np.ndarray,
                 persons: np.ndarray) -> pd.DataFrame:
    """:func:`derive_counts`' frame from the counts per cell (:meth:`EpisodeCells.count`)."""
    return pd.DataFrame({
        "unit": pd.Index(units).repeat(len(periods)),
        "period": periods[np.tile(np.arange(len(periods)), len(units))],
        "reports": reports.astype("int64"),
        "repeat_reports": np.rint(repeats).astype("int64"),
        "persons": persons.astype("int64"),
    })


@dataclass
class EpisodeCells:
    """Each episode's (unit, period) cell and (cell, person) pair, for counting.

    Made once (:meth:`of`), they count any subset of the episodes (:meth:`count` with a
    mask): the moderator subgroups recount the national extract eight times, and the
    lookups of areas and periods and the person codes are the costly part of a count.

    Attributes
    ----------
    cell : ndarray of int64
        ``unit position * n_periods + period position``; -1 outside the grid.
    repeat : ndarray of bool
    pair : ndarray of int64 or None
        ``cell * width + person code`` (-1 outside the grid or for an unknown person), or
        None when no person is mapped (persons are then counted as reports).
    width : int
        Person codes are below it.
    n_cells : int
    """

    cell: np.ndarray
    repeat: np.ndarray
    pair: np.ndarray | None
    width: int
    n_cells: int

    @classmethod
    def of(cls, episodes: pd.DataFrame, units: list, periods: pd.PeriodIndex) -> EpisodeCells:
        # in place where it can be: each temporary is one int64 per episode (28 MB nationally)
        unit_position = unit_positions(episodes["unit"], units)
        period_position = period_positions(episodes["period"], periods)
        outside = (unit_position < 0) | (period_position < 0)
        cell = np.multiply(unit_position, len(periods), dtype=np.int64)
        del unit_position
        cell += period_position
        del period_position
        cell[outside] = -1
        repeat = episodes["repeat"].to_numpy(dtype=bool)
        codes = person_codes(episodes)
        pair, width = None, 1
        if codes is not None:
            width = int(codes.max()) + 1 if len(codes) else 1  # no episodes: every count is 0
            pair = np.multiply(cell, width, dtype=np.int64)
            pair += codes
            pair[outside | (codes < 0)] = -1
        return cls(cell=cell, repeat=repeat, pair=pair, width=width, n_cells=len(units) * len(periods))

    def count(self, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reports, repeat reports and distinct persons per cell, of the episodes in
        ``mask`` (default: all)."""
        inside = self.cell >= 0 if mask is None else mask & (self.cell >= 0)
        reports = np.bincount(self.cell[inside], minlength=self.n_cells)
        inside &= self.repeat  # repeat reports counted, not summed as float weights: the same whole numbers
        repeats = np.bincount(self.cell[inside], minlength=self.n_cells)
        del inside
        if self.pair is None:
            return reports, repeats, reports
        known = self.pair >= 0 if mask is None else mask & (self.pair >= 0)
        # distinct (cell, person) pairs: sort the combined key (numpy's hash-based
        # np.unique is far slower than a sort on millions of int64s), in place
        pairs = self.pair[known]
        del known
        pairs.sort()
        distinct = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
        persons = np.bincount(distinct // self.width, minlength=self.n_cells)
        return reports, repeats, persons


def clock_change_words(clock: dict) -> str:
    """The data check's sentence for ``data.timezone`` (counts and rules, never rows).

    Zone-neutral: the rules are the same in every zone, and an example in one zone's
    abbreviations (01:30 BST) would be wrong for another (New York's changes are at 02:00,
    Lord Howe Island's are half an hour).
    """
    zone, ambiguous, nonexistent = clock["timezone"], clock["ambiguous"], clock["nonexistent"]
    reordered = clock.get("reordered", 0)
    words = (f"date-times without a zone are {zone} wall-clock time, converted to UTC: hours to found are real "
             "elapsed time across clock changes, and each episode counts in the period of its local calendar date")
    if not ambiguous and not nonexistent:
        return words + "; no date-time fell in an hour the clocks went back or skipped"

    # "3 episode(s)": the report's disclosure control finds a count by its noun and may write
    # "fewer than 10" in its place, so the sentence must read right for any number
    parts = []
    if ambiguous:
        parts.append(f"{ambiguous} episode(s) with a date-time in the hour the clocks went back, which occurs twice: "
                     "read as its first occurrence (the offset before the change)")
    if nonexistent:
        parts.append(f"{nonexistent} episode(s) with a date-time in the hour the clocks skipped, which does not occur: "
                     "read with the offset before the change, which moves it on by the time skipped (as if the clock "
                     "had not yet been changed)")
    if reordered:
        parts.append(f"{reordered} episode(s) found, as written, after they were reported but before it once read this "
                     "way: taken as found when reported (0 hours to found)")
    return words + "; " + "; ".join(parts) + ": check those episodes' durations if an hour matters"
