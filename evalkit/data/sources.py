"""Reading data sources: CSV (optionally gzipped) and Parquet files, and SQL databases.

Every problem is raised as an EvalkitError naming the file (or the database URL, without
its password) and, where there is one, the row; rows are counted as a spreadsheet shows
them (the header is row 1, the first record row 2; row 1 is the first record of a Parquet
file or a query result). Hostile input (binary files, wrong delimiters or encodings,
ragged rows, huge fields) is refused with one line, never a traceback.

Only the columns the design needs are read. Person identifiers are pseudonymised right
after reading (:mod:`evalkit.data.pseudonymise`), before anything else sees them.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import EvalkitError, did_you_mean
from .progress import stage

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: The longest text value accepted in any cell: longer is a broken export, not a record.
MAX_FIELD_CHARS = 10_000
_SNIFF_BYTES = 1 << 16
NEWLINE = b"\n"
_DATABASE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class SourceDigest:
    """The SHA-256 of data that are not a file (a query result), for :func:`sha256_of`."""

    def __init__(self, label: str, sha256: str):
        self.label = label
        self.sha256 = sha256

    def __str__(self) -> str:
        return self.label


def is_database_url(source: str) -> bool:
    """True for a SQLAlchemy URL (``sqlite:///f.db``, ``postgresql://host/db``, ...)."""
    return bool(_DATABASE_URL.match(str(source)))


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
    """SHA-256 over the bytes of the given files, in order (a query result by its own digest)."""
    digest = hashlib.sha256()
    for path in paths:
        if isinstance(path, SourceDigest):
            digest.update(path.sha256.encode("ascii"))
            continue
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def release_unused_memory() -> None:
    """Hand memory freed after a large step back to the system (the allocators keep it otherwise).

    Arrow's pool (mimalloc or jemalloc) keeps freed pages for reuse, and so does glibc's
    malloc for numpy and pandas buffers (in per-thread arenas it trims only at their top):
    after reading and validating a national extract that is hundreds of MiB no longer used
    but still resident, and it counts towards the run's peak when the analyses allocate
    beside it. ``malloc_trim(0)`` (glibc only: looked up in the running C library, skipped
    elsewhere) returns the free pages of every arena. Neither call changes any value.
    """
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except Exception:  # an allocator without the call: nothing to release
        pass
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


_TRIM: list = []


def _malloc_trim():
    """glibc's ``malloc_trim``, or None on another C library or system (looked up once)."""
    if not _TRIM:
        function = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                function = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
                function.argtypes, function.restype = [ctypes.c_size_t], ctypes.c_int
            except (OSError, AttributeError):  # musl and others have no malloc_trim
                function = None
        _TRIM.append(function)
    return _TRIM[0]


def read_source(design, columns: list[str], categorical=(), frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read ``data.source`` (a file or a database URL) and pseudonymise its person column.

    Parameters
    ----------
    design : Design
        The design; ``data.source``, ``data.query``/``table``/``params`` and the
        pseudonym key settings are read from it.
    columns : list of str
        The file's columns that are needed.
    categorical : iterable of str
        Text columns with few distinct values (areas, grades, persons): read as
        pandas Categoricals, which makes validating millions of rows cheap.

    Returns
    -------
    DataFrame
        ``attrs["kind"]`` is ``csv``, ``parquet`` or ``sql`` (for row labels) and
        ``attrs["digest"]`` what :func:`sha256_of` hashes (the path, or a SourceDigest).
    """
    from ..design import IN_MEMORY
    from .pseudonymise import pseudonym_key, pseudonymise

    spec = design.data
    person = spec.columns.get("person") if spec.layout == "episodes" else None
    key: bytes | None = None
    if person is not None:
        # before reading: a missing key is reported at once, not after a long read
        key = pseudonym_key(spec.person_key_env, spec.person_key, design.where)
    if frame is not None:
        frame = read_frame(frame, columns, categorical)
    elif spec.source == IN_MEMORY:  # evalkit.design_from_dict without data.source
        raise EvalkitError(design.where, "the design's data are in memory (it has no data.source)",
                           "pass them as evalkit.run(design, data=frame), or set data.source", key="data.source")
    elif is_database_url(spec.source):
        from .sql import read_database

        frame = read_database(design, columns)
        for column in categorical:
            if column in frame and not pd.api.types.is_numeric_dtype(frame[column]):
                frame[column] = frame[column].astype("category")
    else:
        path = design.resolve(spec.source)
        # a Parquet person column is read as a dictionary: only the distinct identifiers are
        # ever strings, and they are hashed at once
        frame = read_table(path, spec.source, columns, "data.source", categorical=categorical,
                           dictionary=[person] if person is not None else [])
        frame.attrs["digest"] = path
    if person is not None and key is not None:  # a person column always has its key (read above)
        with stage("pseudonymise person identifiers"):
            frame[person] = pseudonymise(frame[person], key)
            release_unused_memory()
    return frame


def read_frame(frame: pd.DataFrame, columns: list[str], categorical=()) -> pd.DataFrame:
    """The needed columns of a pandas DataFrame given in memory, read as a typed file is (Parquet).

    The frame is not changed. Row numbers in messages count its rows from 1, as for Parquet;
    ``attrs["digest"]`` fingerprints its values (pandas' stable row hashes), so the same
    rows give the same data SHA-256 in results.json.
    """
    where = "data (in memory)"
    if not isinstance(frame, pd.DataFrame):
        raise EvalkitError(where, f"is a {type(frame).__name__}, not a pandas DataFrame",
                           "pass a DataFrame in the design's layout (one row per episode, or per unit and period)")
    present = [str(c) for c in frame.columns]
    wanted = list(dict.fromkeys(columns))
    check_columns(present, wanted, where, "data.source")
    if len(frame) == 0:
        raise EvalkitError(where, "has no rows", "pass the data's rows")
    selected = frame.loc[:, [c for c in frame.columns if str(c) in set(wanted)]].copy()
    selected.columns = [str(c) for c in selected.columns]
    selected = selected.loc[:, ~selected.columns.duplicated()][wanted].reset_index(drop=True)
    for column in wanted:
        values = selected[column]
        if values.dtype == object and values.map(lambda v: isinstance(v, str) or v is None or v != v).all():
            selected[column] = values.astype("string")
    for column in dict.fromkeys(categorical):
        if column in selected and not pd.api.types.is_numeric_dtype(selected[column]) \
                and not pd.api.types.is_datetime64_any_dtype(selected[column]):
            selected[column] = selected[column].astype("category")
    check_field_lengths(selected, where, "parquet")
    hashed = pd.util.hash_pandas_object(selected.astype("string"), index=False).to_numpy()
    selected.attrs["kind"] = "parquet"
    selected.attrs["digest"] = SourceDigest(where, hashlib.sha256(hashed.tobytes()).hexdigest())
    return selected


def read_table(path: Path, where: str, columns: list[str], key: str, categorical=(), dictionary=()) -> pd.DataFrame:
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
    categorical : iterable of str
        Columns to read as pandas Categoricals.
    dictionary : iterable of str
        Parquet text columns to leave as Arrow dictionaries (``pandas.ArrowDtype``), for a
        column replaced right after reading: the person ids, which
        :func:`evalkit.data.pseudonymise.pseudonymise` reads as dictionary and indices, so
        the identifiers never become a pandas Categorical (whose check of a million
        distinct values builds a hash table of Python strings). A CSV reads them as text.
    """
    if is_database_url(str(where)):
        raise EvalkitError(where, "a database URL is only accepted as data.source",
                           f"export the table to CSV or Parquet and point {key} at it", key=key)
    if not path.exists():
        raise EvalkitError(where, "file not found", f"check {key} (relative paths start at the design file's folder)")
    if path.is_dir():
        raise EvalkitError(where, "is a folder, not a data file", f"point {key} at a .csv or .parquet file")
    if not path.is_file():  # a FIFO or a device would block the read forever, or never end
        raise EvalkitError(where, "is not a regular file (a pipe or a device?)", f"point {key} at a .csv or .parquet file")
    kind = file_kind(path)
    if kind == "unknown":
        raise EvalkitError(where, "unknown file type", "use a .csv, .csv.gz or .parquet file")
    wanted = list(dict.fromkeys(columns))
    categorical = [c for c in dict.fromkeys(categorical) if c in wanted]
    with stage(f"read {path.name}"):
        if kind == "parquet":
            frame = _read_parquet(path, where, wanted, key, categorical, [c for c in dictionary if c in wanted])
        else:
            frame = _read_csv(path, where, wanted, key, categorical)
    if len(frame) == 0:
        raise EvalkitError(where, "has a header but no rows", "export the data again")
    frame.attrs["kind"] = kind
    return frame


# ----------------------------------------------------------------------------- CSV
_BLOCK_BYTES = 16 << 20  # pyarrow's CSV block: the longest line accepted


def _read_csv(path: Path, where: str, wanted: list[str], key: str, categorical: list[str]) -> pd.DataFrame:
    """Read CSV text with pyarrow: strict field counts, every wanted column as text.

    Rows are counted as records (a quoted value may hold a line break, as a spreadsheet
    shows it); the header is row 1.
    """
    import pyarrow as pa
    import pyarrow.csv as pv

    gzipped = path.name.lower().endswith(".gz")
    head = _sniff(path, where, gzipped)
    if not head.strip():
        raise EvalkitError(where, "the file is empty", "export the data again with a header row")
    if b"\0" in head:
        raise EvalkitError(where, "is a binary file, not CSV text", "export the data as CSV (comma-separated, UTF-8)",
                           key=_line_of(head, head.index(b"\0")))
    sep = "\t" if path.name.lower().endswith((".tsv", ".tsv.gz")) else ","
    _check_utf8(path, gzipped, where)
    raw_names = _header_names(head, sep, where)
    names = [name.strip() for name in raw_names]
    _check_delimiter(names, wanted, head, sep, where)
    check_columns(names, wanted, where, key)
    # the header as written (spaces around a name are forgiven): wanted name -> file name
    as_written: dict[str, str] = {}
    for name, raw_name in zip(names, raw_names):
        as_written.setdefault(name, raw_name)
    file_columns = [as_written[c] for c in wanted]
    invalid: list = []

    def on_invalid(row):
        invalid.append((row.number, row.actual_columns, row.text))
        return "skip"

    def read(threads: bool):
        return pv.read_csv(
            path,
            read_options=pv.ReadOptions(block_size=_BLOCK_BYTES, use_threads=threads),
            parse_options=pv.ParseOptions(delimiter=sep, newlines_in_values=True, ignore_empty_lines=False,
                                          invalid_row_handler=on_invalid),
            convert_options=pv.ConvertOptions(column_types={c: pa.string() for c in file_columns},
                                              include_columns=file_columns,
                                              strings_can_be_null=False, quoted_strings_can_be_null=False),
        )

    try:
        table = read(True)
        if invalid and any(number is None for number, _, _ in invalid):
            invalid.clear()
            table = read(False)  # row numbers are only known to a single-threaded read
    except pa.ArrowInvalid as exc:
        text = str(exc)
        if "UTF8" in text or "UTF-8" in text:
            raise EvalkitError(where, "is not UTF-8 text", "save the file as UTF-8 CSV") from None
        if "straddl" in text or "block" in text:
            raise EvalkitError(where, f"a line is longer than {_BLOCK_BYTES >> 20} MB",
                               "check the export: no episode record is that long",
                               key=_first_long_row(path, gzipped, _BLOCK_BYTES)) from None
        raise EvalkitError(where, f"cannot be read as CSV ({_first_line(text)})", "check that it is a valid CSV file") from None
    except pa.ArrowException as exc:  # e.g. a header pyarrow splits differently from Python's csv module
        raise EvalkitError(where, f"cannot be read as CSV ({_first_line(str(exc))})", "check the header row and the quoting",
                           key="row 1") from None
    except (OSError, EOFError, zlib.error) as exc:
        if gzipped:
            raise EvalkitError(where, "is not a valid gzip file (it may be truncated)",
                               "compress the CSV again with gzip, or save it uncompressed") from None
        raise EvalkitError(where, f"cannot be read ({_first_line(str(exc))})", "check that it is a valid CSV file") from None
    if invalid:
        number, fields, text = min(invalid, key=lambda item: item[0])
        if text.count('"') % 2 == 1:
            raise EvalkitError(where, "a quoted value is never closed", "close the quotes or remove the stray quote character",
                               key=f"row {number}")
        raise EvalkitError(where, f"has {fields} fields but the header has {len(names)}",
                           "check for an unquoted comma in a value, or a missing value", key=f"row {number}")
    frame = table.to_pandas()
    del table
    frame.columns = wanted
    frame = _drop_blank_rows(frame, where)
    check_field_lengths(frame, where, "csv")
    for column in categorical:
        frame[column] = frame[column].astype("category")
    return frame


def _header_names(head: bytes, sep: str, where: str) -> list[str]:
    """The header's column names as written (split like pyarrow: any line ending ends it)."""
    import csv

    first = re.split(rb"\r\n|\n|\r", head, maxsplit=1)[0]
    try:
        line = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise EvalkitError(where, "is not UTF-8 text", "save the file as UTF-8 CSV", key="row 1") from None
    try:
        names = next(csv.reader([line], delimiter=sep), [])
    except csv.Error as exc:
        raise EvalkitError(where, f"the header cannot be read ({exc})", "check the header row", key="row 1") from None
    seen = set()
    for name in names:
        name = name.strip()
        if name in seen and name:
            raise EvalkitError(where, f"column '{name[:40]}' appears twice in the header", "give every column its own name",
                               key="row 1")
        seen.add(name)
    return names


def _drop_blank_rows(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Drop blank lines at the end of the file; a blank line inside the data is an error."""
    if frame.empty:
        return frame
    blank = np.ones(len(frame), dtype=bool)
    for column in frame.columns:
        blank &= (frame[column] == "").to_numpy(dtype=bool, na_value=True)
    if not blank.any():
        return frame
    filled = np.flatnonzero(~blank)
    end = int(filled[-1]) + 1 if len(filled) else 0
    bad = first_bad(blank[:end])
    if bad is not None:
        raise EvalkitError(where, "a blank line (or a row with every needed value empty) inside the data",
                           "remove the line or fill in the row", key=row_label(bad, "csv"))
    return frame.iloc[:end]


def _first_line(text: str) -> str:
    text = text.strip()
    return " ".join(text.splitlines()[0].split())[:120] if text else "unknown error"


def _first_long_row(path: Path, gzipped: bool, limit: int) -> str | None:
    """The row of the first line at least ``limit`` bytes long, read in blocks (a line is never held whole)."""
    opener = gzip.open if gzipped else open
    number, length = 1, 0
    try:
        with opener(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                start = 0
                while True:
                    end = block.find(b"\n", start)
                    if end < 0:
                        length += len(block) - start
                        if length >= limit:
                            return f"row {number}"
                        break
                    if length + end - start >= limit:
                        return f"row {number}"
                    number, length, start = number + 1, 0, end + 1
    except (OSError, EOFError, zlib.error):
        return None
    return None


def _sniff(path: Path, where: str, gzipped: bool) -> bytes:
    try:
        if gzipped:
            with gzip.open(path, "rb") as handle:
                return handle.read(_SNIFF_BYTES)
        with open(path, "rb") as handle:
            return handle.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error):
        raise EvalkitError(where, "is not a valid gzip file", "compress the CSV again with gzip, or save it uncompressed") from None


def _line_of(head: bytes, offset: int) -> str:
    newlines = head.count(b"\n", 0, offset)
    return f"row {newlines + 1}"


def _check_delimiter(names: list[str], wanted: list[str], head: bytes, sep: str, where: str) -> None:
    """A header that is one column holding the wanted names: the file uses another delimiter."""
    if len(names) != 1 or len(wanted) < 2:
        return
    first_line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    for other, word in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars"), (",", "commas")):
        if other != sep and other in first_line:
            expected = "tabs" if sep == "\t" else "commas"
            raise EvalkitError(where, f"the columns are separated by {word}, not {expected}",
                               f"save the file separated by {expected} (or name it .tsv for tabs)", key="row 1")


def _check_utf8(path: Path, gzipped: bool, where: str) -> None:
    """Refuse text that is not UTF-8, naming the row (before any parser sees it)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    opener = gzip.open if gzipped else open
    rows_before = 0
    line_length = 0  # bytes since the last line break: a line longer than a block is refused here
    try:
        with opener(path, "rb") as handle:
            while True:
                block = handle.read(_BLOCK_BYTES)
                final = not block
                last_break = block.rfind(b"\n")
                line_length = len(block) - last_break - 1 if last_break >= 0 else line_length + len(block)
                if line_length >= _BLOCK_BYTES:
                    raise EvalkitError(where, f"a line is longer than {_BLOCK_BYTES >> 20} MB",
                                       "check the export: no episode record is that long",
                                       key=f"row {rows_before + block.count(NEWLINE) + 1}")
                held = len(decoder.getstate()[0])  # bytes of a character split by the last block
                try:
                    decoder.decode(block, final=final)
                except UnicodeDecodeError as exc:
                    offset = max(0, exc.start - held)  # the offset counts the held bytes first
                    row = rows_before + block.count(b"\n", 0, offset) + 1
                    raise EvalkitError(where, "is not UTF-8 text", "save the file as UTF-8 CSV", key=f"row {row}") from None
                if final:
                    return
                rows_before += block.count(b"\n")
    except (OSError, EOFError, zlib.error):
        if gzipped:
            raise EvalkitError(where, "is not a valid gzip file (it may be truncated)",
                               "compress the CSV again with gzip, or save it uncompressed") from None
        raise


def check_field_lengths(frame: pd.DataFrame, where: str, kind: str) -> None:
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_numeric_dtype(values) \
                or pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        if _longest_text(values) <= MAX_FIELD_CHARS:  # the usual case, from Arrow's lengths alone
            continue
        lengths = values.astype("string").str.len()
        bad = first_bad(lengths > MAX_FIELD_CHARS)
        if bad is not None:
            raise EvalkitError(where, f"a value in column '{column}' is {int(lengths.iloc[bad]):,} characters long",
                               f"check the export: no field of an episode record is longer than {MAX_FIELD_CHARS:,} characters",
                               key=row_label(bad, kind))


def _longest_text(values: pd.Series) -> float:
    """The most characters in a text column held by Arrow (pandas' ``str``), or infinity when
    the column is not Arrow text (the caller then measures every value itself)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrow = getattr(values.array, "__arrow_array__", None)
    if arrow is None or not isinstance(values.dtype, pd.StringDtype):
        return float("inf")
    try:
        longest = pc.max(pc.utf8_length(arrow())).as_py()
    except (pa.ArrowException, TypeError):
        return float("inf")
    return 0 if longest is None else longest


# ----------------------------------------------------------------------------- Parquet
def _read_parquet(path: Path, where: str, wanted: list[str], key: str, categorical: list[str],
                  dictionary: Sequence[str] = ()) -> pd.DataFrame:
    """Read the wanted columns of a Parquet file.

    Text columns read as Categoricals (areas, grades, person ids) are decoded straight
    into Arrow dictionaries (``read_dictionary``): the millions of strings are never
    materialised, only each row group's distinct values and an int32 index per row. The
    table is handed to pandas column by column (``self_destruct``), so the Arrow copy of a
    column is freed as soon as its pandas copy exists. Columns in ``dictionary`` stay Arrow
    dictionaries (:func:`read_table`).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        check_columns(schema.names, wanted, where, key)
        text_types = (pa.types.is_string, pa.types.is_large_string)
        as_dictionary = [c for c in dict.fromkeys([*categorical, *dictionary])
                         if any(is_text(schema.field(c).type) for is_text in text_types)]
        if as_dictionary:
            parquet = pq.ParquetFile(path, read_dictionary=as_dictionary)
        groups = []
        with stage(f"read {path.name} row groups", total=parquet.num_row_groups) as advance:
            for group in range(parquet.num_row_groups):
                groups.append(parquet.read_row_group(group, columns=wanted))
                advance(1)
        table = pa.concat_tables(groups) if groups else parquet.schema_arrow.empty_table().select(wanted)
        del groups
        arrays, kept = {}, {}
        for name in wanted:
            column = table.column(name)
            text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            if name in as_dictionary and name in dictionary:
                offset = 0
                for chunk in column.chunks:  # each row group's own dictionary, in row order
                    _check_dictionary_lengths(chunk, where, name, offset)
                    offset += len(chunk)
                kept[name] = column
                continue
            if name in as_dictionary and len(column):
                column = column.combine_chunks()  # one dictionary for the whole column (chunks unified)
                _check_dictionary_lengths(column, where, name)
            elif text and len(column):
                longest = pc.max(pc.utf8_length(column)).as_py()
                if longest is not None and longest > MAX_FIELD_CHARS:
                    lengths = pc.utf8_length(column).to_numpy(zero_copy_only=False)
                    bad = int(np.flatnonzero(np.nan_to_num(lengths.astype(float)) > MAX_FIELD_CHARS)[0])
                    raise EvalkitError(where, f"a value in column '{name}' is {int(lengths[bad]):,} characters long",
                                       f"check the export: no field of an episode record is longer than {MAX_FIELD_CHARS:,} characters",
                                       key=row_label(bad, "parquet"))
                if name in categorical:
                    column = column.combine_chunks().dictionary_encode()
            arrays[name] = column
        table = pa.table(arrays) if arrays else None
        del arrays, column
        # no table: every wanted column stayed an Arrow dictionary, so nothing is converted
        converted = table.to_pandas(split_blocks=True, self_destruct=True) if table is not None else pd.DataFrame()
        del table
        frame = pd.DataFrame({name: pd.Series(pd.arrays.ArrowExtensionArray(kept[name])) if name in kept
                              else converted[name] for name in wanted}, copy=False)
        del converted, kept
        release_unused_memory()
    except EvalkitError:
        raise
    except Exception as exc:  # pyarrow raises its own types for corrupt files
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise EvalkitError(where, f"cannot be read as Parquet ({first})", "check that it is a valid Parquet file") from None
    return frame


def _check_dictionary_lengths(column, where: str, name: str, offset: int = 0) -> None:
    """The field-length limit on a dictionary-encoded text column, checked on its distinct values
    (``offset``: the row of the array's first value, for a chunk of a longer column)."""
    import pyarrow.compute as pc

    lengths = pc.utf8_length(column.dictionary).to_numpy(zero_copy_only=False)
    too_long = np.nan_to_num(lengths.astype(float)) > MAX_FIELD_CHARS
    if not too_long.any():
        return
    codes = pc.fill_null(column.indices, -1).to_numpy(zero_copy_only=False)
    bad = int(np.flatnonzero(np.append(too_long, False)[codes])[0])
    raise EvalkitError(where, f"a value in column '{name}' is {int(lengths[codes[bad]]):,} characters long",
                       f"check the export: no field of an episode record is longer than {MAX_FIELD_CHARS:,} characters",
                       key=row_label(offset + bad, "parquet"))


def check_columns(present: list[str], wanted: list[str], where: str, key: str) -> None:
    for column in wanted:
        if column not in present:
            raise EvalkitError(
                where,
                f"column '{column}' not found{did_you_mean(column, present)}",
                f"correct the column name in the design ({key.rsplit('.', 1)[0]}.columns) or the file",
            )


def first_bad(mask) -> int | None:
    """0-based position of the first True in a boolean Series or array, or None."""
    values = mask.to_numpy() if hasattr(mask, "to_numpy") else np.asarray(mask)
    if values.dtype != bool:
        values = np.asarray(pd.array(values, dtype="boolean").fillna(False), dtype=bool)
    positions = values.nonzero()[0]
    return int(positions[0]) if len(positions) else None
