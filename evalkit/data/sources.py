"""Reading data sources: CSV (optionally gzipped) and Parquet files.

Every problem is raised as an EvalkitError naming the file; rows are counted as a
spreadsheet shows them (the header is row 1, the first record row 2).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from ..errors import EvalkitError, did_you_mean

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")


def file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    return "unknown"


def row_label(position: int, kind: str) -> str:
    """The row a user finds in the file for a 0-based record position."""
    return f"row {position + 2}" if kind == "csv" else f"row {position + 1}"


def sha256_of(paths) -> str:
    """SHA-256 over the bytes of the given files, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_table(path: Path, where: str, columns: list[str], key: str) -> pd.DataFrame:
    """Read the named columns of a CSV or Parquet file, every value as text (CSV) or as stored.

    Parameters
    ----------
    path : Path
        The resolved file.
    where : str
        The file as the user named it, for messages.
    columns : list of str
        The columns needed; a missing one is an error with a "did you mean" hint.
    key : str
        The design key that named the file (``data.source``), for messages.
    """
    if str(path).startswith(("sqlite:", "duckdb:", "postgresql:", "postgres:", "mysql:")) or "://" in str(path):
        raise EvalkitError(where, "SQL sources are not available in this version of evalkit",
                           "export the table to CSV or Parquet and point data.source at it", key=key)
    if not path.exists():
        raise EvalkitError(where, "file not found", f"check {key} (relative paths start at the design file's folder)")
    if path.is_dir():
        raise EvalkitError(where, "is a folder, not a data file", f"point {key} at a .csv or .parquet file")
    kind = file_kind(path)
    if kind == "unknown":
        raise EvalkitError(where, "unknown file type", "use a .csv, .csv.gz or .parquet file")
    wanted = list(dict.fromkeys(columns))
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            names = pq.ParquetFile(path).schema_arrow.names
            _check_columns(names, wanted, where, key)
            frame = pd.read_parquet(path, columns=wanted)
        else:
            sep = "\t" if path.name.lower().endswith(".tsv") else ","
            header = pd.read_csv(path, nrows=0, sep=sep, encoding="utf-8")
            names = [str(c) for c in header.columns]
            _check_columns(names, wanted, where, key)
            frame = pd.read_csv(
                path, usecols=wanted, dtype=str, keep_default_na=False, na_values=[], sep=sep,
                encoding="utf-8",
            )
    except EvalkitError:
        raise
    except UnicodeDecodeError:
        raise EvalkitError(where, "is not UTF-8 text", "save the file as UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise EvalkitError(where, "the file is empty", "export the data again with a header row") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EvalkitError(where, f"cannot be read ({first})", "check that it is a valid CSV or Parquet file") from None
    except Exception as exc:  # pyarrow raises its own types for corrupt files
        raise EvalkitError(where, f"cannot be read ({type(exc).__name__})", "check that it is a valid CSV or Parquet file") from None
    if len(frame) == 0:
        raise EvalkitError(where, "has a header but no rows", "export the data again")
    frame.attrs["kind"] = kind
    return frame


def _check_columns(present: list[str], wanted: list[str], where: str, key: str) -> None:
    for column in wanted:
        if column not in present:
            raise EvalkitError(
                where,
                f"column '{column}' not found{did_you_mean(column, present)}",
                f"correct the column name in the design ({key.rsplit('.', 1)[0]}.columns) or the file",
            )


def first_bad(mask: pd.Series) -> int | None:
    """0-based position of the first True in a boolean Series, or None."""
    positions = mask.to_numpy().nonzero()[0]
    return int(positions[0]) if len(positions) else None
