"""The design file: a validated model of the declared evaluation.

The design is declared before outcome data arrive (SPEC.md, "Design file"). Unknown keys
are errors with a "did you mean" hint; relative paths resolve against the design file's
folder; periods are parsed at the data's frequency.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import EvalkitError, did_you_mean
from .periods import FREQUENCIES, parse_period, parse_timestamp_end_of_day

MECHANISMS = (
    "information_sharing",
    "cross_agency_technology",
    "single_point_of_contact",
    "multiagency_meetings",
    "shared_terminology",
    "roles_responsibilities",
    "joint_training",
    "other",
)

UnitId = Union[int, str]
PeriodValue = Union[int, str, dt.date]


class StrictModel(BaseModel):
    """A design section: unknown keys are refused with the closest known key as a hint."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set()
            for name, field in cls.model_fields.items():
                known.add(field.alias or name)
                known.add(name)
            for key in data:
                if key not in known:
                    raise PydanticCustomError(
                        "unknown_key",
                        "unknown key '{key}'{hint}",
                        {"key": str(key), "hint": did_you_mean(str(key), sorted(known))},
                    )
        return data


# ----------------------------------------------------------------------------- intervention
class Intervention(StrictModel):
    name: str = Field(description="The intervention's name, as the report shows it.")
    mechanism: Literal[MECHANISMS] = Field(  # type: ignore[valid-type]
        "other", description="The scoping review's mechanism this intervention works through."
    )
    description: str | None = None
    start: PeriodValue | None = Field(
        None, description="Common start (month, quarter or year as the data's frequency)."
    )
    transition: int = Field(0, ge=0, description="Periods of phase-in after start.")
    annual_cost: float | None = Field(None, ge=0, description="Cost a year, for the economic section.")
    cost_per_episode: float = Field(
        1870, gt=0, description="Police cost of one missing episode (GBP), for the economic section; "
        "default: the middle of GBP 1,325-2,415 per medium-risk episode (Shalev Greene & Pakes).",
    )


# ----------------------------------------------------------------------------- data
class Window(StrictModel):
    start: PeriodValue
    end: PeriodValue


class ExposureSource(StrictModel):
    source: str = Field(description="CSV or Parquet file with the denominator, per unit and time.")
    columns: dict[Literal["unit", "time", "value"], str | list[str]] = Field(
        description="Maps unit, time (a year, a period or [year, month]) and value onto the file's columns."
    )

    @field_validator("columns")
    @classmethod
    def _needs_value(cls, value):
        if "value" not in value:
            raise PydanticCustomError("missing_value", "exposure.columns needs 'value' (the denominator column)")
        return value


ColumnRole = Literal[
    "unit", "reported_at", "found_at", "person", "episode", "age", "sex", "looked_after", "risk",
    "time", "exposure",
]


SQLParam = Union[bool, int, float, str, dt.datetime, dt.date, None]


class DataSpec(StrictModel):
    source: str = Field(description="A .csv, .csv.gz or .parquet file (relative to the design file), or a database "
                        "URL (sqlite:///f.db, duckdb:///f.duckdb, postgresql://user@host/db) with query or table; "
                        "no password in the URL (EVALKIT_DB_PASSWORD or PGPASSWORD; ${NAME} reads a variable).")
    query: str | None = Field(None, description="SQL text when source is a database; :name placeholders take data.params.")
    table: str | None = Field(None, description="A table (or schema.table) to read when source is a database.")
    params: dict[str, SQLParam] = Field(default_factory=dict, description="Values bound to the query's :name placeholders.")
    layout: Literal["episodes", "panel"] = "episodes"
    columns: dict[ColumnRole, str | list[str]] = Field(default_factory=dict)
    person_key_env: str = Field(
        "EVALKIT_PSEUDONYM_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the secret key that pseudonymises columns.person (HMAC-SHA256).",
    )
    person_key: Literal["environment", "ephemeral"] = Field(
        "environment", description="environment: the key comes from person_key_env (required when columns.person is "
        "mapped); ephemeral: a random key for this run only, for synthetic identifiers.",
    )
    extracted_at: dt.datetime | dt.date | str | None = Field(
        None, description="When the extract was taken; open episodes are censored here."
    )
    frequency: Literal["month", "quarter", "year"] = "month"
    window: Window | None = None
    exposure: ExposureSource | None = None

    @model_validator(mode="after")
    def _database_keys(self):
        # the source itself is never echoed here: it may hold a password
        database = bool(re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", self.source))
        if database and re.match(r"^[^:/]+://[^/@]*:(?!\$\{[A-Za-z_][A-Za-z0-9_]*\}@)[^/@]*@", self.source):
            raise PydanticCustomError(
                "url_password", "data.source holds a password, which belongs in the environment, not the design file: "
                "drop it from the URL and set EVALKIT_DB_PASSWORD (or PGPASSWORD), or write ${NAME} for variable NAME")
        if not database and (self.query is not None or self.table is not None or self.params):
            raise PydanticCustomError("not_database", "data.query, data.table and data.params apply only when data.source "
                                      "is a database URL")
        if database and (self.query is None) == (self.table is None):
            raise PydanticCustomError("query_or_table", "a database source needs exactly one of data.query (SQL text) or "
                                      "data.table (a table name)")
        if self.params and self.query is None:
            raise PydanticCustomError("params_need_query", "data.params are bound into data.query's :name placeholders, so they "
                                      "need data.query")
        self._window_inside_extract()
        return self

    def _window_inside_extract(self) -> None:
        # a period after the extract was taken would count as zero reports, not as unknown
        if self.window is None or self.extracted_at is None:
            return
        try:
            last = parse_period(self.window.end, self.frequency)
            extracted = parse_timestamp_end_of_day(self.extracted_at)
        except (ValueError, TypeError):
            return  # an unparseable period or date is reported with its own key later
        if extracted + dt.timedelta(seconds=1) < last.end_time:
            raise PydanticCustomError(
                "window_after_extract", "data.window ends with {last}, which is not over when the extract was taken "
                "({extracted}): its counts would be incomplete; end the window earlier or use a later extract",
                {"last": str(last), "extracted": f"{extracted:%Y-%m-%d %H:%M}"})


# ----------------------------------------------------------------------------- units
class Units(StrictModel):
    treated: list[UnitId] = Field(default_factory=list, description="Units adopting at intervention.start.")
    adoption: dict[UnitId, PeriodValue] = Field(default_factory=dict, description="Adoption period per unit.")
    adoption_column: str | None = Field(None, description="Panel column with the adoption period (0/empty = never).")
    comparison: Literal["all_untreated"] | list[UnitId] = "all_untreated"


# ----------------------------------------------------------------------------- outcomes
EPISODE_COUNTS = ("reports", "persons", "repeat_reports")


class Outcome(StrictModel):
    name: str
    measure: Literal["count", "continuous", "duration_hours", "share_found_within", "median_hours_to_found"]
    per: float | None = Field(None, gt=0, description="Rates per this many of the exposure (e.g. 1000 children).")
    column: str | None = Field(None, description="Panel layout: the outcome column.")
    derive: Literal["reports", "persons", "repeat_reports"] | None = Field(
        None, description="Episodes layout, counts: which count to derive (default: the outcome's name)."
    )
    horizon: float | None = Field(None, gt=0, description="duration_hours: restricted-mean horizon in hours.")
    hours: float | None = Field(None, gt=0, description="share_found_within: the hours threshold.")
    min_episodes: int = Field(10, ge=1, description="Derived per-period duration outcomes: fewest episodes.")


# ----------------------------------------------------------------------------- analysis
class Seasonality(StrictModel):
    harmonics: int = Field(ge=1, le=6)
    period: int | None = Field(None, ge=2, description="Season length in periods (default: periods a year).")


class ITSOptions(StrictModel):
    method: Literal["its"]
    outcome: str
    family: Literal["poisson", "quasipoisson", "negbin", "gaussian"] | None = None
    seasonality: Seasonality | None = None
    slope_change: bool = True
    errors: Literal["none", "newey_west", "prais_winsten"] = "newey_west"
    lags: int | Literal["auto"] = "auto"
    transition: Literal["exclude", "ramp"] = "exclude"
    slope_origin: Literal["intervention", "last_pre"] = Field(
        "intervention",
        description="Where the slope-change term is 0: at the first post-intervention period "
        "(Linden's itsa) or at the last pre-intervention period (Lopez Bernal et al. 2017).",
    )
    horizons: list[int] = Field(default_factory=list)
    units: list[UnitId] | None = Field(None, description="Treated units to pool (default: units.treated).")
    exclude_periods: list[Window] = Field(
        default_factory=list,
        description="Windows left out of the fit (e.g. a known structural break such as COVID), inclusive.",
    )
    start: PeriodValue | None = Field(None, description="Interruption (default: the pooled units' adoption).")


class ControlledITSOptions(ITSOptions):
    method: Literal["controlled_its"]  # type: ignore[assignment]
    comparison: list[UnitId] | None = Field(None, description="Comparison units (default: units.comparison).")


class DiDOptions(StrictModel):
    """Two-way fixed-effects DiD, linear or Poisson (PPML), with few-treated-areas inference (docs/methods/did.md)."""

    method: Literal["did"]
    outcome: str
    family: Literal["linear", "poisson"] | None = Field(
        None, description="poisson: PPML with an exposure offset, ratio effects (default for counts); "
        "linear: TWFE by least squares, differences (default otherwise).",
    )
    control_group: Literal["never_treated", "not_yet_treated"] = Field(
        "not_yet_treated", description="Staggered Poisson (extended TWFE): compare with not-yet-treated and never-treated "
        "areas (Wooldridge's default), or with never-treated areas only.",
    )
    covariates: list[str] = Field(default_factory=list, description="Not used by did (use staggered_did).")
    estimation: Literal["regression", "ipw", "doubly_robust"] = Field(
        "regression", description="did is a regression; ipw and doubly_robust belong to staggered_did.",
    )
    inference: Literal["analytic", "multiplier_bootstrap", "randomization", "wild_cluster"] = Field(
        "analytic", description="analytic: cluster-robust by area; randomization: permute adoption dates across areas; "
        "wild_cluster: restricted wild cluster bootstrap (linear family).",
    )
    reps: int = Field(999, ge=99, description="Random permutations or bootstrap draws.")
    weights: Literal["rademacher", "webb"] = Field("webb", description="Wild cluster bootstrap weights.")
    transition: Literal["exclude", "include"] = Field(
        "exclude", description="exclude: each adopting area's intervention.transition phase-in periods are left out "
        "of the fit; include: they count as treated.",
    )


class StaggeredDiDOptions(StrictModel):
    """Callaway & Sant'Anna (2021) group-time ATT(g,t) and its aggregations (docs/methods/staggered_did.md)."""

    method: Literal["staggered_did"]
    outcome: str
    control_group: Literal["never_treated", "not_yet_treated"] = Field(
        "never_treated", description="Comparison units: never treated, or also those not yet treated (R did's default: never)."
    )
    covariates: list[str] = Field(default_factory=list, description="Panel columns conditioned on (time-invariant or base-period values).")
    estimation: Literal["regression", "ipw", "doubly_robust"] = Field(
        "doubly_robust", description="With covariates: outcome regression, IPW or doubly robust (Sant'Anna & Zhao 2020)."
    )
    base_period: Literal["varying", "universal"] = Field(
        "varying", description="varying: pre-period cells compare t with t-1 (R did's default); universal: with g-1."
    )
    anticipation: int = Field(0, ge=0, description="Periods before adoption in which units may already react.")
    transition: Literal["exclude", "include"] = Field(
        "exclude", description="exclude: the intervention.transition phase-in periods after adoption are left out "
        "of the post-period averages (they stay in the event study).",
    )
    inference: Literal["analytic", "multiplier_bootstrap"] = Field(
        "analytic", description="Analytic influence-function errors, or the multiplier bootstrap."
    )
    reps: int = Field(999, ge=99, description="Multiplier-bootstrap draws (also used for the event study's uniform band).")
    bootstrap_weights: Literal["rademacher", "mammen"] = Field(
        "rademacher", description="Multiplier distribution (R did 2.x: Rademacher)."
    )


class SynthPredictor(StrictModel):
    """A predictor averaged over its own pre-period window (Synth's special predictors)."""

    column: str = Field(description="A panel column, or a declared outcome's name.")
    window: Window | None = Field(None, description="Periods averaged, inclusive (default: predictors_window).")
    periods: list[PeriodValue] | None = Field(
        None, description="Explicit periods averaged (e.g. every other year), instead of a window."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        # a bare column name is a predictor averaged over predictors_window
        return {"column": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_window(self):
        if self.window is not None and self.periods is not None:
            raise PydanticCustomError("two_windows", "give window or periods for a predictor, not both")
        if self.periods is not None and not self.periods:
            raise PydanticCustomError("no_periods", "periods is empty; list at least one period")
        return self


class SyntheticControlOptions(StrictModel):
    method: Literal["synthetic_control"]
    outcome: str
    unit: UnitId | None = Field(None, description="The treated unit (default: the only treated unit).")
    donors: list[UnitId] | None = Field(None, description="The donor pool (default: units.comparison).")
    predictors: list[SynthPredictor] = Field(
        default_factory=list,
        description="Predictors: a column name (averaged over predictors_window) or {column, window | periods}. "
        "None: the weights fit the pre-period outcome directly.",
    )
    predictors_window: Window | None = Field(
        None, description="Periods plain predictors are averaged over (default: every pre-intervention period)."
    )
    fit_window: Window | None = Field(
        None, description="Pre-intervention periods whose outcome the weights (or V) are fitted to (default: all)."
    )
    optimise_v: Literal["nested", "none"] = Field(
        "nested", description="nested: predictor weights V chosen to minimise the pre-period outcome error "
        "(Abadie, Diamond & Hainmueller); none: equal weights on the standardised predictors.",
    )


class SurvivalDiDOptions(StrictModel):
    method: Literal["survival_did"]
    outcome: str
    horizon: float | None = Field(
        None, gt=0, description="Restricted-mean horizon in hours (default: the outcome's horizon, else 72)."
    )
    ties: Literal["efron", "breslow"] = Field("efron", description="Tied times in the Cox model (R's default: efron).")
    se: Literal["conservative", "cluster_robust"] = Field(
        "conservative",
        description="Hazard-ratio standard error: the larger of the area-clustered and the model-based one "
        "(conservative, for few areas), or the area-clustered one alone (R's coxph cluster()).",
    )
    reps: int = Field(999, ge=99, description="Area-cluster bootstrap replicates for the RMST difference.")
    min_episodes: int = Field(
        10, ge=1, description="Fewest episodes in a group-period cell (descriptives) or an area-period (RMST).",
    )
    transition: Literal["exclude", "include"] = Field(
        "exclude", description="Episodes in a treated area's phase-in periods (intervention.transition): left out or kept as post.",
    )
    within_hours: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [24.0, 48.0], description="Shares found within these hours, by group and period.",
    )
    exclude_periods: list[Window] = Field(
        default_factory=list, description="Windows of report dates left out of the fit, inclusive.",
    )


AnalysisSpec = Annotated[
    Union[
        ITSOptions,
        ControlledITSOptions,
        DiDOptions,
        StaggeredDiDOptions,
        SyntheticControlOptions,
        SurvivalDiDOptions,
    ],
    Field(discriminator="method"),
]


# ----------------------------------------------------------------------------- context
class ConcurrentChange(StrictModel):
    name: str = Field(description="What else changed, e.g. a recording-system migration.")
    date: PeriodValue = Field(description="When it started.")
    end: PeriodValue | None = Field(None, description="When it ended (default: still in force).")


class Context(StrictModel):
    concurrent_changes: list[ConcurrentChange] = Field(
        default_factory=list, description="Other changes that could explain a difference; lower the evidence level when they overlap."
    )


# ----------------------------------------------------------------------------- report
class Disclosure(StrictModel):
    preset: Literal["default", "dfe", "nhs"] = "default"
    min_count: int | None = Field(None, ge=0, description="Suppress counts from 1 to min_count - 1.")
    round_to: int | None = Field(None, ge=1, description="Round published counts to this base.")
    enabled: bool = True


class ReportSpec(StrictModel):
    audience: Literal["commissioner", "technical"] = "commissioner"
    disclosure: Disclosure = Field(default_factory=Disclosure)


# ----------------------------------------------------------------------------- the design
class Design(StrictModel):
    """A declared evaluation: intervention, data, units, outcomes, analysis plan."""

    evalkit: Literal[1] = Field(1, description="Design schema version.")
    title: str
    intervention: Intervention
    data: DataSpec
    units: Units = Field(default_factory=Units)
    outcomes: list[Outcome] = Field(min_length=1)
    primary_outcome: str | None = None
    analysis: list[AnalysisSpec] = Field(min_length=1)
    context: Context = Field(default_factory=Context)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    seed: int = Field(20240510, ge=0)
    report: ReportSpec = Field(default_factory=ReportSpec)

    _path: Path | None = PrivateAttr(None)
    _sha256: str = PrivateAttr("")

    # -- where the design came from
    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def where(self) -> str:
        """The design file's name as errors show it."""
        return str(self._path) if self._path else "design"

    @property
    def sha256(self) -> str:
        return self._sha256

    @property
    def base_dir(self) -> Path:
        return self._path.parent if self._path else Path.cwd()

    def resolve(self, relative: str) -> Path:
        """A path from the design, resolved against the design file's folder."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    # -- periods, parsed at the data's frequency
    def period(self, value, key: str):
        try:
            return parse_period(value, self.data.frequency)
        except ValueError as exc:
            raise EvalkitError(self.where, str(exc), f"write a {self.data.frequency} like 2021-04", key=key) from None

    def outcome(self, name: str) -> Outcome:
        for outcome in self.outcomes:
            if outcome.name == name:
                return outcome
        raise KeyError(name)

    @property
    def primary(self) -> Outcome:
        return self.outcome(self.primary_outcome) if self.primary_outcome else self.outcomes[0]

    @property
    def extracted_at(self):
        return None if self.data.extracted_at is None else parse_timestamp_end_of_day(self.data.extracted_at)


def _check_design(design: Design) -> None:
    """Cross-field rules that pydantic's per-field validation cannot see."""
    where = design.where
    names = [o.name for o in design.outcomes]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise EvalkitError(where, f"outcome '{dup}' is declared twice", "give each outcome its own name", key="outcomes")
    if design.primary_outcome is not None and design.primary_outcome not in names:
        raise EvalkitError(
            where, f"primary_outcome '{design.primary_outcome}' is not an outcome{did_you_mean(design.primary_outcome, names)}",
            "name one of: " + ", ".join(names), key="primary_outcome",
        )
    layout = design.data.layout
    for i, outcome in enumerate(design.outcomes):
        key = f"outcomes[{i}]"
        if layout == "panel" and outcome.column is None:
            raise EvalkitError(where, f"outcome '{outcome.name}' has no column", "add column: <name in the panel file>", key=key)
        if layout == "episodes" and outcome.measure == "continuous":
            raise EvalkitError(where, f"outcome '{outcome.name}' is continuous but the data are episodes",
                               "use measure count, duration_hours, share_found_within or median_hours_to_found", key=key)
        if layout == "episodes" and outcome.measure == "count":
            derived = outcome.derive or outcome.name
            if derived not in EPISODE_COUNTS:
                raise EvalkitError(where, f"count '{outcome.name}' cannot be derived from episodes{did_you_mean(derived, EPISODE_COUNTS)}",
                                   "name it reports, persons or repeat_reports, or add derive: reports", key=key)
        if layout == "panel" and outcome.measure in ("duration_hours",):
            raise EvalkitError(where, f"outcome '{outcome.name}' needs episode records", "use layout: episodes", key=key)
        if outcome.measure == "share_found_within" and outcome.hours is None:
            raise EvalkitError(where, f"outcome '{outcome.name}' needs hours", "add hours: 24", key=key)
    for i, spec in enumerate(design.analysis):
        key = f"analysis[{i}]"
        if spec.outcome not in names:
            raise EvalkitError(where, f"analysis outcome '{spec.outcome}' is not declared{did_you_mean(spec.outcome, names)}",
                               "add it under outcomes or name one of: " + ", ".join(names), key=key + ".outcome")
    if layout == "episodes":
        for role in ("unit", "reported_at"):
            if role not in design.data.columns:
                raise EvalkitError(where, f"episodes need a '{role}' column", f"add data.columns.{role}: <column name>", key="data.columns")
    else:
        if "time" not in design.data.columns:
            raise EvalkitError(where, "a panel needs a 'time' column", "add data.columns.time: <column> (or [year, month])", key="data.columns")
    # every period the design names must parse at the data's frequency
    if design.intervention.start is not None:
        design.period(design.intervention.start, "intervention.start")
    for unit, value in design.units.adoption.items():
        design.period(value, f"units.adoption.{unit}")
    if design.data.window is not None:
        start = design.period(design.data.window.start, "data.window.start")
        end = design.period(design.data.window.end, "data.window.end")
        if end < start:
            raise EvalkitError(where, f"window ends ({end}) before it starts ({start})", "swap data.window.start and end", key="data.window")
    for i, change in enumerate(design.context.concurrent_changes):
        design.period(change.date, f"context.concurrent_changes[{i}].date")
        if change.end is not None:
            design.period(change.end, f"context.concurrent_changes[{i}].end")
    if design.data.extracted_at is not None:
        try:
            design.extracted_at
        except (ValueError, TypeError):
            raise EvalkitError(where, f"extracted_at '{design.data.extracted_at}' is not a date",
                               "write it as 2024-03-31 or 2024-03-31T23:59", key="data.extracted_at") from None
    treated = set(map(str, design.units.treated))
    if treated and design.intervention.start is None:
        raise EvalkitError(where, "units.treated adopt at intervention.start, which is missing",
                           "add intervention.start, or give each unit a date under units.adoption", key="intervention.start")
    both = treated & set(map(str, design.units.adoption))
    if both:
        raise EvalkitError(where, f"unit '{sorted(both)[0]}' is both in units.treated and units.adoption",
                           "list it in one place only", key="units")
    if isinstance(design.units.comparison, list):
        clash = set(map(str, design.units.comparison)) & (treated | set(map(str, design.units.adoption)))
        if clash:
            raise EvalkitError(where, f"unit '{sorted(clash)[0]}' is both treated and a comparison unit",
                               "remove it from units.comparison", key="units.comparison")
    single_series = layout == "panel" and "unit" not in design.data.columns
    if single_series:
        if treated or design.units.adoption or design.units.adoption_column:
            raise EvalkitError(where, "the data are one series (no data.columns.unit), so there are no units to treat",
                               "remove units, or map data.columns.unit", key="units")
        if design.intervention.start is None:
            raise EvalkitError(where, "a single series needs the interruption date", "add intervention.start", key="intervention.start")
    elif not treated and not design.units.adoption and design.units.adoption_column is None:
        raise EvalkitError(where, "no unit is treated", "list units under units.treated or units.adoption", key="units")


def _format_loc(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _pydantic_to_evalkit(exc: ValidationError, where: str, raw: Any) -> EvalkitError:
    err = exc.errors(include_url=False)[0]
    # drop the discriminator tag pydantic inserts into union locations
    loc = tuple(p for p in err["loc"] if p not in ("its", "controlled_its", "did", "staggered_did",
                                                  "synthetic_control", "survival_did"))
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "unknown_key":
        key = _format_loc(loc + (ctx["key"],))
        return EvalkitError(where, f"unknown key '{ctx['key']}'{ctx.get('hint', '')}", "remove it or correct its spelling", key=key)
    if kind == "missing":
        return EvalkitError(where, f"required key '{loc[-1]}' is missing", f"add {_format_loc(loc)}", key=_format_loc(loc))
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        methods = ("its", "controlled_its", "did", "staggered_did", "synthetic_control", "survival_did")
        return EvalkitError(where, f"unknown method '{tag}'{did_you_mean(tag, methods)}",
                            "use one of: " + ", ".join(methods), key=_format_loc(loc + ("method",)))
    if kind == "union_tag_not_found":
        return EvalkitError(where, "an analysis has no method", "add method: its (or another method)", key=_format_loc(loc))
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        value = err.get("input")
        options = [s.strip().strip("'") for s in str(expected).replace(" or ", ", ").split(",")]
        return EvalkitError(where, f"'{value}' is not allowed{did_you_mean(str(value), options)}",
                            f"use {expected}", key=_format_loc(loc))
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
    return EvalkitError(where, f"{err['msg']}{shown}", "correct the value", key=_format_loc(loc) or None)


def _read_design_text(path: Path) -> Any:
    where = str(path)
    if not path.exists():
        raise EvalkitError(where, "the design file does not exist", "check the path")
    if path.is_dir():
        raise EvalkitError(where, "is a folder, not a design file", "name the .yaml or .toml file")
    try:
        raw_bytes = path.read_bytes()
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise EvalkitError(where, "the design file is not UTF-8 text", "save it as UTF-8 YAML or TOML") from None
    if path.suffix.lower() == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise EvalkitError(where, f"not valid TOML ({exc})", "fix the syntax") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise EvalkitError(where, f"not valid YAML ({problem})", "fix the syntax", key=line) from None


def design_from_mapping(raw: Any, path: Path | None = None, sha256: str = "") -> Design:
    """Validate a mapping (as parsed from YAML or TOML) into a :class:`Design`."""
    where = str(path) if path else "design"
    if not isinstance(raw, dict):
        raise EvalkitError(where, "the design is not a mapping of keys to values",
                           "start from designs/spoc_rollout.yaml (keys: evalkit, title, intervention, data, ...)")
    try:
        design = Design.model_validate(raw)
    except ValidationError as exc:
        raise _pydantic_to_evalkit(exc, where, raw) from None
    design._path = path
    design._sha256 = sha256
    _check_design(design)
    return design


def load_design(path) -> Design:
    """Load and validate a design file (YAML or TOML).

    Parameters
    ----------
    path : str or Path
        The design file.

    Returns
    -------
    Design

    Raises
    ------
    EvalkitError
        On any problem, with the file and key at fault.
    """
    path = Path(path)
    raw = _read_design_text(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return design_from_mapping(raw, path=path, sha256=sha)


def design_json_schema() -> str:
    """The design file's JSON Schema, generated from the same model that validates it."""
    schema = Design.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "evalkit design file"
    return json.dumps(schema, indent=2, sort_keys=True)


__all__ = ["Design", "load_design", "design_from_mapping", "design_json_schema", "FREQUENCIES", "MECHANISMS"]
