"""Panel layout (one row per unit and period) and period columns shared with exposure files."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import EvalkitError
from ..periods import FREQUENCIES
from .episodes import coerce_unit_ids
from .sources import first_bad, row_label


def parse_period_column(raw: pd.DataFrame, time_columns: list[str], frequency: str, where: str,
                        allow_year_only: bool = False, date_format: str | None = None) -> tuple[pd.Series, bool]:
    """Parse a period from one column (date, ``YYYY-MM``, ``2021Q2``, year) or [year, month].

    Returns the periods and whether they are whole years given for a finer frequency
    (an annual exposure to be spread over the months or quarters of each year).
    """
    kind = raw.attrs.get("kind", "csv")
    freq = FREQUENCIES[frequency]
    if len(time_columns) == 2:
        year = _integers(raw[time_columns[0]], where, time_columns[0], kind)
        sub = _integers(raw[time_columns[1]], where, time_columns[1], kind)
        top = 12 if frequency == "month" else 4
        bad = first_bad(pd.Series((sub < 1) | (sub > top)))
        if bad is not None:
            raise EvalkitError(where, f"'{sub[bad]}' in column '{time_columns[1]}' is not 1-{top}",
                               "check the column", key=row_label(bad, kind))
        if frequency == "month":
            periods = pd.PeriodIndex.from_fields(year=year, month=sub, freq="M")
        else:
            periods = pd.PeriodIndex.from_fields(year=year, quarter=sub, freq="Q")
        return pd.Series(periods.asfreq(freq, how="start"), index=raw.index), False
    column = time_columns[0]
    values = raw[column]
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.Series(values.dt.to_period(freq), index=raw.index), False
    text = values.astype("string").str.strip()
    if text.str.fullmatch(r"\d{4}").fillna(False).all():
        periods = pd.PeriodIndex(pd.to_datetime(text.tolist(), format="%Y").to_period("Y"))
        if frequency == "year":
            return pd.Series(periods, index=raw.index), False
        if allow_year_only:
            return pd.Series(periods, index=raw.index), True
        raise EvalkitError(where, f"column '{column}' holds years but the data are by {frequency}",
                           "give a date or YYYY-MM, or map time to [year, month]")
    quarter = text.str.fullmatch(r"\d{4}-?[Qq][1-4]").fillna(False)
    parsed = pd.Series(pd.NaT, index=raw.index, dtype=f"period[{freq}]")
    if quarter.any():
        q = text[quarter].str.replace("-", "", regex=False).str.upper()
        parsed[quarter] = pd.PeriodIndex(q.tolist(), freq="Q").asfreq(freq, how="start")
    rest = ~quarter
    if date_format is not None:
        stamps = pd.to_datetime(text[rest], errors="coerce", format=date_format)
    else:
        # ISO forms only: 01/04/2021 could be the 1st of April or the 4th of January
        iso = text[rest].str.fullmatch(r"\d{4}-\d{1,2}(?:-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?)?").fillna(False)
        ambiguous = first_bad(pd.Series(~iso.to_numpy() & text[rest].str.match(r"^\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}")
                                        .fillna(False).to_numpy()))
        if ambiguous is not None:
            position = int(np.flatnonzero(rest.to_numpy())[ambiguous])
            raise EvalkitError(where, f"'{str(text.iloc[position])[:40]}' in column '{column}' is not written "
                               "YYYY-MM; dates written like it can be day-first or month-first", "declare data.date_format (e.g. '%d/%m/%Y' for UK day-first dates), or "
                               "write periods as YYYY-MM", key=row_label(position, kind))
        stamps = pd.to_datetime(text[rest].where(iso), errors="coerce", format="ISO8601")
    parsed[rest] = stamps.dt.to_period(freq)
    bad = first_bad(parsed.isna())
    if bad is not None:
        what = ("does not match the declared date_format" if date_format is not None else "is not a period")
        fix = ("correct the value or data.date_format" if date_format is not None
               else "write periods as YYYY-MM (or a date, 2021Q2, or a year)")
        raise EvalkitError(where, f"'{str(text.iloc[bad])[:40]}' in column '{column}' {what}", fix, key=row_label(bad, kind))
    return parsed, False


def _integers(values: pd.Series, where: str, column: str, kind: str) -> np.ndarray:
    numbers = pd.to_numeric(values.replace("", np.nan) if values.dtype == object else values, errors="coerce")
    bad = first_bad(numbers.isna() | (numbers != np.floor(numbers)))
    if bad is not None:
        raise EvalkitError(where, f"'{values.iloc[bad]}' in column '{column}' is not a whole number",
                           "check the column", key=row_label(bad, kind))
    return numbers.astype("int64").to_numpy()


def numeric_column(values: pd.Series, where: str, column: str, kind: str, allow_missing: bool = False) -> np.ndarray:
    """A numeric column; a non-number is an error naming its row."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype("float64")
        text_missing = numbers.isna()
    else:
        text = values.astype("string").str.strip()
        text_missing = text.isna() | (text == "") | text.str.lower().isin(["na", "nan", "null"])
        numbers = pd.to_numeric(text.where(~text_missing), errors="coerce").astype("float64")
        bad = first_bad(numbers.isna() & ~text_missing)
        if bad is not None:
            raise EvalkitError(where, f"'{str(text.iloc[bad])[:40]}' in column '{column}' is not a number",
                               "correct the value", key=row_label(bad, kind))
    if not allow_missing:
        bad = first_bad(numbers.isna())
        if bad is not None:
            raise EvalkitError(where, f"column '{column}' is missing a value", "fill it in or drop the row",
                               key=row_label(bad, kind))
    bad = first_bad(pd.Series(np.isinf(numbers.to_numpy())))
    if bad is not None:
        raise EvalkitError(where, f"column '{column}' holds an infinite value", "correct the value", key=row_label(bad, kind))
    return numbers.to_numpy()


def unit_column(values: pd.Series, where: str, column: str, kind: str) -> np.ndarray:
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy()
    text = values.astype("string").str.strip()
    bad = first_bad(text.isna() | (text == ""))
    if bad is not None:
        raise EvalkitError(where, f"column '{column}' is empty", "every row needs its unit", key=row_label(bad, kind))
    return coerce_unit_ids(text).to_numpy()
