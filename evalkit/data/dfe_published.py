"""The DfE's published "Children looked after in England" statistics as a yearly panel.

``data.layout: dfe_published`` reads the open-data CSV (columns time_period,
time_identifier, geographic_level, country_code, country_name, region_code, region_name,
old_la_code, la_name, new_la_code, missing_status, number) into a panel of local
authorities by collection year, for a researcher without access to the returns.

* Rows of ``geographic_level`` "Local authority" only (national and regional totals are
  not units); the unit is ``new_la_code`` (the ONS code).
* ``time_period`` 202223 is the collection year 1 April 2022 - 31 March 2023, counted as
  the year 2023 (the year it ends, as SSDA903 folders are named): ``data.frequency``
  must be ``year``.
* Each outcome's ``column`` names a ``missing_status`` value (the published label, e.g.
  "Missing incidents"); ``data.columns.exposure`` may name one too (e.g. "Children looked
  after during the year").
* Suppressed or unavailable values (c, x, z, low, u, :, blank) are not zeros: an
  authority with one in a declared outcome or the exposure is left out, and a data
  check says which and how many.
* The DfE's caveat travels with the data as a data check: some authorities record every
  incident as missing rather than away from placement, so missing and away counts are
  not comparable across authorities.
* ``old_la_code`` (the DfE three-digit code), when the file has it, is checked against the
  shipped table of DfE and ONS codes (examples/geography/la_to_pfa.csv, from the DfE's own
  lists): a row whose two codes are both in the table but are not one authority's pair
  (384 with E08000034) is an error naming the row, since its figures would land on the
  wrong authority; a pair the table does not know (a code newer than the table) is
  accepted with a warning check, ``dfe_codes_unknown``, since there the table is the one
  that is out of date. A new_la_code the lookup does not hold on a row whose old_la_code is
  a known DfE code counts as that code's authority (listed in the same warning); with a blank
  or absent old_la_code it is refused naming the row (it would be an extra unit).
* Recoded authorities (Barnsley E08000016, E08000038 from 2025-26, the DfE's 370
  throughout) are one unit named by the code most of their years use.
* Abolished authorities: a series that runs across a reorganisation (Northamptonshire to
  2020-21, North and West Northamptonshire from 2021-22) is complete when each authority
  has figures for the years it existed and its successors (or predecessors) are in the
  file for the others; with ``units.aggregate: police_force_area`` they sum into one force
  area series. Without aggregation an abolished authority is a unit with years missing,
  which is refused as before, with the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import EvalkitError, did_you_mean

COLUMNS = ("time_period", "time_identifier", "geographic_level", "country_code", "country_name", "region_code",
           "region_name", "old_la_code", "la_name", "new_la_code", "missing_status", "number")
READ = ("time_period", "geographic_level", "new_la_code", "la_name", "missing_status", "number")
SUPPRESSED = {"c", "x", "z", "low", "u", ":", "", "k", "[c]", "[x]", "[z]", "[low]"}
CAVEAT = ("DfE caveat: some local authorities record every incident as 'missing' rather than 'away from "
          "placement without authorisation', so missing and away counts are not comparable across authorities; "
          "an authority's own series is comparable over time only if its recording practice did not change")


def read_published(path, where: str) -> pd.DataFrame:
    """The local-authority rows of the CSV: unit, year, la_name, missing_status, number (float, NaN suppressed)."""
    import pyarrow as pa
    from pyarrow import csv as pacsv

    try:
        with open(path, "rb") as handle:
            first = handle.readline(1 << 16).decode("utf-8-sig", errors="replace")
    except OSError:
        raise EvalkitError(where, "the file does not exist or cannot be read", "check data.source") from None
    header = [c.strip().strip('"') for c in first.rstrip("\r\n").split(",")]
    lacking = [c for c in READ if c not in header]
    read = list(READ) + (["old_la_code"] if "old_la_code" in header else [])
    if lacking:
        raise EvalkitError(where, f"is not the DfE published CSV: no column {', '.join(lacking)}",
                           "use the 'Children looked after in England' open-data CSV (columns: " + ", ".join(COLUMNS) + ")",
                           key="row 1")
    try:
        table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(use_threads=False),
                               convert_options=pacsv.ConvertOptions(
                                   include_columns=read, column_types={c: pa.string() for c in read},
                                   strings_can_be_null=False))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise EvalkitError(where, f"is not a readable CSV ({' '.join(str(exc).split())[:160]})",
                           "save it as UTF-8 CSV") from None
    frame = table.to_pandas()
    frame["row"] = np.arange(2, len(frame) + 2)
    frame = frame[frame["geographic_level"].str.strip().str.lower() == "local authority"]
    if not len(frame):
        raise EvalkitError(where, "has no 'Local authority' rows", "use the file with local-authority figures")
    period = frame["time_period"].str.strip()
    _refuse_first(~period.str.fullmatch(r"\d{6}"), period, frame, where, "time_period",
                  "is not a collection year like 202223", "keep the published time_period column as it is")
    start, end = period.str[:4].astype(int), period.str[4:].astype(int)
    _refuse_first((start + 1) % 100 != end, period, frame, where, "time_period", "is not two consecutive years",
                  "keep the published time_period column as it is")
    unit = frame["new_la_code"].str.strip()
    _refuse_first(~unit.str.fullmatch(r"[EW]\d{8}"), unit, frame, where, "new_la_code",
                  "is not an ONS local authority code", "keep the published new_la_code column")
    text = frame["number"].str.strip().str.replace(",", "", regex=False)
    suppressed = text.str.lower().isin(SUPPRESSED)
    numbers = pd.to_numeric(text.where(~suppressed), errors="coerce")
    bad = numbers.isna() & ~suppressed
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise EvalkitError(where, f"'{text.iloc[i][:20]}' in column 'number' is not a number or a DfE suppression code",
                           "numbers, or c/x/z/low for suppressed or unavailable figures", key=f"row {frame['row'].iloc[i]}")
    out = pd.DataFrame({"unit": unit.to_numpy(), "year": (start + 1).to_numpy(), "la_name": frame["la_name"].to_numpy(),
                        "missing_status": frame["missing_status"].str.strip().to_numpy(),
                        "number": numbers.to_numpy(dtype=float), "row": frame["row"].to_numpy()})
    if "old_la_code" in frame:
        out["old_la_code"] = frame["old_la_code"].fillna("").str.strip().to_numpy()
    return out


def check_la_codes(rows: pd.DataFrame, where: str) -> list:
    """Each row's (old_la_code, new_la_code) against the DfE's pairs in the shipped table.

    Returns the data checks (a warning naming pairs the table does not know); raises for a
    row whose two codes are both known but belong to different authorities.
    """
    from ..results import Check
    from .geography import authority, authority_name, dfe_code_pairs, dfe_codes, unknown_code_error

    pairs, codes = dfe_code_pairs(), dfe_codes()
    if "old_la_code" not in rows:
        rows = rows.assign(old_la_code="")
    distinct = rows.drop_duplicates(["old_la_code", "unit"])
    unknown = []
    for old, new, row in zip(distinct["old_la_code"], distinct["unit"], distinct["row"]):
        if authority(new) is None and old.lower() in ("", "x", "z", ":"):
            # a code the lookup does not hold and no old_la_code to say which authority: it would be
            # an extra authority, silently (a known old_la_code names it: dfe_code_units)
            raise unknown_code_error(new, where, key=f"row {row}")
        if old.lower() in ("", "x", "z", ":") or (old, new) in pairs:
            continue
        row_new = authority(new)
        known_old, known_new = old in codes, row_new is not None and bool(row_new.dfe)
        if known_old and known_new:
            raise EvalkitError(where, f"old_la_code {old} ({authority_name(codes[old])}) and new_la_code {new} "
                               f"({authority_name(new)}) are different authorities in the DfE's code lists",
                               "correct the row (its figures would land on the wrong authority); the DfE's pairs "
                               "are in examples/geography/la_to_pfa.csv", key=f"row {row}")
        unknown.append(f"{old}/{new}")
    if not unknown:
        return []
    return [Check("dfe_codes_unknown", "warn",
                  f"{len(unknown)} pair(s) of old_la_code/new_la_code not in the shipped DfE code table "
                  f"({', '.join(sorted(unknown)[:10])}{', ...' if len(unknown) > 10 else ''}): codes newer than the "
                  "table (examples/geography/SOURCE.md gives its vintage); a row whose old_la_code the table holds "
                  "counts as that DfE code's authority, any other is named by new_la_code as given",
                  values={"pairs_unknown": len(unknown)})]


def dfe_code_units(rows: pd.DataFrame) -> pd.DataFrame:
    """Each row whose new_la_code the lookup does not hold but whose old_la_code is a known DfE
    code, as that code's authority (its newest known ONS code).

    The DfE code identifies the authority: an ONS recoding newer than the lookup (370 with a
    new code for 2025-26) is still Barnsley, and named by new_la_code it would be an extra
    unit with a one-year series. The naming rule (:func:`_one_code_per_authority`) then
    names the unit. ``check_la_codes`` has listed such pairs in ``dfe_codes_unknown``.
    """
    from .geography import authority, dfe_codes, recoding_chain

    if "old_la_code" not in rows:
        return rows
    codes = dfe_codes()
    distinct = rows.drop_duplicates(["old_la_code", "unit"])
    named = {(old, new): recoding_chain(codes[old])[-1] for old, new in zip(distinct["old_la_code"], distinct["unit"])
             if old in codes and authority(new) is None}
    if not named:
        return rows
    pairs = list(zip(rows["old_la_code"], rows["unit"]))
    return rows.assign(unit=[named.get(pair, pair[1]) for pair in pairs])


def _one_code_per_authority(rows: pd.DataFrame) -> pd.DataFrame:
    """Name each recoded authority (Barnsley E08000016, E08000038 from 2025-26) by one code: the
    one most of its years use, the newest on a tie (geography.recoded_names); ``attrs['names']``
    maps each of its codes to that one, for the design's unit names."""
    from .geography import recoded_names

    years = rows.drop_duplicates(["unit", "year"])["unit"].value_counts()
    names = recoded_names({str(code): int(n) for code, n in years.items()})
    if names:
        rows = rows.assign(unit=rows["unit"].map(lambda code: names.get(code, code)))
    rows.attrs["names"] = names
    return rows


def _check_complete(panel: pd.DataFrame, periods: pd.PeriodIndex, where: str, aggregate: bool) -> None:
    """Every authority in every year it existed; across a reorganisation, its successors or
    predecessors in the file for the other years (only when aggregating into force areas).

    A missing authority-year would otherwise be a fall in its force area's figures.
    """
    from .geography import authority, authority_name, chain_span, recoding_chain

    def predecessors(code: str) -> list[str]:  # of a recoded authority: those of its first code
        from .geography import predecessors as direct

        return direct(recoding_chain(code)[0])

    authorities = sorted(panel["unit"].unique().tolist())
    held = set(authorities)
    have = set(zip(panel["unit"], panel["period"]))
    for unit in authorities:
        # a recoded authority (one unit, named by one of its codes) spans all its codes' years
        first, last = chain_span(unit) if aggregate else (None, None)
        for period in periods:
            if (unit, period) in have:
                continue
            year = period.year
            row = authority(recoding_chain(unit)[-1])
            if aggregate and row is not None and last is not None and year > last:
                lacking = [s for s in row.replaced_by if s not in held]
                if not lacking:
                    continue
                raise EvalkitError(where, f"authority '{unit}' ({authority_name(unit)}) ended in {last}, but "
                                   f"{', '.join(lacking)}, which replaced it, has no figures: its force area's "
                                   f"{year} figures would miss it", "use a file with the successors' figures too, "
                                   "or narrow data.window")
            if aggregate and first is not None and year < first:
                # every authority it replaced that had children's services that year must be
                # there (Bournemouth, Poole and the Dorset county for Bournemouth, Christchurch
                # and Poole), or the force area's earlier years silently miss one of them
                lacking = [p for p in predecessors(unit) if _children_services_in(p, year) and p not in held]
                if lacking:
                    raise EvalkitError(where, f"authority '{unit}' ({authority_name(unit)}) began in {first}, but "
                                       f"{', '.join(lacking)}, which it replaced, {'have' if len(lacking) > 1 else 'has'} no figures: its force area's "
                                       f"{year} figures would miss it", "use a file with the earlier authorities' "
                                       "figures too, or narrow data.window")
                if any(p in held for p in predecessors(unit)):
                    continue
                raise EvalkitError(where, f"authority '{unit}' ({authority_name(unit)}) began in {first}, and "
                                   f"no authority it replaced ({', '.join(predecessors(unit)) or 'none known'}) has "
                                   f"figures for {year}", "use a file with the earlier authorities' figures too, "
                                   "or narrow data.window")
            from .ssda903 import abolished_hint

            raise EvalkitError(where, f"authority '{unit}' has no figures for {period}{abolished_hint(unit, year)}",
                               "narrow data.window to the years every authority has")


def _children_services_in(code: str, year: int) -> bool:
    """Whether ``code`` was a children's services authority (it has a DfE code) in collection year ``year``."""
    from .geography import authority, collection_year_span

    row = authority(code)
    first, last = collection_year_span(code)
    return bool(row is not None and row.dfe) and (first is None or first <= year) and (last is None or year <= last)


def _refuse_first(bad: pd.Series, values: pd.Series, frame: pd.DataFrame, where: str, column: str, what: str,
                  fix: str) -> None:
    """A one-line error naming the first row where ``bad`` holds, its value and its column."""
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise EvalkitError(where, f"'{str(values.iloc[i])[:20]}' in column '{column}' {what}", fix,
                           key=f"row {frame['row'].iloc[i]}")


def published_panel(design, rows: pd.DataFrame, where: str):
    """Pivot to one row per authority and year; returns (panel, checks)."""
    from ..results import Check

    statuses = sorted(rows["missing_status"].unique())
    wanted = {o.name: o.column for o in design.outcomes}
    exposure = design.data.columns.get("exposure")
    for i, outcome in enumerate(design.outcomes):
        if outcome.column not in statuses:
            raise EvalkitError(design.where, f"'{outcome.column}' is not a missing_status in the data"
                               f"{did_you_mean(str(outcome.column), statuses)}",
                               "name one of: " + "; ".join(statuses), key=f"outcomes[{i}].column")
    if exposure is not None and exposure not in statuses:
        raise EvalkitError(design.where, f"'{exposure}' is not a missing_status in the data{did_you_mean(str(exposure), statuses)}",
                           "name one of: " + "; ".join(statuses), key="data.columns.exposure")
    needed = list(dict.fromkeys(list(wanted.values()) + ([exposure] if exposure else [])))
    part = rows[rows["missing_status"].isin(needed)]
    dup = part.duplicated(["unit", "year", "missing_status"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise EvalkitError(where, f"authority '{part['unit'].iloc[i]}' has '{part['missing_status'].iloc[i]}' twice for "
                           f"{part['year'].iloc[i]}", "keep one row per authority, year and missing_status",
                           key=f"row {part['row'].iloc[i]}")
    wide = part.pivot(index=["unit", "year"], columns="missing_status", values="number")
    checks = [Check("dfe_caveat", "warn", CAVEAT)]
    left_out = sorted(wide.index[wide[needed].isna().any(axis=1)].get_level_values("unit").unique())
    if left_out:
        checks.append(Check("dfe_suppressed", "warn",
                            f"{len(left_out)} authorit{'y' if len(left_out) == 1 else 'ies'} left out: a declared figure is "
                            f"suppressed or unavailable in at least one year ({', '.join(left_out[:10])}"
                            f"{', ...' if len(left_out) > 10 else ''})", values={"authorities_left_out": len(left_out)}))
        wide = wide[~wide.index.get_level_values("unit").isin(left_out)]
    if not len(wide):
        raise EvalkitError(where, "every authority has a suppressed figure in a declared outcome",
                           "choose outcomes the DfE publishes unsuppressed, or use the SSDA903 returns")
    panel = pd.DataFrame({"unit": wide.index.get_level_values("unit"), "year": wide.index.get_level_values("year")})
    for name, column in wanted.items():
        panel[name] = wide[column].to_numpy()
    if exposure:
        panel["exposure"] = wide[exposure].to_numpy()
    return panel, checks


def load_dfe_published(design):
    """Load ``data.layout: dfe_published`` into AnalysisData (a yearly authority panel)."""
    from .prepare import AnalysisData, adoption_periods, find_comparison_units
    from .sources import sha256_of

    spec = design.data
    where = spec.source
    if spec.frequency != "year":
        raise EvalkitError(design.where, f"the DfE published figures are yearly, but data.frequency is {spec.frequency}",
                           "set data.frequency: year", key="data.frequency")
    other = sorted(set(spec.columns) - {"exposure"})
    if other:
        raise EvalkitError(design.where, f"layout dfe_published has its own columns, so data.columns.{other[0]} does not apply",
                           "keep only data.columns.exposure (a missing_status label), or remove data.columns",
                           key="data.columns")
    if design.units.adoption_column:
        raise EvalkitError(design.where, "the DfE published CSV has no adoption column",
                           "give adoption years under units.adoption", key="units.adoption_column")
    path = design.resolve(spec.source)
    rows = read_published(path, where)
    if spec.window is not None:
        # the window first: a figure suppressed in a year outside it must not drop an authority
        first = design.period(spec.window.start, "data.window.start")
        last = design.period(spec.window.end, "data.window.end")
        rows = rows[(rows["year"] >= first.year) & (rows["year"] <= last.year)]
        if not len(rows):
            raise EvalkitError(where, f"no figures inside data.window ({first} to {last})",
                               "check data.window against the years in the file")
    code_checks = check_la_codes(rows, where)  # only the rows used: a year left out cannot stop the run
    rows = _one_code_per_authority(dfe_code_units(rows))
    from .ssda903 import with_ons_units

    design = with_ons_units(design, rows.attrs.get("names"))  # the design's DfE and recoded codes as the units' names
    panel, checks = published_panel(design, rows, where)
    panel["period"] = pd.PeriodIndex(panel["year"].astype(str), freq="Y")
    if spec.window is None:
        first, last = panel["period"].min(), panel["period"].max()
    periods = pd.period_range(first, last, freq="Y")
    # every authority in every year (it existed), checked before any summing into force areas: a
    # missing authority-year would otherwise be a fall in its force area's figures
    aggregate = getattr(design.units, "aggregate", None) == "police_force_area"
    _check_complete(panel, periods, where, aggregate)
    if aggregate:
        from .geography import police_force_areas

        mapping = police_force_areas(panel["unit"].unique(), where,
                                     merge_city_of_london=getattr(design.units, "merge_city_of_london", True))
        panel = panel.drop(columns="period").assign(unit=panel["unit"].map(mapping))
        panel = panel.groupby(["unit", "year"], as_index=False, sort=True).sum()
        panel["period"] = pd.PeriodIndex(panel["year"].astype(str), freq="Y")
    units = sorted(panel["unit"].unique().tolist())
    grid = pd.MultiIndex.from_product([units, periods], names=["unit", "period"])
    indexed = panel.drop(columns="year").set_index(["unit", "period"])
    panel = indexed.reindex(grid).reset_index()
    if "exposure" in panel and not (panel["exposure"] > 0).all():
        i = int(np.flatnonzero(~(panel["exposure"] > 0).to_numpy())[0])
        raise EvalkitError(where, f"exposure for '{panel['unit'].iloc[i]}' in {panel['period'].iloc[i]} is not above 0",
                           "choose another exposure, or leave data.columns.exposure out")
    adoption = adoption_periods(design, panel, units, periods, None)
    comparison = find_comparison_units(design, units, adoption)
    data = AnalysisData(panel=panel, periods=periods, units=units, adoption=adoption, comparison_units=comparison,
                        episodes=None, sha256=sha256_of([path]), rows=len(rows), censored=0, sources=[str(path)])
    data.checks = checks + code_checks
    return data

