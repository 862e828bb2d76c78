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

    A text column is parsed through its distinct values (a panel repeats each period on
    every unit's row): when they all parse, each row takes its value's period; when one
    does not, the rows themselves are parsed, so the error names the first bad row.
    """
    by_value = _periods_by_distinct_value(raw, time_columns, frequency, where, allow_year_only, date_format)
    if by_value is not None:
        return by_value
    return _parse_periods(raw, time_columns, frequency, where, allow_year_only, date_format)


def _periods_by_distinct_value(raw: pd.DataFrame, time_columns: list[str], frequency: str, where: str,
                               allow_year_only: bool, date_format: str | None) -> tuple[pd.Series, bool] | None:
    """The periods parsed once per distinct text value; None when that does not apply or a
    value does not parse (the caller then parses the rows, so the error names the first bad row)."""
    if len(time_columns) != 1 or len(raw) <= 1:
        return None
    values = raw[time_columns[0]]
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return None
    codes, distinct = pd.factorize(values)
    if len(distinct) >= len(values) or (codes < 0).any():
        return None
    small = pd.DataFrame({time_columns[0]: pd.Series(distinct, dtype=values.dtype)})
    small.attrs["kind"] = raw.attrs.get("kind", "csv")
    try:
        periods, yearly = _parse_periods(small, time_columns, frequency, where, allow_year_only, date_format)
    except EvalkitError:
        return None
    return pd.Series(periods.array.take(codes), index=raw.index), yearly


def _parse_periods(raw: pd.DataFrame, time_columns: list[str], frequency: str, where: str,
                   allow_year_only: bool = False, date_format: str | None = None) -> tuple[pd.Series, bool]:
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
        # from the numbers, not pandas' text parser, which refuses some years ("0000Q1")
        fields = text[quarter].str.extract(r"(\d{4})-?[Qq]([1-4])").astype("int64")
        parsed[quarter] = pd.PeriodIndex.from_fields(year=fields[0].to_numpy(), quarter=fields[1].to_numpy(),
                                                     freq="Q").asfreq(freq, how="start")
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
    fast = _arrow_numbers(values)
    if fast is not None:  # Arrow text that Arrow reads exactly as pandas would: no error possible here
        numbers = pd.Series(fast, index=values.index)
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype("float64")
        text_missing = numbers.isna()
    else:
        text = values.astype("string").str.strip()
        text_missing = text.isna() | (text == "") | text.str.lower().isin(["na", "nan", "null"])
        numbers = _to_float(text.where(~text_missing))
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
    # each distinct id once (a panel repeats it on every period's row), then one per row
    codes, distinct = pd.factorize(values)
    text = pd.Series(distinct).astype("string").str.strip()
    empty = np.append((text.isna() | (text == "")).to_numpy(dtype=bool, na_value=True), True)  # code -1: a missing cell
    bad = first_bad(empty[codes])
    if bad is not None:
        raise EvalkitError(where, f"column '{column}' is empty", "every row needs its unit", key=row_label(bad, kind))
    return coerce_unit_ids(text).to_numpy()[codes]


def _arrow_numbers(values: pd.Series) -> np.ndarray | None:
    """:func:`numeric_column`'s reading of a text column, in Arrow alone: float64 with NaN
    for a missing cell (empty, NA, NaN, null). None when the column is not Arrow text, or
    when any value needs pandas (:func:`_to_float`), or is not a number: the caller then
    reads the column as before, and its error names the row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(values.dtype, pd.StringDtype) or not len(values):
        return None
    try:
        text = values.array.__arrow_array__()
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        stripped = pc.utf8_trim_whitespace(text)
        missing = pc.or_(pc.is_null(stripped),
                         pc.fill_null(pc.is_in(pc.utf8_lower(stripped), value_set=pa.array(["", "na", "nan", "null"])), True))
        longest = pc.max(pc.binary_length(stripped)).as_py()
        if longest is None or longest > _ARROW_CHARS:
            return None
        numbers = pc.cast(pc.if_else(missing, pa.scalar(None, stripped.type), stripped), pa.float64())
        numbers = numbers.to_numpy(zero_copy_only=False)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if (np.isnan(numbers) & ~missing.to_numpy(zero_copy_only=False)).any() or (np.signbit(numbers) & (numbers == 0)).any():
        return None  # a NaN spelled otherwise ("+nan"): pandas' error; a negative zero: pandas' reading
    return numbers


#: text longer than this (so possibly more digits) is parsed by pandas itself (see :func:`_to_float`)
_ARROW_CHARS = 17


def _to_float(text: pd.Series) -> pd.Series:
    """``pd.to_numeric(text, errors="coerce")`` as float64, through Arrow's parser when it is
    certain to give the same numbers.

    Arrow parses text to doubles several times faster than pandas (which goes through a
    Python object per value). Both round correctly at up to 17 significant digits (checked
    on 1.5 million values in five formats: no difference). A column with a value longer
    than 17 characters (it may have more digits), a negative zero (pandas reads ``-0`` as
    the integer 0) or any text Arrow refuses (pandas makes it NaN: the caller's error) is
    left to pandas, so the result is always what pandas gives.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        array = pa.array(text, from_pandas=True)
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)) and len(array):
            longest = pc.max(pc.binary_length(array)).as_py()
            if longest is not None and longest <= _ARROW_CHARS:
                numbers = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
                if not (np.signbit(numbers) & (numbers == 0)).any():
                    return pd.Series(numbers, index=text.index)
    except (pa.ArrowException, TypeError, ValueError):
        return _pandas_float(text)  # text Arrow does not read as a number: pandas decides, value by value
    return _pandas_float(text)


def _pandas_float(text: pd.Series) -> pd.Series:
    return pd.to_numeric(text, errors="coerce").astype("float64")
