"""Periods of the analysis: months, quarters or years, parsed from what users write.

A period is held as a :class:`pandas.Period`; its label (``2021-04``, ``2021Q2``, ``2021``)
is what results.json and the report show.
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd

FREQUENCIES = {"month": "M", "quarter": "Q", "year": "Y"}
#: Periods per year, for seasonality and "per year" translations.
PERIODS_PER_YEAR = {"month": 12, "quarter": 4, "year": 1}

_MONTH = re.compile(r"^\s*(\d{4})-(\d{1,2})(?:-(\d{1,2}))?\s*$")
_QUARTER = re.compile(r"^\s*(\d{4})\s*-?\s*[Qq]([1-4])\s*$")
_YEAR = re.compile(r"^\s*(\d{4})\s*$")


def parse_period(value, frequency: str) -> pd.Period:
    """Parse a period as a user writes it, for the given frequency.

    Accepts ``2021-04`` / ``2021-04-01`` / a date (any frequency), ``2021Q2`` or
    ``2021-Q2`` (quarter, year) and ``2021`` (year; for months and quarters it means
    the first period of that year only when written as a date, so it is refused).

    Raises
    ------
    ValueError
        With a short reason, for the caller to wrap in an EvalkitError.
    """
    freq = FREQUENCIES[frequency]
    if isinstance(value, pd.Period):
        return value.asfreq(freq, how="start")
    if isinstance(value, (dt.date, dt.datetime, pd.Timestamp)):
        return pd.Period(pd.Timestamp(value), freq=freq)
    if isinstance(value, bool):
        raise ValueError(f"'{value}' is not a period")
    if isinstance(value, int):
        if frequency == "year":
            return pd.Period(year=value, freq="Y")
        raise ValueError(f"'{value}' is a year, but the data are by {frequency}; write e.g. {value}-01")
    text = str(value)
    m = _MONTH.match(text)
    if m:
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            raise ValueError(f"'{text}' has month {month}")
        day = int(m.group(3)) if m.group(3) else 1
        try:
            stamp = pd.Timestamp(year=year, month=month, day=day)
        except ValueError as exc:
            raise ValueError(f"'{text}' is not a date ({exc})") from None
        return pd.Period(stamp, freq=freq)
    m = _QUARTER.match(text)
    if m:
        if frequency == "month":
            raise ValueError(f"'{text}' is a quarter, but the data are monthly; write e.g. 2021-04")
        return pd.Period(year=int(m.group(1)), quarter=int(m.group(2)), freq="Q").asfreq(freq, how="start")
    m = _YEAR.match(text)
    if m:
        return parse_period(int(m.group(1)), frequency)
    raise ValueError(f"'{text}' is not a period (write e.g. 2021-04, 2021Q2 or 2021)")


def period_label(period: pd.Period) -> str:
    """The label shown to users: ``2021-04``, ``2021Q2`` or ``2021``."""
    return str(period)


def parse_timestamp_end_of_day(value) -> pd.Timestamp:
    """A timestamp; a date alone (no time of day) means the end of that day."""
    if isinstance(value, dt.datetime) or isinstance(value, pd.Timestamp):
        return pd.Timestamp(value)
    if isinstance(value, dt.date):
        return pd.Timestamp(value) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    text = str(value).strip()
    if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", text):
        return pd.Timestamp(text) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    # a date-time in ISO 8601 only: 01/03/2024 could be the 1st of March or the 3rd of January,
    # and 2024-03 is a month, not a moment
    if not re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?", text):
        raise ValueError(f"'{text[:40]}' is not an ISO date (2024-03-31) or date-time (2024-03-31T23:59)")
    return pd.Timestamp(text)
