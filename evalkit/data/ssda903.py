"""SSDA903 returns: the looked-after children data every English local authority holds.

``data.layout: ssda903`` reads a folder of returns and hands back missing episodes in the
frame :func:`evalkit.data.episodes.validate_episodes` produces, so every method works on
them unchanged (docs/data-ssda903.md).

Where the returns are
---------------------
``data.source`` is a folder holding

* one folder per local authority, named by its ONS code (``E08000036``) or its DfE
  three-digit code (``384``), each holding one folder per collection year (``2022`` is
  the year 1 April 2021 - 31 March 2022) with that year's CSV tables; and/or
* combined tables (one CSV per kind, every return stacked) with ``LA`` and ``YEAR``
  columns, the shape the LIIA tools write.

A DfE three-digit code (in a folder's name or the LA column) is read as the authority's
ONS code from the shipped lookup (:func:`evalkit.data.geography.ons_code`: 384 is
E08000036, 835 the Dorset county abolished in 2019, E10000009), so the units, results and
report are the same whichever naming the returns use; a three-digit code the DfE list does
not hold, or an ONS-style code the shipped lookup does not hold, is an error naming the
folder (or the file and row). A recoded authority (one the ONS gave a new code while the
DfE kept its three-digit code: Barnsley E08000016 to E08000038 in 2025,
:func:`evalkit.data.geography.recoding_chain`) is one authority whichever of its codes name
its returns: one unit, named by the code most of its returns use (the newer on a tie), with
one person key and one merge of episodes open at 31 March. Two folders holding one
authority's return for the same year (``208`` and ``E09000022``, or ``E10000023`` and
``E06000065``, both North Yorkshire's DfE code 815) are refused, as any return held twice.

A collection-year folder may hold the year's XML return (the DfE's EXPSSDA903 file)
instead of its CSV tables: :mod:`evalkit.data.ssda903_xml` reads it into the same three
tables, which then go through exactly the code below.

A table is recognised by its columns, as the DfE validator does: Header (CHILD, SEX, DOB,
ETHNIC, UPN, MOTHER, MC_DOB), Episodes (CHILD, DECOM, RNE, LS, CIN, PLACE,
PLACE_PROVIDER, DEC, REC, REASON_PLACE_CHANGE, HOME_POST, PL_POST, URN) and Missing
(CHILD, DOB, MISSING, MIS_START, MIS_END). Other tables of the return (OC2, OC3, AD1,
...) are ignored. Only the columns evalkit uses are read, through pyarrow, as text; dates
are parsed as dd/mm/YYYY and nothing else (a date in another form is refused, naming the
file, row and column: a day-first date is never guessed).

What is derived
---------------
* Missing episodes: rows with MISSING = M (``data.include_away: true`` adds A, away
  from placement without authorisation); unit = the local authority; reported at
  MIS_START, found at MIS_END. A blank MIS_END is still missing: censored at the end of
  that collection year (31 March), or at ``data.extracted_at`` when that is earlier (an
  in-year extract). An episode in two returns (open at 31 March, closed in the next) is
  one episode: the later return's row wins.
* Day resolution: the return holds dates, not times, so hours to found = 24 x the days
  from MIS_START to MIS_END (a same-day return is 0 hours, one found the next day 24).
  A check named ``duration_resolution`` says so in results.json and the report.
* Exposure: looked-after child-days in each period from the Episodes tables (DECOM to
  DEC, DEC not counted; an open episode to the end of its collection year, 31 March
  counted), over the collection years each authority's returns cover.
* DfE validation rules on the Missing table run as data checks (:data:`RULES`): rows
  that break one are left out, counted by rule code, and returned as ``checks``; rows
  whose MISSING code is blank or neither M nor A are counted in a ``missing_code`` check.
* CHILD is pseudonymised (:mod:`evalkit.data.pseudonymise`) as soon as it is read; a
  child is the pair (authority, pseudonym), since CHILD ids are each authority's own.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import EvalkitError
from .geography import authority, authority_name, chain_span, ons_code, recoded_names, same_authority, unknown_code_error

#: Every column of each table the DfE specification lists (recognition needs them all).
TABLE_COLUMNS = {
    "header": ("CHILD", "SEX", "DOB", "ETHNIC", "UPN", "MOTHER", "MC_DOB"),
    "episodes": ("CHILD", "DECOM", "RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "DEC", "REC",
                 "REASON_PLACE_CHANGE", "HOME_POST", "PL_POST", "URN"),
    "missing": ("CHILD", "DOB", "MISSING", "MIS_START", "MIS_END"),
}
#: The columns evalkit reads from each table (the rest are never loaded).
READ_COLUMNS = {
    "header": ("CHILD", "SEX", "DOB"),
    "episodes": ("CHILD", "DECOM", "DEC"),
    "missing": ("CHILD", "DOB", "MISSING", "MIS_START", "MIS_END"),
}
DATE_COLUMNS = {"DOB", "DECOM", "DEC", "MIS_START", "MIS_END"}
DATE_FORMAT = "%d/%m/%Y"
_DATE_TEXT = r"^\d{1,2}/\d{1,2}/\d{4}$"

#: DfE validation rules run on the Missing table: code -> the DfE's message. The exact
#: test evalkit applies is in :func:`missing_rule_failures` and docs/data-ssda903.md.
RULES = {
    "564": "Child was missing or away from placement without authorisation and the date started is blank.",
    "567": "The date that the missing episode or episode that the child was away from placement without "
           "authorisation ended is before the date that it started.",
    "570": "The date that the child started to be missing or away from placement without authorisation is "
           "after the end of the collection year.",
    "574": "A new missing/away from placement without authorisation period cannot start when the previous "
           "missing/away from placement without authorisation period is still open. Missing/away from "
           "placement without authorisation periods should also not overlap.",
    "577": "Child ceased to be looked after but there is a missing/away from placement without authorisation "
           "period without an end date.",
    "581": "Child is missing but has not yet started to be looked after.",
    "586": "Dates of missing periods are before child's date of birth.",
}
#: A rule leaving out more than this share of the Missing rows is a warning, not a note.
MATERIAL_SHARE = 0.01
#: Rules that need the return's Episodes table.
EPISODE_RULES = ("577", "581")

_LA_FOLDER = re.compile(r"^(?:[EWSN]\d{8}|\d{3})$")
_YEAR_FOLDER = re.compile(r"^\d{4}$")
_CSV = (".csv", ".csv.gz")
DAY_NS = np.int64(86_400_000_000_000)


@dataclass
class TableFile:
    """One CSV table: a single return's (``la``, ``year`` set) or a combined one (None)."""

    path: Path
    kind: str
    la: str | None = None
    year: int | None = None
    label: str = ""  # as messages show it: data.source joined with the path inside it

    def __post_init__(self):
        self.label = self.label or str(self.path)


@dataclass
class Returns:
    """The tables of every return, stacked: one frame per kind with LA, YEAR, file, row."""

    header: pd.DataFrame | None
    episodes: pd.DataFrame | None
    missing: pd.DataFrame
    files: list[Path] = field(default_factory=list)
    returns: pd.DataFrame | None = None  # LA, YEAR of every return held (any table)
    #: each code of a recoded authority in the returns -> the one code its unit is named by
    names: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------- finding tables
def _header_columns(path: Path) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            first = handle.readline(1 << 16)
    except (OSError, EOFError, zlib.error) as exc:
        raise EvalkitError(str(path), f"cannot be read ({exc.__class__.__name__})", "check the file is a CSV table") from None
    text = first.decode("utf-8-sig", errors="replace")
    try:
        names = next(csv.reader(io.StringIO(text)))
    except (StopIteration, csv.Error):
        return []
    return [name.strip().upper() for name in names]


def table_kind(path: Path) -> tuple[str | None, list[str]]:
    """The table a CSV holds, recognised by its columns (None for another table)."""
    columns = _header_columns(path)
    present = set(columns)
    for kind, expected in TABLE_COLUMNS.items():
        if present.issuperset(expected):
            return kind, columns
    # a table with its kind's distinctive columns but not all of them is a broken export
    distinctive = {"missing": ("MISSING", "MIS_START"), "episodes": ("DECOM", "RNE", "LS"), "header": ("SEX", "ETHNIC", "UPN")}
    for kind, marks in distinctive.items():
        if present.issuperset(marks):
            lacking = [c for c in TABLE_COLUMNS[kind] if c not in present]
            raise EvalkitError(str(path), f"looks like the {kind.title()} table but has no column {', '.join(lacking)}",
                               f"export the whole {kind.title()} table ({', '.join(TABLE_COLUMNS[kind])})", key="row 1")
    return None, columns


def find_tables(root: Path, where: str) -> list[TableFile]:
    """Every Header, Episodes and Missing table under ``root``, in a fixed order.

    A year folder's XML return is one entry of kind ``xml`` (read_returns reads it into
    its three tables); an XML file whose root is not an SSDA903 return is ignored, as a
    CSV table that is none of the three is.
    """
    if not root.exists():
        raise EvalkitError(where, "the folder of SSDA903 returns does not exist", "check data.source (relative to the design file)")
    if not root.is_dir():
        raise EvalkitError(where, "is a file, but layout ssda903 reads a folder of returns",
                           "name the folder holding one folder per local authority (or the combined tables)")
    from .ssda903_xml import is_ssda903_xml, is_xml

    tables: list[TableFile] = []
    # in the order of the authorities' ONS codes (a folder named 384 where one named E08000036
    # would be), so the tables, and the data's SHA-256 over their bytes, do not depend on the naming;
    # the folders of one recoded authority (E08000016 and E08000038, Barnsley) are read as one, year by year
    orders = {entry: _authority_order(entry) for entry in root.iterdir()}
    entries = sorted(orders, key=orders.__getitem__)
    done: set[str] = set()
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_file() and is_xml(entry) and is_ssda903_xml(entry, _label(where, root, entry)):
            raise EvalkitError(_label(where, root, entry), "an XML return is one authority's year, but this one is "
                               "not in an <authority>/<year>/ folder", "move it to <authority>/<year>/ (E08000036/2022/)")
        if entry.is_file() and entry.name.lower().endswith(_CSV):
            kind, columns = table_kind(entry)
            if kind is None:
                continue
            if "LA" not in columns or "YEAR" not in columns:
                raise EvalkitError(str(entry), f"a combined {kind.title()} table needs LA and YEAR columns",
                                   "add them, or put the table in <authority>/<year>/ folders", key="row 1")
            tables.append(TableFile(entry, kind, label=_label(where, root, entry)))
        elif entry.is_dir():
            if not _LA_FOLDER.match(entry.name):
                raise EvalkitError(str(entry), "is not named by a local authority code",
                                   "name each authority's folder by its ONS code (E08000036) or DfE code (384)")
            order = orders[entry][0]
            if order in done:
                continue
            done.add(order)
            folders = [e for e in entries if orders[e][0] == order and e.is_dir() and not e.name.startswith(".")
                       and _LA_FOLDER.match(e.name)]
            codes = {folder: _folder_code(folder, where, root) for folder in folders}
            years = sorted(((y, folder) for folder in folders for y in folder.iterdir()),
                           key=lambda pair: (pair[0].name, pair[1].name))
            for year_dir, folder in years:
                la = codes[folder]
                if year_dir.name.startswith("."):
                    continue
                if not year_dir.is_dir() or not _YEAR_FOLDER.match(year_dir.name):
                    raise EvalkitError(str(year_dir), "is not a collection-year folder",
                                       "hold each year's tables in a folder named by the year it ends (2022 = 2021-22)")
                for path in sorted(year_dir.iterdir(), key=lambda p: p.name):
                    label = _label(where, root, path)
                    if path.is_file() and is_xml(path) and is_ssda903_xml(path, label):
                        # the XML return: read into all three tables by read_returns
                        tables.append(TableFile(path, "xml", la, int(year_dir.name), label))
                    elif path.is_file() and path.name.lower().endswith(_CSV):
                        kind, _ = table_kind(path)
                        if kind is not None:
                            tables.append(TableFile(path, kind, la, int(year_dir.name), _label(where, root, path)))
    if not any(t.kind in ("missing", "xml") for t in tables):
        raise EvalkitError(where, "holds no Missing table (columns CHILD, DOB, MISSING, MIS_START, MIS_END) "
                           "and no XML return", "put each return's CSV tables or its XML file in <authority>/<year>/ "
                           "folders, or combined tables with LA and YEAR")
    return tables


def _authority_order(path: Path) -> tuple[str, str]:
    """Sort key of an entry of the returns folder: an authority folder by its ONS code (a
    recoded authority's by its first ONS code, whichever of its codes names the folder)."""
    from .geography import DFE_CODE, dfe_codes, recoding_chain

    name = path.name
    if DFE_CODE.match(name) and name in dfe_codes() and path.is_dir():
        return recoding_chain(dfe_codes()[name])[0], name
    if path.is_dir() and _LA_FOLDER.match(name):
        return recoding_chain(name)[0], name
    return name, name


def _folder_code(folder: Path, where: str, root: Path) -> str:
    """The ONS code an authority folder names: a DfE code looked up; a code the lookup does not
    hold is an error naming the folder (it would otherwise be an extra authority, silently)."""
    code = ons_code(folder.name, str(folder))
    if authority(code) is None:
        raise unknown_code_error(code, _label(where, root, folder))
    return code


def _label(where: str, root: Path, path: Path) -> str:
    """A table's name as messages and results show it: independent of where the run is."""
    return (Path(where) / path.relative_to(root)).as_posix()


# ----------------------------------------------------------------------------- reading
def parse_dates(values, path, column: str, rows: np.ndarray, place: str = "row", what: str | None = None) -> np.ndarray:
    """dd/mm/YYYY text (Arrow) -> datetime64[D]; blank -> NaT; anything else refused.

    The format is fixed by the DfE specification, so a value that is not a real
    day/month/year date (``2022-03-31``, ``31/3/22``, ``31/02/2022``) is an error naming
    the file, the row and the column, never a guess. ``place`` and ``what`` name the
    row and the field in that message ("line", "element <AMISSING>/<MIS_START>" for the
    XML return).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(values)
    empty = pc.fill_null(pc.equal(text, ""), True)
    shaped = pc.fill_null(pc.match_substring_regex(text, _DATE_TEXT), False)
    parsed = pc.strptime(pc.if_else(shaped, text, pa.scalar(None, pa.string())), format=DATE_FORMAT, unit="s",
                         error_is_null=True)
    # strptime rolls 31/02 over into March: the day, month and year read must be the ones written
    parts = pc.extract_regex(pc.if_else(shaped, text, pa.scalar(None, pa.string())),
                             r"^(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{4})$")
    same = pc.and_(pc.and_(pc.equal(pc.cast(pc.struct_field(parts, "d"), pa.int64()), pc.day(parsed)),
                           pc.equal(pc.cast(pc.struct_field(parts, "m"), pa.int64()), pc.month(parsed))),
                   pc.equal(pc.cast(pc.struct_field(parts, "y"), pa.int64()), pc.year(parsed)))
    parsed = pc.if_else(pc.fill_null(same, False), parsed, pa.scalar(None, parsed.type))
    bad = pc.and_(pc.invert(empty), pc.is_null(parsed)).to_numpy(zero_copy_only=False)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        shown = str(text[i].as_py())[:40]
        raise EvalkitError(str(path), f"'{shown}' in {what or f'column {column!r}'} is not a date written dd/mm/YYYY",
                           "write dates as the DfE return does, day/month/year (31/03/2022)", key=f"{place} {rows[i]}")
    return parsed.to_numpy(zero_copy_only=False).astype("datetime64[D]")


def read_table(table: TableFile) -> pd.DataFrame:
    """Read one table's needed columns (typed, through pyarrow) with its file and row."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv as pacsv

    wanted = list(READ_COLUMNS[table.kind])
    combined = table.la is None
    if combined:
        wanted += ["LA", "YEAR"]
    # column names are matched case-insensitively: read by the file's own spelling
    by_upper = {name.strip().upper(): name for name in _raw_header(table.path)}
    include = [by_upper[c] for c in wanted]
    try:
        data = pacsv.read_csv(
            table.path,
            read_options=pacsv.ReadOptions(use_threads=False, encoding="utf8"),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(include_columns=include,
                                                 column_types={c: pa.string() for c in include},
                                                 strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as exc:
        detail = " ".join(str(exc).split())[:160]
        raise EvalkitError(table.label, f"is not a readable CSV table ({detail})",
                           "save the table as UTF-8 CSV with one header row") from None
    n = data.num_rows
    rows = np.arange(2, n + 2)
    frame = pd.DataFrame({"file": pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [table.label]),
                          "row": rows})
    for name in wanted:
        column = data.column(by_upper[name])
        if name in DATE_COLUMNS:
            frame[name] = parse_dates(column, table.label, name, rows)
        elif name == "YEAR":
            text = pc.utf8_trim_whitespace(column).to_numpy(zero_copy_only=False).astype(object)
            ok = np.array([bool(re.fullmatch(r"\d{4}", str(v))) for v in text])
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                raise EvalkitError(table.label, f"'{str(text[i])[:20]}' in column 'YEAR' is not a collection year",
                                   "write the year the collection ends (2022 for 2021-22)", key=f"row {rows[i]}")
            frame["YEAR"] = text.astype(np.int64)
        else:
            text = pc.utf8_trim_whitespace(column)
            frame[name] = pd.array(pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
                                   .to_numpy(zero_copy_only=False), dtype="object")
    if combined:
        la = frame["LA"]
        bad = la.isna() | ~la.fillna("").str.fullmatch(_LA_FOLDER.pattern.strip("^$"))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise EvalkitError(table.label, f"'{str(la.iloc[i])[:20]}' in column 'LA' is not a local authority code",
                               "write the ONS code (E08000036) or the DfE code (384)", key=f"row {rows[i]}")
        # DfE three-digit codes are read as ONS codes (each distinct value once)
        values = la.to_numpy(dtype=object)
        distinct, first, inverse = np.unique(values.astype(str), return_index=True, return_inverse=True)
        mapped = [ons_code(v, table.label, key=f"row {rows[int(first[k])]}") for k, v in enumerate(distinct)]
        for k, code in enumerate(mapped):
            if authority(code) is None:
                raise unknown_code_error(code, table.label, key=f"row {rows[int(first[k])]}")
        frame["LA"] = np.asarray(mapped, dtype=object)[inverse]
    else:
        frame["LA"] = table.la
        frame["YEAR"] = table.year
    if frame["CHILD"].isna().any():
        i = int(np.flatnonzero(frame["CHILD"].isna().to_numpy())[0])
        raise EvalkitError(table.label, "column 'CHILD' is empty", "every row needs the child's identifier",
                           key=f"row {rows[i]}")
    return frame


def _raw_header(path: Path) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        first = handle.readline(1 << 16)
    return next(csv.reader(io.StringIO(first.decode("utf-8-sig", errors="replace"))))


def read_returns(root: Path, where: str) -> Returns:
    """Read every return under ``root`` into one frame per kind (CHILD still plain).

    An XML return is read into its three tables (:mod:`evalkit.data.ssda903_xml`) and
    from then on is handled exactly as the CSV tables are.
    """
    from .ssda903_xml import read_xml_return

    found = find_tables(root, where)
    frames: dict[str, list[pd.DataFrame]] = {"header": [], "episodes": [], "missing": []}
    tables, read = [], []
    for table in found:
        if table.kind == "xml":
            # find_tables reads an XML return only from its authority's folder of one year
            assert table.la is not None and table.year is not None
            for kind, frame in read_xml_return(table.path, table.label, table.la, table.year).items():
                tables.append(TableFile(table.path, kind, table.la, table.year, table.label))
                read.append(frame)
        else:
            tables.append(table)
            read.append(read_table(table))
    names = _recoded_names(tables, read)
    _check_coverage(tables, read, where, names)
    for table, frame in zip(tables, read):
        if names and frame["LA"].isin(list(names)).any():
            # one recoded authority is one unit: its returns, person key and episode merge share one code
            frame["LA"] = frame["LA"].map(lambda code: names.get(code, code))
        frames[table.kind].append(frame)

    def stack(kind):
        parts = frames[kind]
        if not parts:
            return None
        out = pd.concat(parts, ignore_index=True)
        out["file"] = out["file"].astype(str)
        return out

    missing = stack("missing")
    header, episodes = stack("header"), stack("episodes")
    held = pd.concat([f[["LA", "YEAR"]] for f in (missing, header, episodes) if f is not None]).drop_duplicates()
    return Returns(header=header, episodes=episodes, missing=missing, files=[t.path for t in found],
                   returns=held.sort_values(["LA", "YEAR"]).reset_index(drop=True), names=names)


def _recoded_names(tables: list[TableFile], frames: list[pd.DataFrame]) -> dict[str, str]:
    """The one code naming each recoded authority in the returns (geography.recoded_names): the
    code under which most of its returns are held, the newest on a tie."""
    held: set[tuple[str, int]] = set()
    for table, frame in zip(tables, frames):
        if table.la is not None:
            assert table.year is not None
            held.add((table.la, table.year))
        else:
            held.update(zip(frame["LA"].astype(str), frame["YEAR"].astype(int)))
    counts: dict[str, int] = {}
    for la, _ in held:
        counts[la] = counts.get(la, 0) + 1
    return recoded_names(counts)


def _check_coverage(tables: list[TableFile], frames: list[pd.DataFrame], where: str,
                    names: dict[str, str] | None = None) -> None:
    """Each return held once, and no year missing in the middle of an authority's returns.

    A return held twice (an authority-year in its folder and in a combined table, or in two
    combined tables) would count every episode twice and break rule 574 on each; a year
    missing between an authority's first and last return, or a year's folder without its
    Missing (or, when the other years have one, Episodes) table, would count as no missing
    episodes (or no children looked after) instead of as unknown. Both are refused.
    (A combined table has a row only for the authority-years with episodes, so there only
    a year with no table of any kind is a gap.)
    """
    source: dict[tuple, str] = {}
    identity: dict[tuple, tuple[str, str]] = {}
    folder: dict[tuple, set] = {}
    for table, frame in zip(tables, frames):
        if table.la is not None:
            assert table.year is not None  # a single return's table has both its authority and year
            pairs = {(table.la, table.year)}
            folder.setdefault((table.la, table.year), set()).add(table.kind)
        else:
            pairs = set(zip(frame["LA"].astype(str), frame["YEAR"].astype(int)))
        for la, year in sorted(pairs):
            key = (table.kind, str(la), int(year))
            if key in source and source[key] != table.label:
                raise EvalkitError(table.label, f"holds the {table.kind.title()} table of {la} for {year}, which "
                                   f"{source[key]} holds too: its episodes would count twice",
                                   "keep one copy of each return (its folder or the combined table)")
            source[key] = table.label
            # one authority under two ONS codes (E10000023 and E06000065 are both DfE 815)
            same = (table.kind, same_authority(str(la)), int(year))
            if same in identity and identity[same][1] != str(la):
                other, other_la = identity[same]
                raise EvalkitError(table.label, f"holds the {table.kind.title()} table of {la} for {year}, and "
                                   f"{other} holds {other_la}'s: both are {authority_name(str(la))} "
                                   f"({same[1]}), so its episodes would count twice",
                                   "keep one copy of each return, under one code")
            identity.setdefault(same, (table.label, str(la)))
    # years are counted per authority: a recoded one's returns under each of its codes together
    names = names or {}
    years: dict[str, set] = {}
    for _, la, year in source:
        years.setdefault(names.get(la, la), set()).add(year)
    for la, year in folder:
        years.setdefault(names.get(la, la), set()).add(year)
    for la, held in sorted(years.items()):
        for year in range(min(held), max(held) + 1):
            if year not in held:
                raise EvalkitError(where, f"authority {la} has returns for {min(held)} to {max(held)} but none for "
                                   f"{year}: its missing episodes that year would count as none, not as unknown",
                                   f"add the {year} return ({la}/{year}/), or hold only the years on one side of it")
    for (la, year), kinds in sorted(folder.items()):
        same = names.get(la, la)
        needed = ["missing"] + (["episodes"] if any("episodes" in k for (a, _), k in folder.items()
                                                    if names.get(a, a) == same) else [])
        for kind in needed:
            if kind not in kinds and (kind, la, year) not in source:
                what = "missing episodes" if kind == "missing" else "looked-after children (the exposure)"
                raise EvalkitError(where, f"{la}/{year}/ has no {kind.title()} table: its {what} would count as none",
                                   f"add the {kind} table to {la}/{year}/, or remove that year's folder")


def _place(file: str) -> str:
    """What a row number counts in ``file``: CSV rows, or lines of an XML return."""
    return "line" if str(file).lower().endswith((".xml", ".xml.gz")) else "row"


# ----------------------------------------------------------------------------- DfE rules
def collection_end(year) -> np.ndarray:
    """31 March of each collection year (datetime64[D])."""
    years = np.asarray(year, dtype=np.int64)
    return (years - 1970).astype("datetime64[Y]").astype("datetime64[D]") + np.timedelta64(89, "D") \
        + ((years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0))).astype("timedelta64[D]")


def _periods_of_care(episodes: pd.DataFrame) -> pd.DataFrame:
    """Each return's periods of care: consecutive episodes of a child with no gap (LA, YEAR,
    CHILD, start, end; end NaT while the period is open)."""
    eps = episodes.dropna(subset=["DECOM"]).sort_values(["LA", "YEAR", "CHILD", "DECOM"], kind="stable")
    key = eps["LA"].astype(str) + "\x1f" + eps["YEAR"].astype(str) + "\x1f" + eps["CHILD"].astype(str)
    same_child = key.eq(key.shift())
    previous_end = eps["DEC"].shift()
    # a new period when the child changes or the episode starts after the previous one ended
    new = ~same_child | (previous_end.notna() & (eps["DECOM"] > previous_end))
    period = new.cumsum().to_numpy()
    first_row = np.r_[True, period[1:] != period[:-1]]
    last_row = np.r_[period[1:] != period[:-1], True]
    # a period of care ends with its last episode's DEC (blank: still looked after)
    return pd.DataFrame({"LA": eps["LA"].to_numpy()[first_row], "YEAR": eps["YEAR"].to_numpy()[first_row],
                         "CHILD": eps["CHILD"].to_numpy()[first_row], "start": eps["DECOM"].to_numpy()[first_row],
                         "end": eps["DEC"].to_numpy()[last_row]})


def missing_rule_failures(missing: pd.DataFrame, episodes: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """For each rule code, a boolean mask of the Missing rows that break it.

    Rules run per return (LA, YEAR), as the DfE validator runs them on one return:

    * 564: MISSING is M or A and MIS_START is blank.
    * 567: MIS_END is before MIS_START.
    * 570: MIS_START is after 31 March of the collection year.
    * 574: ordering a child's rows by MIS_START, a row starts while the previous one is
      open (blank MIS_END) or before the previous one ended.
    * 577: the period of care in which the row started has ended (DEC recorded), and the
      row has no MIS_END or ends after that period of care did.
    * 581: MIS_START is inside none of the child's episodes in the return (DECOM <=
      MIS_START <= DEC, or DEC blank); a child with no episode in the return breaks it.
    * 586: MIS_START is on or before the date of birth (the Missing table's DOB).

    577 and 581 need the return's Episodes table; a return without one is not tested
    for them (its rows pass). A row may break several rules.
    """
    n = len(missing)
    start, end, dob = missing["MIS_START"], missing["MIS_END"], missing["DOB"]
    code = missing["MISSING"].fillna("").str.upper()
    failures = {
        "564": (code.isin(["M", "A"]) & start.isna()).to_numpy(),
        "567": (start.notna() & end.notna() & (end < start)).to_numpy(),
        "570": (start.notna() & (start > pd.Series(collection_end(missing["YEAR"]), index=missing.index))).to_numpy(),
        "586": (start.notna() & dob.notna() & (start <= dob)).to_numpy(),
    }
    # 574: the previous row of the same child in the same return, by start date
    order = missing.assign(_i=np.arange(n)).dropna(subset=["MIS_START"]).sort_values(
        ["LA", "YEAR", "CHILD", "MIS_START", "_i"], kind="stable")
    key = order["LA"].astype(str) + "\x1f" + order["YEAR"].astype(str) + "\x1f" + order["CHILD"].astype(str)
    same = key.eq(key.shift()).to_numpy()
    previous_end = order["MIS_END"].shift().to_numpy()
    overlap = same & (np.isnat(previous_end) | (order["MIS_START"].to_numpy() < previous_end))
    failures["574"] = np.zeros(n, dtype=bool)
    failures["574"][order["_i"].to_numpy()[overlap]] = True
    failures["577"] = np.zeros(n, dtype=bool)
    failures["581"] = np.zeros(n, dtype=bool)
    if episodes is not None and len(episodes):
        with_episodes = episodes[["LA", "YEAR"]].drop_duplicates()
        rows = missing.assign(_i=np.arange(n)).dropna(subset=["MIS_START"])
        rows = rows.merge(with_episodes, on=["LA", "YEAR"], how="inner")  # returns with an Episodes table
        eps = episodes[["LA", "YEAR", "CHILD", "DECOM", "DEC"]]
        pairs = rows[["_i", "LA", "YEAR", "CHILD", "MIS_START"]].merge(eps, on=["LA", "YEAR", "CHILD"], how="left")
        inside = (pairs["MIS_START"] >= pairs["DECOM"]) & (pairs["DEC"].isna() | (pairs["MIS_START"] <= pairs["DEC"]))
        inside &= pairs["DECOM"].notna()
        in_care = inside.groupby(pairs["_i"]).any()
        outside = in_care.index[~in_care.to_numpy()].to_numpy()
        failures["581"][outside] = True
        pocs = _periods_of_care(episodes)
        spans = rows[["_i", "LA", "YEAR", "CHILD", "MIS_START", "MIS_END"]].merge(pocs, on=["LA", "YEAR", "CHILD"])
        spans = spans[(spans["MIS_START"] >= spans["start"]) & (spans["end"].isna() | (spans["MIS_START"] <= spans["end"]))]
        spans = spans.drop_duplicates("_i")  # periods of care do not overlap: one holds the start
        ended = spans["end"].notna() & (spans["MIS_END"].isna() | (spans["MIS_END"] > spans["end"]))
        failures["577"][spans.loc[ended, "_i"].to_numpy()] = True
    return failures


# ----------------------------------------------------------------------------- missing episodes
@dataclass
class MissingEpisodes:
    """Missing episodes from the returns, before pseudonymisation, with what the rules left out."""

    frame: pd.DataFrame  # LA, CHILD, MIS_START, MIS_END, DOB, YEAR, censor_at, censored
    rule_counts: dict
    rule_examples: dict
    rows_read: int
    rules_not_run: list
    #: rows no rule left out whose MISSING code is blank or neither M nor A (not episodes), and the first
    code_left_out: int = 0
    code_example: str | None = None


def missing_episodes(returns: Returns, include_away: bool = False, extracted_at=None) -> MissingEpisodes:
    """Apply the DfE rules, keep M (and A) rows, merge episodes reported in two returns."""
    missing = returns.missing
    failures = missing_rule_failures(missing, returns.episodes)
    broken = np.zeros(len(missing), dtype=bool)
    counts, examples = {}, {}
    for rule in sorted(RULES):
        mask = failures[rule]
        counts[rule] = int(mask.sum())
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            examples[rule] = f"{missing['file'].iloc[i]}:{_place(missing['file'].iloc[i])} {missing['row'].iloc[i]}"
        broken |= mask
    with_episodes = set() if returns.episodes is None else set(map(tuple, returns.episodes[["LA", "YEAR"]].drop_duplicates().to_numpy().tolist()))
    without = sorted({(la, int(y)) for la, y in missing[["LA", "YEAR"]].drop_duplicates().to_numpy().tolist()} - with_episodes)
    codes = ["M", "A"] if include_away else ["M"]
    code = missing["MISSING"].fillna("").str.upper()
    keep = ~broken & code.isin(codes).to_numpy()
    # a blank or unknown code (an XML return without <MISSING>) is no episode: counted, never dropped unseen
    invalid = ~broken & ~code.isin(["M", "A"]).to_numpy()
    code_example = None
    if invalid.any():
        i = int(np.flatnonzero(invalid)[0])
        code_example = f"{missing['file'].iloc[i]}:{_place(missing['file'].iloc[i])} {missing['row'].iloc[i]}"
    kept = missing.loc[keep, ["LA", "YEAR", "CHILD", "DOB", "MIS_START", "MIS_END", "file", "row"]]
    # one episode reported by two returns (open at 31 March, closed in the next): the later wins
    kept = kept.sort_values(["LA", "CHILD", "MIS_START", "YEAR"], kind="stable")
    kept = kept.drop_duplicates(["LA", "CHILD", "MIS_START"], keep="last")
    year_end = collection_end(kept["YEAR"]) + np.timedelta64(1, "D")  # the end of 31 March
    assert returns.returns is not None  # read_returns lists every return it read
    latest = returns.returns.groupby("LA")["YEAR"].max()
    censor_at = year_end.astype("datetime64[ns]")
    if extracted_at is not None:
        # an in-year extract: open episodes of an authority's latest return are known open only until then
        extract_end = np.datetime64(pd.Timestamp(extracted_at).normalize() + pd.Timedelta(days=1), "ns")
        last = (kept["YEAR"].to_numpy() == kept["LA"].map(latest).to_numpy())
        censor_at = np.where(last, np.minimum(censor_at, extract_end), censor_at)
    found = kept["MIS_END"].to_numpy().astype("datetime64[ns]")
    censored = np.isnat(found) | (found > censor_at)
    kept = kept.assign(censor_at=censor_at, censored=censored)
    kept = kept.sort_values(["LA", "MIS_START", "CHILD"], kind="stable").reset_index(drop=True)
    return MissingEpisodes(kept, counts, examples, len(missing), without, int(invalid.sum()), code_example)


def episode_frame(found: MissingEpisodes, header: pd.DataFrame | None, key: bytes, where: str,
                  extracted_at=None, units: np.ndarray | None = None) -> pd.DataFrame:
    """The frame validate_episodes produces: row, unit, reported_at, found_at, person, age,
    sex, hours_to_found, censored."""
    from .pseudonymise import pseudonymise

    kept = found.frame
    reported = kept["MIS_START"].to_numpy().astype("datetime64[ns]")
    if extracted_at is not None and len(kept):
        late = reported > np.datetime64(pd.Timestamp(extracted_at), "ns")
        if late.any():
            i = int(np.flatnonzero(late)[0])
            raise EvalkitError(kept["file"].iloc[i], f"missing episode started ({kept['MIS_START'].iloc[i]:%d/%m/%Y}) after the "
                               f"extract was taken ({pd.Timestamp(extracted_at):%Y-%m-%d})",
                               "correct data.extracted_at or the record",
                               key=f"{_place(kept['file'].iloc[i])} {kept['row'].iloc[i]}")
    found_at = kept["MIS_END"].to_numpy().astype("datetime64[ns]")
    censored = kept["censored"].to_numpy(dtype=bool)
    end = np.where(censored, kept["censor_at"].to_numpy().astype("datetime64[ns]"), found_at)
    hours = (end - reported).astype("timedelta64[ns]").astype(np.int64) / 3.6e12
    episodes = pd.DataFrame({"row": np.arange(len(kept))})
    episodes["unit"] = np.asarray(kept["LA"].to_numpy() if units is None else units, dtype=object)
    episodes["reported_at"] = reported
    episodes["found_at"] = np.where(censored, np.datetime64("NaT", "ns"), found_at)
    pseudonyms = pseudonymise(kept["CHILD"].reset_index(drop=True), key)
    # a child is (authority, CHILD): each authority numbers its own children
    person = kept["LA"].astype(str).to_numpy() + ":" + pseudonyms.astype(str).to_numpy()
    codes, categories = pd.factorize(person, sort=False)
    episodes["person"] = pd.Categorical.from_codes(codes, categories=categories)
    episodes["age"] = _age_at(kept["DOB"].to_numpy(), kept["MIS_START"].to_numpy())
    if header is not None and len(header):
        sex = header.sort_values(["LA", "CHILD", "YEAR"]).drop_duplicates(["LA", "CHILD"], keep="last")
        sex = sex.set_index(["LA", "CHILD"])["SEX"].map({"1": "M", "2": "F"})
        looked_up = pd.MultiIndex.from_arrays([kept["LA"], kept["CHILD"]])
        episodes["sex"] = pd.Categorical(sex.reindex(looked_up).to_numpy(), categories=["F", "M"])
    episodes["hours_to_found"] = hours
    episodes["censored"] = censored
    return episodes


def _age_at(dob: np.ndarray, when: np.ndarray) -> np.ndarray:
    """Whole years of age on ``when`` (NaN where DOB is blank or the age is outside 0-25)."""
    born = pd.DatetimeIndex(dob)
    at = pd.DatetimeIndex(when)
    years = at.year - born.year - ((at.month < born.month) | ((at.month == born.month) & (at.day < born.day)))
    age = np.asarray(years, dtype=float)
    age[np.asarray(born.isna()) | (age < 0) | (age > 25)] = np.nan
    return age


# ----------------------------------------------------------------------------- exposure
def looked_after_days(episodes: pd.DataFrame, returns: pd.DataFrame, frequency: str,
                      aggregate: dict | None = None) -> pd.DataFrame:
    """Looked-after child-days per unit and period from the Episodes tables.

    An episode counts from DECOM up to the day before DEC; one open at 31 March counts to
    the end of that collection year. An episode in several returns counts once (the
    latest return's row). Only days inside the collection years an authority's returns
    cover are counted. ``aggregate`` maps an authority to the unit it is counted in (a
    police force area). Returns columns unit, period, exposure (days, float).
    """
    from ..periods import FREQUENCIES

    eps = episodes.dropna(subset=["DECOM"]).sort_values(["LA", "CHILD", "DECOM", "YEAR"], kind="stable")
    eps = eps.drop_duplicates(["LA", "CHILD", "DECOM"], keep="last")
    open_end = collection_end(eps["YEAR"]) + np.timedelta64(1, "D")
    stop = np.where(eps["DEC"].isna().to_numpy(), open_end, eps["DEC"].to_numpy().astype("datetime64[D]"))
    span = returns.groupby("LA")["YEAR"].agg(["min", "max"])
    covered = pd.DataFrame({"first": collection_end(span["min"].to_numpy() - 1) + np.timedelta64(1, "D"),
                            "last": collection_end(span["max"].to_numpy()) + np.timedelta64(1, "D")}, index=span.index)
    start = np.maximum(eps["DECOM"].to_numpy().astype("datetime64[D]"),
                       covered["first"].reindex(eps["LA"]).to_numpy().astype("datetime64[D]"))
    stop = np.minimum(stop, covered["last"].reindex(eps["LA"]).to_numpy().astype("datetime64[D]"))
    origin = covered["first"].to_numpy().astype("datetime64[D]").min()
    n_days = int((covered["last"].to_numpy().astype("datetime64[D]").max() - origin).astype(np.int64))
    las = list(covered.index)
    la_position = pd.Index(las).get_indexer(eps["LA"])
    # a difference array per authority: +1 on the first day in care, -1 on the first day out
    change = np.zeros((len(las), n_days + 1), dtype=np.int64)
    valid = (stop > start) & (la_position >= 0)
    np.add.at(change, (la_position[valid], (start[valid] - origin).astype(np.int64)), 1)
    np.add.at(change, (la_position[valid], (stop[valid] - origin).astype(np.int64)), -1)
    in_care = np.cumsum(change, axis=1)[:, :n_days]
    days = pd.date_range(pd.Timestamp(origin), periods=n_days, freq="D")
    period = np.asarray(days.to_period(FREQUENCIES[frequency]))
    parts = []
    for j, la in enumerate(las):
        inside = (days >= pd.Timestamp(covered.loc[la, "first"])) & (days < pd.Timestamp(covered.loc[la, "last"]))
        totals = pd.Series(in_care[j, inside]).groupby(period[inside], sort=True).sum()
        unit = aggregate.get(la, la) if aggregate else la
        parts.append(pd.DataFrame({"unit": unit, "period": totals.index, "exposure": totals.to_numpy(dtype=float)}))
    table = pd.concat(parts, ignore_index=True)
    return table.groupby(["unit", "period"], sort=False, as_index=False)["exposure"].sum()


# ----------------------------------------------------------------------------- the loader
def default_window(returns: pd.DataFrame, frequency: str, extracted_at=None) -> tuple[pd.Period, pd.Period]:
    """The periods the returns cover: from 1 April of the first collection year to 31 March
    of the last (or the last whole period before an earlier ``extracted_at``)."""
    from ..periods import FREQUENCIES

    freq = FREQUENCIES[frequency]
    first_day = pd.Timestamp(collection_end(returns["YEAR"].min() - 1)[()] + np.timedelta64(1, "D"))
    end = pd.Timestamp(collection_end(returns["YEAR"].max())[()] + np.timedelta64(1, "D"))  # exclusive
    if extracted_at is not None:
        end = min(end, pd.Timestamp(extracted_at).normalize() + pd.Timedelta(days=1))
    first = first_day.to_period(freq)
    if first.start_time < first_day:
        first += 1  # a period the returns cover only in part would look like a fall
    last = (end - pd.Timedelta(days=1)).to_period(freq)
    if last.end_time >= end:
        last -= 1
    return first, last


def analysis_periods(design, returns: pd.DataFrame, extracted_at=None) -> pd.PeriodIndex:
    """``data.window``, which must lie inside the collection years the returns cover, or
    those years: a month with no missing episode in a covered year is a true zero."""
    from ..periods import FREQUENCIES

    first, last = default_window(returns, design.data.frequency, extracted_at)
    window = design.data.window
    if window is None:
        return pd.period_range(first, last, freq=FREQUENCIES[design.data.frequency])
    start = design.period(window.start, "data.window.start")
    end = design.period(window.end, "data.window.end")
    if start < first:
        raise EvalkitError(design.where, f"data.window starts in {start}, but the returns cover from {first}",
                           f"start the window in {first} or later (or add the earlier returns)", key="data.window.start")
    if end > last:
        raise EvalkitError(design.where, f"data.window ends in {end}, but the returns cover to {last}",
                           f"end the window in {last} or earlier (or add the later returns)", key="data.window.end")
    return pd.period_range(start, end, freq=FREQUENCIES[design.data.frequency])


def episodes_panel(design, episodes: pd.DataFrame, units: list, periods: pd.PeriodIndex, where: str):
    """Counts and duration outcomes per unit and period (zero-filled), as the episodes
    layout derives them; every authority with a return is a unit, episodes or not."""
    from ..periods import FREQUENCIES
    from .episodes import mark_repeats
    from .prepare import outcome_panel

    episodes["repeat"] = mark_repeats(episodes).to_numpy()  # before the window: earlier episodes count
    episodes["period"] = episodes["reported_at"].dt.to_period(FREQUENCIES[design.data.frequency])
    inside = (episodes["period"] >= periods[0]) & (episodes["period"] <= periods[-1])
    if not inside.any():
        raise EvalkitError(where, f"no missing episode starts inside the window {periods[0]}..{periods[-1]}",
                           "check data.window against the collection years of the returns")
    episodes = episodes.loc[inside].reset_index(drop=True)
    return outcome_panel(design, episodes, units, periods), units, episodes


def rule_checks(found: MissingEpisodes) -> list:
    """One data check per DfE rule (rows left out), and one for the day resolution."""
    from ..results import Check

    checks = []
    for rule in sorted(RULES):
        count = found.rule_counts[rule]
        where = ""  # the first breaking row (file and row) is in values only: the report shows no record
        not_run = rule in EPISODE_RULES and found.rules_not_run
        # a handful of broken rows is routine in a return: warn (which lowers certainty) only
        # when a rule leaves out a material share of the rows, or could not be run
        status = "warn" if count > MATERIAL_SHARE * max(found.rows_read, 1) or not_run else "pass"
        # "rows left out: N" reads right whatever the report's disclosure control makes of N
        detail = f"DfE rule {rule} ({RULES[rule]}): Missing-table rows breaking it, left out: {count} rows{where}"
        if not_run:
            detail += f"; not tested in {len(found.rules_not_run)} return(s) without an Episodes table"
        checks.append(Check(f"dfe_rule_{rule}", status, detail,
                            values={"rule": rule, "rows_left_out": count,
                                    "first_row": found.rule_examples.get(rule)}))
    if found.code_left_out:
        # only when there are such rows: the returns of every shipped example have none
        count = found.code_left_out
        checks.append(Check(
            "missing_code", "warn" if count > MATERIAL_SHARE * max(found.rows_read, 1) else "pass",
            f"Missing-table rows whose MISSING code is blank or neither M nor A (missing, away), so not counted "
            f"as episodes, left out: {count} rows", values={"rows_left_out": count, "first_row": found.code_example}))
    checks.append(Check(
        "duration_resolution", "pass",
        "SSDA903 returns hold dates, not times: time to found is measured in whole days "
        "(hours = 24 x days from MIS_START to MIS_END; a child found the same day counts as 0 hours)",
        values={"resolution": "day"}))
    return checks


def with_ons_units(design, names: dict[str, str] | None = None):
    """Read each DfE three-digit code a design names units by as the ONS code the data's units carry.

    ``units.treated``, ``units.adoption``, ``units.comparison`` and an analysis' own
    ``units``, ``comparison`` or ``donors`` may name authorities either way (384 or
    E08000036). The design is updated in place, so the analyses, results and report name
    the units as the data do, whichever way the design named them; a three-digit code the
    DfE lists do not hold is an error naming the key. ``names`` (:attr:`Returns.names`)
    maps every code of a recoded authority to the one the data's unit is named by, so a
    design may name Barnsley 370, E08000016 or E08000038 whichever code its returns use.
    """
    from .geography import DFE_CODE, recoding_chain

    _check_one_authority_once(design)  # before any mapping: the names as the user wrote them
    every = {c: name for name in set((names or {}).values()) for c in recoding_chain(name)}

    def dfe(name) -> bool:
        return bool(DFE_CODE.match(str(name).strip())) or str(name).strip() in every

    def ons(name, key):
        code = ons_code(str(name), design.where, key=key) if DFE_CODE.match(str(name).strip()) else str(name).strip()
        return every.get(code, code)

    units = design.units
    update: dict[str, object] = {}
    if any(dfe(n) for n in units.treated):
        update["treated"] = list(dict.fromkeys(ons(n, "units.treated") for n in units.treated))
    if any(dfe(n) for n in units.adoption):
        adoption: dict = {}
        for n, v in units.adoption.items():
            code = ons(n, f"units.adoption.{n}")
            if code in adoption and adoption[code] != v:
                raise EvalkitError(design.where, f"names {authority_name(code)} twice, with adoption {adoption[code]} "
                                   f"and {v}: {code} and {n} are codes of one authority",
                                   "keep one entry per authority", key=f"units.adoption.{n}")
            adoption[code] = v
        update["adoption"] = adoption
    if isinstance(units.comparison, list) and any(dfe(n) for n in units.comparison):
        update["comparison"] = list(dict.fromkeys(ons(n, "units.comparison") for n in units.comparison))
    if update:
        design.units = units.model_copy(update=update)
    for i, spec in enumerate(design.analysis):
        for name in ("units", "comparison", "donors"):
            listed = getattr(spec, name, None)
            if isinstance(listed, list) and any(dfe(n) for n in listed):
                setattr(spec, name, list(dict.fromkeys(ons(n, f"analysis[{i}].{name}") for n in listed)))
    return design


def _check_one_authority_once(design) -> None:
    """Refuse a design naming one authority, under two of its codes, as treated and adopting, or as
    adopting and a comparison unit or donor.

    design.py compares the names as text; here ``370``, ``E08000016`` and ``E08000038``
    (Barnsley's DfE code and both its ONS codes), or ``384`` and ``E08000036``, are one
    authority. Mapped to one unit, ``units.treated`` would take intervention.start and
    ``units.adoption`` overwrite it silently, or an adopter would be its own comparison.
    """
    from .geography import DFE_CODE, dfe_codes, recoding_chain

    def same(name) -> str:  # one key per authority: the first code of its recoding chain
        text = str(name).strip()
        code = dfe_codes().get(text, text) if DFE_CODE.match(text) else text
        return recoding_chain(code)[0]

    def one(name, other, chain) -> str:
        return f"'{name}' and '{other}' are one authority, {authority_name(chain[-1])} ({' or '.join(chain)})"

    units = design.units
    adopting = {same(n): (f"units.adoption.{n}", n) for n in units.adoption}
    for name in units.treated:
        if same(name) in adopting:
            key, other = adopting[same(name)]
            raise EvalkitError(design.where, f"units.treated and {key}: {one(name, other, recoding_chain(same(name)))}, "
                               "so one adoption date would be lost", "list the authority in one place only",
                               key="units")
    adopting.update({same(n): ("units.treated", n) for n in units.treated})
    lists = [("units.comparison", units.comparison if isinstance(units.comparison, list) else [], adopting)]
    for i, spec in enumerate(design.analysis):
        treated = getattr(spec, "units", None)
        # an analysis' own treated units, when it names them; else the design's adopters
        own = {same(n): (f"analysis[{i}].units", n) for n in treated} if isinstance(treated, list) else adopting
        for name in ("comparison", "donors"):
            listed = getattr(spec, name, None)
            if isinstance(listed, list):
                lists.append((f"analysis[{i}].{name}", listed, own))
    for key, listed, adopters in lists:
        for name in listed:
            if same(name) in adopters:
                where, other = adopters[same(name)]
                raise EvalkitError(design.where, f"names an adopting authority ({where}): "
                                   f"{one(name, other, recoding_chain(same(name)))}",
                                   f"remove it from {key}: an adopter cannot be its own comparison", key=key)


def collection_year_of(period) -> int:
    """The collection year (named by the year it ends) in which a period starts."""
    start = period.start_time
    return int(start.year) + (1 if int(start.month) >= 4 else 0)


def abolished_hint(unit: str, year: int) -> str:
    """Why an authority may have no data in a collection year: it had been abolished, or not yet made."""
    first, last = chain_span(str(unit))
    if last is not None and year > last:
        return (f" ({authority_name(str(unit))} {unit} was abolished in collection year {last}: count it with its "
                "successors under units.aggregate: police_force_area, or narrow data.window)")
    if first is not None and year < first:
        return (f" ({authority_name(str(unit))} {unit} was created in collection year {first}: count it with the "
                "authorities it replaced under units.aggregate: police_force_area, or narrow data.window)")
    return ""


def load_ssda903(design):
    """Load ``data.layout: ssda903``: the returns as evalkit's episodes, exposure and checks.

    Returns
    -------
    AnalysisData
        As for the episodes layout; ``checks`` holds one data check per DfE rule and the
        day-resolution note.
    """
    from .prepare import AnalysisData, adoption_periods, attach_exposure, find_comparison_units
    from .progress import stage
    from .pseudonymise import pseudonym_key
    from .sources import sha256_of

    spec = design.data
    where = spec.source
    design = with_ons_units(design)
    if spec.columns:
        raise EvalkitError(design.where, "layout ssda903 reads the DfE's own columns (CHILD, MIS_START, ...)",
                           "remove data.columns", key="data.columns")
    key = pseudonym_key(spec.person_key_env, spec.person_key, design.where)
    with stage("read SSDA903 returns"):
        returns = read_returns(design.resolve(spec.source), where)
    assert returns.returns is not None  # read_returns lists every return it read
    design = with_ons_units(design, returns.names)  # any code of a recoded authority names its one unit
    extracted_at = design.extracted_at
    with stage("DfE validation rules and missing episodes"):
        found = missing_episodes(returns, bool(getattr(spec, "include_away", False)), extracted_at)
    aggregate = None
    if getattr(design.units, "aggregate", None) == "police_force_area":
        from .geography import police_force_areas

        aggregate = police_force_areas(returns.returns["LA"].unique(), where,
                                       merge_city_of_london=getattr(design.units, "merge_city_of_london", True))
    units = None if aggregate is None else found.frame["LA"].map(aggregate).to_numpy()
    episodes = episode_frame(found, returns.header, key, where, extracted_at, units)
    if not len(episodes):
        raise EvalkitError(where, "no missing episode is left after the DfE rules and the MISSING codes",
                           "check the Missing tables (MISSING = M; data.include_away adds A)")
    periods = analysis_periods(design, returns.returns, extracted_at)
    all_units = sorted(set(returns.returns["LA"].map(aggregate) if aggregate else returns.returns["LA"]))
    with stage("derive outcomes per area and period"):
        panel, unit_list, episodes = episodes_panel(design, episodes, all_units, periods, where)
    sources = list(returns.files)
    if spec.exposure is not None:
        panel, exposure_path = attach_exposure(design, panel)
        sources.append(exposure_path)
    elif returns.episodes is not None:
        days = looked_after_days(returns.episodes, returns.returns, spec.frequency, aggregate)
        panel = panel.merge(days, on=["unit", "period"], how="left")
        bad = ~(panel["exposure"] > 0)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise EvalkitError(where, f"no looked-after child-days for '{panel['unit'].iloc[i]}' in {panel['period'].iloc[i]}"
                               f"{abolished_hint(panel['unit'].iloc[i], collection_year_of(panel['period'].iloc[i]))}",
                               "add that authority's Episodes table for the year, or narrow data.window")
    adoption = adoption_periods(design, panel, unit_list, periods, None)
    comparison = find_comparison_units(design, unit_list, adoption)
    data = AnalysisData(
        panel=panel, periods=periods, units=unit_list, adoption=adoption, comparison_units=comparison,
        episodes=episodes, sha256=sha256_of(sources), rows=found.rows_read,
        censored=int(episodes["censored"].sum()), sources=[str(p) for p in sources],
    )
    data.checks = rule_checks(found)
    return data
