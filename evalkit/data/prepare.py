"""From a design to analysis-ready data: load, validate, derive outcomes, attach exposure
and adoption.

The result, :class:`AnalysisData`, is what every estimator receives: a zero-filled
unit-by-period panel of outcomes (and exposure), the per-episode durations, and the
adoption period of each unit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..design import Design
from ..errors import EvalkitError, did_you_mean
from ..periods import FREQUENCIES
from .durations import DURATION_MEASURES, derive_duration_outcome
from .episodes import derive_counts, mark_repeats, validate_episodes
from .panel import numeric_column, parse_period_column, unit_column
from .progress import stage
from .sources import first_bad, read_source, read_table, release_unused_memory, row_label, sha256_of


@dataclass
class AnalysisData:
    """Validated data for the plan.

    Attributes
    ----------
    panel : DataFrame
        One row per unit and period (zero-filled): ``unit``, ``period``, every outcome
        declared in the design, and ``exposure`` when one is declared.
    episodes : DataFrame or None
        Episodes reported inside the window (episodes layout only), with
        ``hours_to_found`` and ``censored``.
    adoption : dict
        Unit -> adoption period, for every treated unit; units absent never adopt.
    """

    panel: pd.DataFrame
    periods: pd.PeriodIndex
    units: list
    adoption: dict
    comparison_units: list
    episodes: pd.DataFrame | None = None
    sha256: str = ""
    rows: int = 0
    censored: int = 0
    sources: list = field(default_factory=list)
    #: unit -> the exact adoption date, for adoption dates inside a period (the period is floored)
    adoption_dates: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)  # data checks (evalkit.results.Check) for results.json

    @property
    def treated_units(self) -> list:
        return [u for u in self.units if u in self.adoption]

    @property
    def has_exposure(self) -> bool:
        return "exposure" in self.panel


def _column_list(value) -> list[str]:
    return list(value) if isinstance(value, list) else [value]


def _one_column(design: Design, columns: Mapping[Any, str | list[str]], role: str,
                key: str = "data.columns") -> str:
    """The column a role names: only ``time`` may name several ([year, month])."""
    name = columns[role]
    if isinstance(name, list):
        raise EvalkitError(design.where, f"{key}.{role} names {len(name)} columns, but {role} is one column",
                           f"give {key}.{role} one column name", key=f"{key}.{role}")
    return name


def load_data(design: Design, frame: pd.DataFrame | None = None) -> AnalysisData:
    """Load and validate the design's data: from ``data.source``, or from ``frame`` when given
    (a pandas DataFrame in the design's layout, read exactly as the same rows from a file).

    Raises
    ------
    EvalkitError
        Naming the file and row (or design key) at fault.
    """
    spec = design.data
    if spec.layout == "ssda903":
        from .ssda903 import load_ssda903

        return load_ssda903(design)
    if spec.layout == "dfe_published":
        from .dfe_published import load_dfe_published

        return load_dfe_published(design)
    where = spec.source
    columns = dict(spec.columns)
    if spec.layout == "episodes":
        needed = [_one_column(design, columns, r) for r in columns
                  if r in ("unit", "reported_at", "found_at", "person", "episode", "age", "sex", "looked_after", "risk")]
        raw = read_source(design, needed, categorical=[_one_column(design, columns, r) for r in ("unit", "sex", "risk")
                                                       if r in columns], frame=frame)
        with stage("validate episodes"):
            episodes = validate_episodes(raw, columns, where, design.extracted_at,
                                         {"reported_at": spec.date_format_for("reported_at"),
                                          "found_at": spec.date_format_for("found_at")}, getattr(spec, "timezone", None))
        local_time = episodes.attrs.pop("local_time", None)
        rows, digest = len(raw), raw.attrs["digest"]
        raw = None  # the file's columns are no longer needed: free them before deriving
        release_unused_memory()
        with stage("derive outcomes per area and period"):
            panel, periods, units, episodes = _episodes_to_panel(design, episodes, where)
    else:
        needed = _column_list(columns["time"])
        if "unit" in columns:
            needed.append(_one_column(design, columns, "unit"))
        if "exposure" in columns:
            needed.append(_one_column(design, columns, "exposure"))
        needed += [o.column for o in design.outcomes if o.column]
        needed += predictor_columns(design)
        needed += [c for c in covariate_columns(design) if c not in needed]
        if design.units.adoption_column:
            needed.append(design.units.adoption_column)
        raw = read_source(design, needed, frame=frame)
        panel, periods, units, row_units = _validate_panel(design, raw, where)
        episodes = local_time = None
        rows, digest = len(raw), raw.attrs["digest"]
    sources = [digest]
    if spec.exposure is not None:
        panel, exposure_path = attach_exposure(design, panel)
        sources.append(exposure_path)
    adoption = adoption_periods(design, panel, units, periods, raw if spec.layout == "panel" else None,
                                row_units if spec.layout == "panel" else None)
    adoption_dates = _dates_inside_periods(design, units)
    comparison = find_comparison_units(design, units, adoption)
    return AnalysisData(
        panel=panel, periods=periods, units=units, adoption=adoption, comparison_units=comparison,
        episodes=episodes, sha256=sha256_of(sources), rows=rows,
        censored=int(episodes["censored"].sum()) if episodes is not None else 0,
        sources=[str(p) for p in sources],
        adoption_dates=adoption_dates,
        checks=([_adoption_date_check(design, adoption_dates, episodes is not None)] if adoption_dates else [])
        + ([local_time_check(local_time)] if local_time else []),
    )


def predictor_columns(design: Design) -> list[str]:
    """Panel columns named as synthetic-control predictors that are not outcomes themselves."""
    outcome_names = {o.name for o in design.outcomes} | {o.column for o in design.outcomes if o.column}
    reserved = {"unit", "period", "exposure", "row"}
    columns = []
    for i, spec in enumerate(design.analysis):
        for j, predictor in enumerate(getattr(spec, "predictors", None) or []):
            name = predictor.column
            if name in outcome_names or name in columns:
                continue
            if name in reserved:
                raise EvalkitError(design.where, f"predictor column '{name}' clashes with a name evalkit uses",
                                   "rename the column in the data file", key=f"analysis[{i}].predictors[{j}]")
            columns.append(name)
    return columns


def covariate_columns(design: Design) -> list[str]:
    """Panel columns named in any analysis's ``covariates`` (DiD conditioning variables)."""
    reserved = {"unit", "period", "exposure", "row"} | {o.name for o in design.outcomes}
    columns = []
    for i, spec in enumerate(design.analysis):
        for j, name in enumerate(getattr(spec, "covariates", None) or []):
            if name in reserved:
                raise EvalkitError(design.where, f"covariate column '{name}' clashes with a name evalkit uses",
                                   "rename the column in the data file", key=f"analysis[{i}].covariates[{j}]")
            if name not in columns:
                columns.append(name)
    return columns


def _window(design: Design, observed: pd.Series, last_covered=None) -> pd.PeriodIndex:
    """The analysis periods: data.window, or the periods the data span.

    A window reaching beyond the data is refused: its periods would count as zero reports,
    not as unknown (a window from 1900 on data from 2018 would add a century of zeros). The
    data cover from their first period to their last one, or, for episodes, to the period
    the extract was taken in (``last_covered``): a quiet last month is a true zero.
    """
    freq = FREQUENCIES[design.data.frequency]
    first, last = observed.min(), observed.max()
    if design.data.window is None:
        return pd.period_range(first, last, freq=freq)
    start = design.period(design.data.window.start, "data.window.start")
    end = design.period(design.data.window.end, "data.window.end")
    covered_to = max(last, last_covered) if last_covered is not None else last
    if start < first and not pd.isna(first) and end >= first:
        raise EvalkitError(design.where, f"data.window starts in {start}, but the data start in {first}: the periods "
                           "before would count as zero, not as unknown", f"start the window in {first} or later",
                           key="data.window.start")
    if end > covered_to and not pd.isna(covered_to) and start <= covered_to:
        raise EvalkitError(design.where, f"data.window ends in {end}, but the data end in {covered_to}: the periods "
                           "after would count as zero, not as unknown",
                           f"end the window in {covered_to} or earlier (or set data.extracted_at if the extract covers "
                           "later periods)", key="data.window.end")
    return pd.period_range(start, end, freq=freq)


def _zone(name: str | None):
    import zoneinfo

    return "UTC" if name is None else zoneinfo.ZoneInfo(name)


def _episodes_to_panel(design: Design, episodes: pd.DataFrame, where: str):
    freq = FREQUENCIES[design.data.frequency]
    episodes["repeat"] = mark_repeats(episodes).to_numpy()
    episodes["period"] = episodes["reported_at"].dt.to_period(freq)
    extracted = design.extracted_at
    if extracted is not None and extracted.tzinfo is not None:
        # on the clock the periods follow: data.timezone's local calendar, or UTC
        extracted = extracted.tz_convert(_zone(getattr(design.data, "timezone", None))).tz_localize(None)
    # an extract taken at the very end of a period covers it; one taken mid-period covers the one before
    covered = None if extracted is None else (extracted + pd.Timedelta(microseconds=1)).to_period(freq) - 1
    periods = _window(design, episodes["period"], covered)
    inside = (episodes["period"] >= periods[0]) & (episodes["period"] <= periods[-1])
    if not inside.any():
        raise EvalkitError(where, f"no episode is reported inside the window {periods[0]}..{periods[-1]}",
                           "check data.window against the dates in the file", key=None)
    if not inside.all():  # a national extract is often all inside: no copy of millions of rows then
        episodes = episodes.loc[inside].reset_index(drop=True)
    units = sorted(episodes["unit"].unique().tolist(), key=_unit_sort_key)
    for outcome in design.outcomes:
        if outcome.measure == "count" and (outcome.derive or outcome.name) in ("persons", "repeat_reports") \
                and "person" not in episodes:
            raise EvalkitError(design.where, f"outcome '{outcome.name}' needs a person column",
                               "map data.columns.person to the child identifier column", key="data.columns")
    return outcome_panel(design, episodes, units, periods), periods, units, episodes


def outcome_panel(design: Design, episodes: pd.DataFrame, units: list, periods: pd.PeriodIndex) -> pd.DataFrame:
    """The declared outcomes per unit and period, derived from episodes inside the window."""
    counts = derive_counts(episodes, units, periods)
    panel = counts[["unit", "period"]].copy()
    for outcome in design.outcomes:
        if outcome.measure == "count":
            panel[outcome.name] = counts[outcome.derive or outcome.name].to_numpy()
        elif outcome.measure in DURATION_MEASURES:
            # Kaplan-Meier per unit-period; cells under min_episodes are NaN (evalkit/data/durations.py)
            panel[outcome.name] = derive_duration_outcome(episodes, units, periods, outcome)
    return panel


def _unit_sort_key(unit):
    return (0, unit, "") if isinstance(unit, (int, np.integer)) else (1, 0, str(unit))


def _validate_panel(design: Design, raw: pd.DataFrame, where: str):
    kind = raw.attrs.get("kind", "csv")
    columns = design.data.columns
    periods_col, _ = parse_period_column(raw, _column_list(columns["time"]), design.data.frequency, where,
                                         date_format=design.data.date_format_for("time"))
    panel = pd.DataFrame({"row": np.arange(len(raw))})
    if "unit" in columns:
        unit = _one_column(design, columns, "unit")
        panel["unit"] = unit_column(raw[unit], where, unit, kind)
    else:
        panel["unit"] = "series"
    panel["period"] = periods_col.array  # keep the PeriodArray: to_numpy() boxes every row as an object
    dup = first_bad(pd.Series(panel.duplicated(["unit", "period"]).to_numpy()))
    if dup is not None:
        raise EvalkitError(where, f"unit '{panel['unit'].iloc[dup]}' has period {panel['period'].iloc[dup]} twice",
                           "keep one row per unit and period", key=row_label(dup, kind))
    for outcome in design.outcomes:
        assert outcome.column is not None  # check_design: every panel outcome names its column
        values = numeric_column(raw[outcome.column], where, outcome.column, kind, allow_missing=outcome.measure == "continuous")
        if outcome.measure == "count":
            bad = first_bad(pd.Series(values < 0))
            if bad is not None:
                raise EvalkitError(where, f"count '{outcome.column}' is negative ({values[bad]:g})",
                                   "counts must be 0 or more", key=row_label(bad, kind))
        panel[outcome.name] = values
    for column in predictor_columns(design):
        # synthetic-control predictors: numeric, missing allowed (averaged over their windows)
        panel[column] = numeric_column(raw[column], where, column, kind, allow_missing=True)
    for column in covariate_columns(design):
        # DiD covariates: numeric; a missing value drops that unit from the analyses that use it
        if column not in panel:
            panel[column] = numeric_column(raw[column], where, column, kind, allow_missing=True)
    if "exposure" in columns:
        exposure = _one_column(design, columns, "exposure")
        panel["exposure"] = numeric_column(raw[exposure], where, exposure, kind)
        _check_exposure(panel["exposure"].to_numpy(), where, exposure, kind)
    # each row's unit, for an adoption column (read once)
    row_units = panel["unit"].to_numpy() if "unit" in columns else None
    periods = _window(design, panel["period"])
    panel = panel[(panel["period"] >= periods[0]) & (panel["period"] <= periods[-1])]
    units = sorted(panel["unit"].unique().tolist(), key=_unit_sort_key)
    grid = pd.MultiIndex.from_product([units, periods], names=["unit", "period"])
    indexed = panel.set_index(["unit", "period"])
    missing = grid.difference(indexed.index)
    if len(missing) and any(o.measure == "count" for o in design.outcomes):
        unit, period = missing[0]
        raise EvalkitError(where, f"unit '{unit}' has no row for period {period}",
                           "add the row (with 0 for a period with no reports) or narrow data.window")
    panel = indexed.reindex(grid).reset_index()
    return panel.drop(columns="row"), periods, units, row_units


def _check_exposure(values: np.ndarray, where: str, column: str, kind: str) -> None:
    bad = first_bad(pd.Series(~(values > 0)))
    if bad is not None:
        raise EvalkitError(where, f"exposure '{column}' is {values[bad]:g}, but it must be above 0",
                           "correct the denominator or leave exposure out", key=row_label(bad, kind))


def attach_exposure(design: Design, panel: pd.DataFrame):
    spec = design.data.exposure
    assert spec is not None  # called only when data.exposure is declared
    path = design.resolve(spec.source)
    where = spec.source
    cols = spec.columns
    time_cols = _column_list(cols.get("time")) if cols.get("time") else []
    unit = _one_column(design, cols, "unit", "data.exposure.columns") if "unit" in cols else None
    value_column = _one_column(design, cols, "value", "data.exposure.columns")
    needed = time_cols + ([unit] if unit is not None else []) + [value_column]
    raw = read_table(path, where, needed, "data.exposure.source")
    kind = raw.attrs.get("kind", "csv")
    value = numeric_column(raw[value_column], where, value_column, kind)
    _check_exposure(value, where, value_column, kind)
    table = pd.DataFrame({"exposure": value})
    table["unit"] = unit_column(raw[unit], where, unit, kind) if unit is not None else "series"
    if not time_cols:
        raise EvalkitError(design.where, "exposure needs a time column", "add data.exposure.columns.time (a year or a period)",
                           key="data.exposure.columns")
    times, yearly = parse_period_column(raw, time_cols, design.data.frequency, where, allow_year_only=True)
    table["time"] = times.to_numpy()
    dup = first_bad(pd.Series(table.duplicated(["unit", "time"]).to_numpy()))
    if dup is not None:
        raise EvalkitError(where, f"unit '{table['unit'].iloc[dup]}' has time {table['time'].iloc[dup]} twice",
                           "keep one row per unit and time", key=row_label(dup, kind))
    if "unit" in cols:
        panel_units = {str(u): u for u in panel["unit"].unique()}
        table["unit"] = [panel_units.get(str(u), u) for u in table["unit"]]
    else:
        table = table.drop(columns="unit")
    key = ["unit"] if "unit" in cols else []
    if yearly:
        panel = panel.assign(time=panel["period"].map(lambda p: p.asfreq("Y")))
    else:
        panel = panel.assign(time=panel["period"])
    merged = panel.merge(table, on=key + ["time"], how="left", validate="many_to_one")
    bad = first_bad(merged["exposure"].isna())
    if bad is not None:
        unit = merged["unit"].iloc[bad]
        raise EvalkitError(where, f"no exposure for unit '{unit}' in {merged['time'].iloc[bad]}",
                           "add that row to the exposure file or leave exposure out")
    return merged.drop(columns="time"), path


def match_unit(name, units: list, where: str, key: str):
    by_text = {str(u): u for u in units}
    if name in units:
        return name
    if str(name) in by_text:
        return by_text[str(name)]
    raise EvalkitError(where, f"unit '{name}' is not in the data{did_you_mean(str(name), list(by_text))}",
                       "check the spelling against the data's unit column", key=key)


def adoption_periods(design: Design, panel: pd.DataFrame, units: list, periods: pd.PeriodIndex, raw,
                     row_units: np.ndarray | None = None) -> dict:
    """Each adopting unit's first period: from units.treated, units.adoption or the panel's
    ``units.adoption_column`` (``raw``, the file's columns; ``row_units``, each row's unit
    as :func:`_validate_panel` read it, else read again)."""
    adoption: dict = {}
    if "unit" not in design.data.columns and design.data.layout == "panel":
        adoption["series"] = design.period(design.intervention.start, "intervention.start")
    if design.units.treated:
        start = design.period(design.intervention.start, "intervention.start")
        for name in design.units.treated:
            adoption[match_unit(name, units, design.where, "units.treated")] = start
    for name, value in design.units.adoption.items():
        unit = match_unit(name, units, design.where, f"units.adoption.{name}")
        if unit in adoption:  # two names of one unit (a DfE and an ONS code): never drop a date silently
            raise EvalkitError(design.where, f"units.adoption.{name} names unit '{unit}', which units.treated or "
                               "another units.adoption key names too, so one adoption date would be lost",
                               "list the unit in one place only", key="units")
        adoption[unit] = design.period(value, f"units.adoption.{name}")
    if design.units.adoption_column:
        adoption.update(_adoption_from_column(design, panel, raw, row_units))
    for unit, period in adoption.items():
        if period <= periods[0]:
            raise EvalkitError(design.where, f"unit '{unit}' adopts at {period}, so the data have no pre-period before it",
                               f"the data start at {periods[0]}: extend data.window back or check the adoption date",
                               key="units")
        if period > periods[-1]:
            raise EvalkitError(design.where, f"unit '{unit}' adopts at {period}, after the data end ({periods[-1]}): no post-period",
                               "extend data.window or check the adoption date", key="units")
    return adoption


def _date_inside_period(value, frequency: str):
    """The date, when a declared adoption date falls inside a period rather than on its first day."""
    import datetime as dt

    if isinstance(value, bool) or value is None or isinstance(value, int):
        return None
    if isinstance(value, (dt.date, dt.datetime, pd.Timestamp)):
        stamp = pd.Timestamp(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d{4}-\d{1,2}-\d{1,2}\s*", value):
        try:
            stamp = pd.Timestamp(value.strip())
        except ValueError:
            return None
    else:
        return None
    first = stamp.to_period(FREQUENCIES[frequency]).start_time
    return stamp if stamp.normalize() != first else None


def _dates_inside_periods(design: Design, units: list) -> dict:
    """unit -> exact adoption date, for units whose declared adoption date is inside a period."""
    frequency = design.data.frequency
    dates: dict = {}
    if design.units.treated and design.intervention.start is not None:
        stamp = _date_inside_period(design.intervention.start, frequency)
        if stamp is not None:
            for name in design.units.treated:
                dates[match_unit(name, units, design.where, "units.treated")] = stamp
    for name, value in design.units.adoption.items():
        stamp = _date_inside_period(value, frequency)
        if stamp is not None:
            dates[match_unit(name, units, design.where, f"units.adoption.{name}")] = stamp
    if "unit" not in design.data.columns and design.data.layout == "panel" and design.intervention.start is not None:
        stamp = _date_inside_period(design.intervention.start, frequency)
        if stamp is not None:
            dates["series"] = stamp
    return dates


def local_time_check(clock: dict):
    """The data check for ``data.timezone``: how many date-times fell at a clock change, and the rule
    that read them (evalkit.data.episodes.local_to_utc). Counts only, never the rows."""
    from ..results import Check
    from .episodes import clock_change_words

    status = "warn" if clock["ambiguous"] or clock["nonexistent"] else "pass"
    return Check("local_time", status, clock_change_words(clock), values=dict(clock))


def _adoption_date_check(design: Design, dates: dict, episodes: bool):
    """Warn that an adoption date inside a period is floored to that period for period counts."""
    from ..results import Check

    frequency = design.data.frequency
    shown = "; ".join(f"{u}: {d:%Y-%m-%d}" for u, d in sorted(dates.items(), key=lambda kv: (kv[1], str(kv[0])))[:10])
    how = ("analyses of time to found (survival_did) split episodes at the exact date; " if episodes else "")
    return Check("adoption_dates", "warn",
                 f"adoption dates inside a {frequency} ({shown}): analyses of {frequency}ly counts treat the whole "
                 f"{frequency} of adoption as after adoption (the date is floored to its {frequency}), which dilutes "
                 f"the first {frequency}'s effect; {how}to leave the part-{frequency} out, give the first whole "
                 f"{frequency} as the adoption date or set intervention.transition.",
                 values={"dates": {str(u): f"{d:%Y-%m-%d}" for u, d in dates.items()}})


def _adoption_from_column(design: Design, panel: pd.DataFrame, raw, unit_values: np.ndarray | None = None) -> dict:
    column = design.units.adoption_column
    where = design.data.source
    kind = raw.attrs.get("kind", "csv")
    values = raw[column].astype("string").str.strip()
    never = values.isna() | values.isin(["", "0", "0.0", "NA", "nan"])
    result: dict = {}
    if unit_values is None:
        unit_name = _one_column(design, design.data.columns, "unit")
        unit_values = unit_column(raw[unit_name], where, unit_name, kind)
    rows = np.flatnonzero(~never.to_numpy())
    # a panel repeats the adoption period on every row of a unit: parse each distinct
    # (unit, value) pair once, at its first row (same errors, same rows named)
    # the first row of each distinct pair, in row order, from the pair's integer codes
    unit_codes = pd.factorize(unit_values[rows])[0].astype(np.int64)
    value_codes = pd.factorize(values.iloc[rows])[0].astype(np.int64)
    _, first = np.unique(unit_codes * (int(value_codes.max(initial=0)) + 1) + value_codes, return_index=True)
    firsts = rows[np.sort(first)]
    for position, text in zip(firsts.tolist(), values.iloc[firsts].tolist()):
        text = text[:-2] if text.endswith(".0") else text
        try:
            period = design.period(text, f"units.adoption_column ({row_label(position, kind)})")
        except EvalkitError:
            raise EvalkitError(where, f"'{text}' in column '{column}' is not an adoption period",
                               "write the period (e.g. 2021-04 or 2004), or 0/empty for never", key=row_label(position, kind)) from None
        unit = unit_values[position]
        if unit in result and result[unit] != period:
            raise EvalkitError(where, f"unit '{unit}' has two adoption periods ({result[unit]} and {period})",
                               "give each unit one adoption period", key=row_label(position, kind))
        result[unit] = period
    return result


def find_comparison_units(design: Design, units: list, adoption: dict) -> list:
    if design.units.comparison == "all_untreated":
        return [u for u in units if u not in adoption]
    return [match_unit(name, units, design.where, "units.comparison") for name in design.units.comparison]
