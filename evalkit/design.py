"""The design file: a validated model of the declared evaluation.

The design is declared before outcome data arrive (SPEC.md, "Design file"). Unknown keys
are errors with a "did you mean" hint; relative paths resolve against the design file's
folder; periods are parsed at the data's frequency.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
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

from .catalog import METHODS
from .errors import EvalkitError, did_you_mean
from . import mechanisms as _mechanisms
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
#: what intervention.mechanism accepts: the review's mechanisms and the named schemes (evalkit.mechanisms)
MECHANISM_NAMES = _mechanisms.KNOWN

#: data.source of a design whose data are given in memory (evalkit.run(design, data=frame))
IN_MEMORY = "(in memory)"

UnitId = Union[int, str]
PeriodValue = Union[int, str, dt.date]


class StrictModel(BaseModel):
    """A design section: unknown keys are refused with the closest known key as a hint."""

    # allow_inf_nan=False: a cost, rate or threshold of .inf or .nan is never a value a user means
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False, allow_inf_nan=False)

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
    mechanism: Union[Literal[MECHANISM_NAMES], list[Literal[MECHANISM_NAMES]]] = Field(  # type: ignore[valid-type]
        "other", description="The scoping review's mechanism(s) or named scheme(s) this intervention works "
        "through: one name or a list (docs/mechanisms.md); the first is the main one.",
    )
    mechanism_description: str | None = Field(
        None, description="In plain words, the mechanism when `other` is declared.")
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
    cost_per_episode_source: str = Field(
        "Shalev Greene K, Pakes F (2014), The cost of missing person investigations, Policing 8(1):27-34: "
        "the middle of GBP 1,325-2,415 per medium-risk episode",
        description="Where cost_per_episode comes from, as the report cites it.")
    cost_price_year: int = Field(
        2014, ge=1900, le=2100, description="The price year of cost_per_episode and annual_cost (not uprated).")

    @field_validator("mechanism", mode="before")
    @classmethod
    def _known_mechanism(cls, value):
        for name in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            if isinstance(name, str) and name not in MECHANISM_NAMES:
                raise PydanticCustomError(
                    "unknown_mechanism", "unknown mechanism '{name}'{hint}; one of {known} (docs/mechanisms.md)",
                    {"name": name, "hint": did_you_mean(name, list(MECHANISM_NAMES)),
                     "known": ", ".join(MECHANISM_NAMES)})
        if isinstance(value, list) and not value:
            raise PydanticCustomError("empty_mechanism", "mechanism is an empty list; name at least one")
        return value


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
                        "no password in the URL (EVALKIT_DB_PASSWORD, sent only to hosts in EVALKIT_DB_PASSWORD_HOSTS; "
                        "${EVALKIT_DB_NAME} may fill the database).")
    query: str | None = Field(None, description="SQL text when source is a database; :name placeholders take data.params.")
    table: str | None = Field(None, description="A table (or schema.table) to read when source is a database.")
    params: dict[str, SQLParam] = Field(default_factory=dict, description="Values bound to the query's :name placeholders.")
    layout: Literal["episodes", "panel", "ssda903", "dfe_published"] = Field(
        "episodes", description="episodes | panel | ssda903 (a folder of SSDA903 returns) | dfe_published (the DfE "
        "'Children looked after' open-data CSV); docs/data-ssda903.md.")
    include_away: bool = Field(False, description="ssda903: count A (away from placement without authorisation) "
                               "as well as M (missing).")
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
    date_format: str | dict[Literal["reported_at", "found_at", "time"], str] | None = Field(
        None, description="How the data's dates are written, as a strptime format (e.g. '%d/%m/%Y %H:%M' for UK "
        "day-first dates): one format for every date column, or one per column role (reported_at, found_at, time). "
        "Without it only ISO 8601 (2021-04-03 14:22) is read; ambiguous dates such as 01/04/2021 are refused.",
    )
    timezone: str | None = Field(
        None, description="episodes: the IANA time zone (e.g. Europe/London) of date-times written without one: they "
        "are read as that zone's wall-clock time, so durations across a clock change are real elapsed hours, and "
        "periods follow the local calendar date. Without it they are taken as written (docs/police-extracts.md).",
    )

    @field_validator("extracted_at", mode="before")
    @classmethod
    def _extracted_at_is_a_date(cls, value):
        # YAML reads 20240331 as a number, which pydantic would take as seconds since 1970
        if isinstance(value, (bool, int, float)):
            raise PydanticCustomError("extracted_at_number", "extracted_at is the number {value}, not a date; write it "
                                      "as 2024-03-31 or 2024-03-31T23:59", {"value": str(value)})
        return value

    @field_validator("date_format")
    @classmethod
    def _formats_parse(cls, value):
        formats = value.values() if isinstance(value, dict) else ([] if value is None else [value])
        for fmt in formats:
            probe = dt.datetime(2021, 4, 3, 14, 22, 5, tzinfo=dt.timezone.utc)
            try:
                if "%" not in fmt or dt.datetime.strptime(probe.strftime(fmt), fmt) is None:
                    raise ValueError
            except (ValueError, TypeError):
                raise PydanticCustomError("date_format", "'{fmt}' is not a date format; write it with strptime codes, "
                                          "e.g. '%d/%m/%Y %H:%M'", {"fmt": str(fmt)[:40]}) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_is_known(cls, value):
        if value is None:
            return value
        import zoneinfo

        # "localtime" is this machine's own zone, not a name: the same design would read differently elsewhere
        names = zoneinfo.available_timezones() - {"localtime", "posixrules"}
        if value not in names:
            raise PydanticCustomError("timezone", "'{name}' is not an IANA time zone{hint}; write one such as "
                                      "Europe/London", {"name": str(value)[:40], "hint": did_you_mean(str(value), sorted(names))})
        return value

    def date_format_for(self, role: Literal["reported_at", "found_at", "time"]) -> str | None:
        """The declared format of the column with this role (None: ISO 8601 only)."""
        if isinstance(self.date_format, dict):
            return self.date_format.get(role)
        return self.date_format

    @model_validator(mode="after")
    def _database_keys(self):
        # the source itself is never echoed here: it may hold a password (rules: evalkit/data/sql.py)
        from .source_urls import UnsafeSource, check_source

        try:
            database = check_source(self.source) is not None
        except UnsafeSource as exc:
            raise PydanticCustomError(exc.code, exc.message) from None
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
            if extracted.tzinfo is not None:
                extracted = extracted.tz_convert(self.timezone or "UTC").tz_localize(None)
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
    aggregate: Literal["police_force_area"] | None = Field(
        None, description="ssda903 / dfe_published: count each local authority in its police force area "
        "(examples/geography/la_to_pfa.csv).")
    merge_city_of_london: bool = Field(True, description="With aggregate: count the City of London in the "
                                       "Metropolitan Police area.")


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
    small_sample: Literal["fixed_b_ar1", "fixed_b", "none"] = Field(
        "fixed_b_ar1", description="With errors: newey_west. fixed_b: lags auto = round(1.3 sqrt(T)) - 1 (Lazarus et al. "
        "2018) and every interval and p-value from the fixed-b null distribution of its t statistic, simulated for the "
        "design's own regressors with independent errors (Kiefer & Vogelsang 2005). fixed_b_ar1 (default): the same, "
        "simulated with AR(1) errors at the residuals' median-unbiased lag-1 coefficient (for counts, of the "
        "extra-Poisson part); holds 95% on short, persistent monthly series (docs/methods/its.md). none: "
        "the Newey-West of published tutorials (lags auto = floor(4 (T/100)^(2/9)), normal reference for counts, "
        "t(n - k) for gaussian), which covers 80-90% there (docs/methods/its.md).",
    )
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
    comparison_fit: Literal["panels", "pooled"] = Field(
        "panels", description="panels: every comparison unit is its own series in one regression, Newey-West within "
        "each (Stata's itsa); pooled: the comparison units are first summed (counts) or averaged into one series.",
    )


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
    # did takes only what it does: covariates, estimation and the multiplier bootstrap belong to
    # staggered_did and are refused when the design loads, with a "did you mean"
    inference: Literal["auto", "analytic", "randomization", "wild_cluster"] = Field(
        "auto", description="auto: randomization with fewer than 20 adopting areas (where cluster-robust intervals "
        "cover too little: 80.5% with 3 of 15 areas, 89.9% with 7 of 13), analytic from 20; analytic: cluster-robust "
        "by area; randomization: permute adoption dates across areas, interval by test inversion; wild_cluster: "
        "restricted wild cluster bootstrap (linear family).",
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
    inference: Literal["auto", "analytic", "multiplier_bootstrap", "randomization"] = Field(
        "auto", description="auto: randomization inference (adoption dates permuted across areas, interval by test "
        "inversion) below 20 adopting areas, analytic influence-function errors from 20; or analytic, the "
        "multiplier bootstrap, or randomization as declared (docs/methods/staggered_did.md)."
    )
    reps: int = Field(999, ge=99, description="Multiplier-bootstrap draws (also used for the event study's uniform band); "
                      "random permutations of the adoption dates when there are too many to enumerate.")
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
    inference: Literal["auto", "randomization", "t", "bootstrap"] = Field(
        "auto", description="Restricted-mean difference's interval and p-value (the hazard ratio's follow se): auto = "
        "randomization below 20 adopting areas, t from 20; randomization: re-assign which areas adopted, interval "
        "by test inversion; t: t reference on the area-level changes (Welch); bootstrap: area-cluster bootstrap.",
    )
    reps: int = Field(999, ge=99, description="Random assignments (randomization) or bootstrap replicates for the RMST difference.")
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
#: disclosure presets (DOMAIN.md): (suppress counts below, round to)
DISCLOSURE_PRESETS = {"default": (10, 5), "dfe": (1, 10), "nhs": (8, 5)}


class Disclosure(StrictModel):
    preset: Literal["default", "dfe", "nhs"] = "default"
    min_count: int | None = Field(None, ge=0, description="Suppress counts from 1 to min_count - 1.")
    round_to: int | None = Field(None, ge=1, description="Round published counts to this base.")
    enabled: bool = True

    def resolved(self) -> tuple[int, int, bool]:
        """(min_count, round_to, enabled): the preset, then the declared overrides."""
        min_count, round_to = DISCLOSURE_PRESETS[self.preset]
        return (self.min_count if self.min_count is not None else min_count,
                self.round_to if self.round_to is not None else round_to, self.enabled)


class DiagnoseModel(StrictModel):
    """A model to diagnose a study not yet run (``evalkit diagnose --model synthetic``; docs/diagnosis.md)."""

    areas: int = Field(ge=2, description="Areas in all (adopting and comparison); named area01, area02, ...")
    start: PeriodValue = Field(description="First period of the simulated data.")
    periods: int = Field(ge=8, description="Periods of simulated data.")
    adoption: dict[str, int] = Field(description="Adoption period -> number of areas adopting then (the rest never adopt).")
    baseline_rate: float = Field(gt=0, description="Mean reports per area and period before adoption.")
    area_spread: float = Field(0.3, ge=0, description="SD of the areas' log mean rates.")
    overdispersion: float = Field(0.05, ge=0, description="Variance of the gamma shock on each area-period's rate.")
    repeat_persistence: float = Field(0.4, ge=0, lt=1, description="Share of episodes by a child already reported in the area.")
    median_hours: float = Field(8.0, gt=0, description="Median hours to found (Weibull).")
    weibull_shape: float = Field(0.8, gt=0, description="Weibull shape of hours to found (below 1: hazard falls).")
    autocorrelation: float = Field(
        0.0, ge=0, lt=1, description="AR(1) coefficient of each area's log rate shocks from one period to the next "
        "(0: independent gamma shocks; above 0: log-normal shocks with the same variance, persistent as real series are).",
    )


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
    diagnose: DiagnoseModel | None = Field(None, description="A model for evalkit diagnose --model synthetic.")

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


def _check_date_keys_apply(design: Design) -> None:
    """data.date_format and data.timezone are refused where they would be silently ignored: the
    ssda903 and dfe_published layouts read their own dates (SSDA903's dd/mm/YYYY, the DfE's
    years), and a panel's time column holds periods, not times of day."""
    layout = design.data.layout
    for name in ("date_format", "timezone"):
        if getattr(design.data, name) is not None and (layout in ("ssda903", "dfe_published")
                                                       or (layout == "panel" and name == "timezone")):
            what = "SSDA903 returns' own dd/mm/YYYY dates" if layout == "ssda903" else (
                "the DfE's own years" if layout == "dfe_published" else "periods, not times of day")
            raise EvalkitError(design.where, f"data.{name} does not apply to layout {layout}, which reads {what}",
                               f"remove data.{name}", key=f"data.{name}")


def _check_extracted_at_on_the_local_clock(design: Design) -> None:
    """With data.timezone, data.extracted_at is put on UTC (a zone-less value read as local time) and
    on the local calendar (for periods): both must stay inside the years evalkit's nanosecond clock
    holds. 2262-04-11 read as New York time ends past it; refused here, in one line with its key,
    not as an internal error while the data are read."""
    import zoneinfo

    import pandas as pd

    extracted, timezone = design.extracted_at, design.data.timezone
    if extracted is None or timezone is None:
        return
    zone = zoneinfo.ZoneInfo(timezone)
    try:
        if extracted.tzinfo is None:  # the rule of evalkit.data.episodes.local_to_utc: fold=0
            extracted = pd.Timestamp(extracted.to_pydatetime(warn=False).replace(tzinfo=zone, fold=0))
        extracted.tz_convert("UTC").as_unit("ns")
        extracted.tz_convert(zone).tz_localize(None).as_unit("ns")
    except (OverflowError, ValueError):  # pandas' OutOfBoundsDatetime is a ValueError
        raise EvalkitError(design.where, f"extracted_at '{design.data.extracted_at}' is outside the years 1678-2261 once "
                           f"read as {timezone} time", "correct data.extracted_at", key="data.extracted_at") from None


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
    if design.units.aggregate and layout not in ("ssda903", "dfe_published"):
        raise EvalkitError(where, f"units.aggregate counts local-authority data in force areas, but the layout is {layout}",
                           "use layout ssda903 or dfe_published, or remove units.aggregate", key="units.aggregate")
    if design.data.include_away and layout != "ssda903":
        raise EvalkitError(where, f"data.include_away applies to SSDA903 returns, but the layout is {layout}",
                           "remove data.include_away", key="data.include_away")
    _check_date_keys_apply(design)
    for i, outcome in enumerate(design.outcomes):
        key = f"outcomes[{i}]"
        if layout in ("panel", "dfe_published") and outcome.column is None:
            raise EvalkitError(where, f"outcome '{outcome.name}' has no column", "add column: <name in the panel file>", key=key)
        if layout in ("episodes", "ssda903") and outcome.measure == "continuous":
            raise EvalkitError(where, f"outcome '{outcome.name}' is continuous but the data are episodes",
                               "use measure count, duration_hours, share_found_within or median_hours_to_found", key=key)
        if layout in ("episodes", "ssda903") and outcome.measure == "count":
            derived = outcome.derive or outcome.name
            if derived not in EPISODE_COUNTS:
                raise EvalkitError(where, f"count '{outcome.name}' cannot be derived from episodes{did_you_mean(derived, EPISODE_COUNTS)}",
                                   "name it reports, persons or repeat_reports, or add derive: reports", key=key)
        if layout in ("panel", "dfe_published") and outcome.measure in ("duration_hours",):
            raise EvalkitError(where, f"outcome '{outcome.name}' needs episode records", "use layout: episodes", key=key)
        if outcome.measure == "share_found_within" and outcome.hours is None:
            raise EvalkitError(where, f"outcome '{outcome.name}' needs hours", "add hours: 24", key=key)
    for i, spec in enumerate(design.analysis):
        key = f"analysis[{i}]"
        if spec.outcome not in names:
            raise EvalkitError(where, f"analysis outcome '{spec.outcome}' is not declared{did_you_mean(spec.outcome, names)}",
                               "add it under outcomes or name one of: " + ", ".join(names), key=key + ".outcome")
        _check_method_fits_outcome(design, spec, key)
    if layout == "episodes":
        for role in ("unit", "reported_at"):
            if role not in design.data.columns:
                raise EvalkitError(where, f"episodes need a '{role}' column", f"add data.columns.{role}: <column name>", key="data.columns")
    elif layout == "panel":
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
            _ = design.extracted_at  # parsing it is the check
        except (ValueError, TypeError):
            raise EvalkitError(where, f"extracted_at '{design.data.extracted_at}' is not a date",
                               "write it as 2024-03-31 or 2024-03-31T23:59", key="data.extracted_at") from None
        _check_extracted_at_on_the_local_clock(design)
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


def _check_method_fits_outcome(design: Design, spec, key: str) -> None:
    """Refuse at load an analysis whose method cannot fit its outcome, or whose options clash.

    The fit would refuse them too, but only after the data are read and earlier analyses
    are fitted; the catalogue says which measures each method fits.
    """
    outcome = design.outcome(spec.outcome)
    record = METHODS.get(spec.method)
    if record is None or not record.measures:
        return
    if outcome.measure not in record.measures:
        if outcome.measure == "duration_hours":
            fix = ("use method: survival_did for hours to found, or a monthly outcome with measure: "
                   "median_hours_to_found or share_found_within")
        else:
            others = [name for name, r in METHODS.items() if outcome.measure in r.measures]
            fix = (f"use a method that fits it ({', '.join(others)}), or a {' or '.join(record.measures)} outcome"
                   if others else f"use a {' or '.join(record.measures)} outcome")
        raise EvalkitError(design.where, f"{spec.method} cannot fit outcome '{outcome.name}' (measure: {outcome.measure})",
                           fix, key=key + ".outcome")
    if spec.method == "did":
        family = spec.family or ("poisson" if outcome.measure == "count" else "linear")
        if family == "poisson" and outcome.measure != "count":
            raise EvalkitError(design.where, f"family: poisson needs a count outcome, and '{outcome.name}' is "
                               f"{outcome.measure}", "use family: linear, or declare the outcome as measure: count",
                               key=key + ".family")
        if family == "poisson" and spec.inference == "wild_cluster":
            why = "" if spec.family else f" (the default family for count outcome '{outcome.name}' is poisson)"
            raise EvalkitError(design.where, f"inference: wild_cluster is for the linear TWFE{why}",
                               "use inference: randomization for the Poisson DiD, or family: linear", key=key + ".inference")
    if spec.method in ("its", "controlled_its") and spec.errors == "prais_winsten":
        if spec.method == "controlled_its":
            raise EvalkitError(design.where, "errors: prais_winsten is not available for controlled_its (stacked series)",
                               "use errors: newey_west or none", key=key + ".errors")
        family = spec.family or ("quasipoisson" if outcome.measure == "count" else "gaussian")
        if family != "gaussian":
            why = "" if spec.family else f" (the default family for count outcome '{outcome.name}' is quasipoisson)"
            raise EvalkitError(design.where, f"errors: prais_winsten applies to the gaussian family only{why}",
                               "use errors: newey_west for counts, or family: gaussian", key=key + ".errors")


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
    loc = tuple(p for p in err["loc"] if p not in METHODS)
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "unknown_key":
        key = _format_loc(loc + (ctx["key"],))
        return EvalkitError(where, f"unknown key '{ctx['key']}'{ctx.get('hint', '')}", "remove it or correct its spelling", key=key)
    if kind == "missing":
        return EvalkitError(where, f"required key '{loc[-1]}' is missing", f"add {_format_loc(loc)}", key=_format_loc(loc))
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        methods = tuple(METHODS)
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


class _DesignLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (YAML would keep the last
    silently: a second ``analysis:`` would replace the first plan), as TOML does."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                try:
                    key = self.construct_object(key_node, deep=True)
                    hash(key)
                except (TypeError, yaml.YAMLError):
                    continue  # an unhashable key: the base loader reports it
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"key '{str(key)[:40]}' is written twice (first on line {seen[key] + 1})", key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_DesignLoader)  # noqa: S506 - a SafeLoader subclass


def _read_design_text(path: Path) -> Any:
    where = str(path)
    if not path.exists():
        raise EvalkitError(where, "the design file does not exist", "check the path")
    if path.is_dir():
        raise EvalkitError(where, "is a folder, not a design file", "name the .yaml or .toml file")
    if not path.is_file():
        raise EvalkitError(where, "is not a regular file (a pipe or a device?)", "name the .yaml or .toml file")
    try:
        raw_bytes = path.read_bytes()
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise EvalkitError(where, "the design file is not UTF-8 text", "save it as UTF-8 YAML or TOML") from None
    try:
        if path.suffix.lower() == ".toml":
            try:
                return tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise EvalkitError(where, f"not valid TOML ({exc})", "fix the syntax") from None
        return _load_yaml(text)
    except RecursionError:
        raise EvalkitError(where, "the design is nested too deeply to read", "write a design like designs/spoc_rollout.yaml"
                           ) from None
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


def design_from_dict(mapping: dict, base_dir=None) -> Design:
    """A design from a mapping with the design file's keys, for a notebook (no file needed).

    ``data.source`` may be left out when the data will be passed in memory
    (``evalkit.run(design, data=frame)``); relative paths resolve against ``base_dir``
    (default: the current folder). Errors are the design file's, keyed the same way.
    """
    import copy

    raw = copy.deepcopy(mapping)
    if isinstance(raw, dict) and isinstance(raw.get("data"), dict) and "source" not in raw["data"]:
        raw["data"]["source"] = IN_MEMORY
    design = design_from_mapping(raw)
    if base_dir is not None:
        design._path = Path(base_dir) / "design"  # resolve() is relative to the design's folder
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


__all__ = ["Design", "load_design", "design_from_mapping", "design_from_dict", "design_json_schema", "FREQUENCIES",
           "MECHANISMS"]
