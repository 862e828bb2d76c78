"""The catalogue of methods: one record per method, read by every layer that needs to know one.

Adding a method means one package under evalkit/methods/ and one record here
(docs/contributing.md); tests/test_catalog.py checks that the design's option models,
the methods' ``fit`` functions, the checks each method can emit and the report's words
all agree with this file. It holds names and words only (no code from higher layers), so
the design file model, the estimators, the evidence ladder and the report all read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodRecord:
    """Everything evalkit needs to know about one method, in one place.

    Attributes
    ----------
    name : str
        ``analysis[].method`` in the design file.
    module : str
        The module under ``evalkit.methods`` whose ``fit(design, data, spec, index)`` fits it.
    options : str
        The options model in evalkit.design (pydantic, unknown keys refused at load).
    headline_estimand : str
        The estimand its findings and the headline rest on.
    level, level_label : int, str
        Its design level on the Maryland scale before any check lowers it, and why.
    display_name : str
        Its technical name in the report.
    does : str
        What it does, in plain words (commissioner text).
    references : tuple of str
        The papers the report cites for it.
    checks : tuple of str
        Every check name it can emit (each has a meaning in :data:`CHECKS`).
    figures : tuple of str
        The figures the report draws from its series.
    measures : tuple of str
        The outcome measures it can fit (``outcomes[].measure``); the design refuses any
        other when it loads, so a plan never fails half-way through a run on this.
    """

    name: str
    module: str
    options: str
    headline_estimand: str
    level: int
    level_label: str
    display_name: str
    does: str
    references: tuple = ()
    checks: tuple = ()
    figures: tuple = ()
    measures: tuple = ()


#: the unit-period outcomes (a duration is per episode and censored: only survival_did fits it)
_PERIOD_MEASURES = ("count", "continuous", "share_found_within", "median_hours_to_found")

_ITS_REFERENCES = (
    "Lopez Bernal J, Cummins S, Gasparrini A (2017). Interrupted time series regression for the evaluation of "
    "public health interventions: a tutorial. International Journal of Epidemiology 46(1):348-355.",
    "Linden A (2015). Conducting interrupted time-series analysis for single- and multiple-group comparisons. "
    "The Stata Journal 15(2):480-500.",
    "Newey WK, West KD (1994). Automatic lag selection in covariance matrix estimation. Review of Economic "
    "Studies 61(4):631-653.",
    "Kiefer NM, Vogelsang TJ (2005). A new asymptotic theory for heteroskedasticity-autocorrelation robust "
    "tests. Econometric Theory 21(6):1130-1164.",
    "Lazarus E, Lewis DJ, Stock JH, Watson MW (2018). HAR inference: recommendations for practice. Journal of "
    "Business & Economic Statistics 36(4):541-559.",
)

METHODS: dict[str, MethodRecord] = {record.name: record for record in (
    MethodRecord(
        name="its", module="its.its", options="ITSOptions", headline_estimand="cumulative_effect",
        level=2, level_label="trend-adjusted before and after: cannot rule out other changes at the same time",
        display_name="interrupted time series",
        does="before and after in the adopting areas, allowing for the trend and season",
        references=_ITS_REFERENCES,
        checks=("minimum_data", "overdispersion", "autocorrelation", "seasonality"),
        figures=("its", "acf"),
        measures=_PERIOD_MEASURES,
    ),
    MethodRecord(
        name="controlled_its", module="its.controlled_its", options="ControlledITSOptions",
        headline_estimand="cumulative_effect", level=3, level_label="compared with similar areas",
        display_name="controlled interrupted time series",
        does="before and after, against areas that did not adopt",
        references=_ITS_REFERENCES,
        checks=("minimum_data", "overdispersion", "autocorrelation", "pre_trends"),
        figures=("its",),
        measures=_PERIOD_MEASURES,
    ),
    MethodRecord(
        name="did", module="did.did", options="DiDOptions", headline_estimand="att",
        level=3, level_label="compared with similar areas", display_name="difference-in-differences",
        does="compared with areas that had not yet started, all adoption dates in one model",
        references=(
            "Wooldridge JM (2023). Simple approaches to nonlinear difference-in-differences with panel data. "
            "The Econometrics Journal 26(3):C31-C66.",
            "Goodman-Bacon A (2021). Difference-in-differences with variation in treatment timing. Journal of "
            "Econometrics 225(2):254-277.",
            "MacKinnon JG, Webb MD (2017). Wild bootstrap inference for wildly different cluster sizes. Journal of "
            "Applied Econometrics 32(2):233-254.",
        ),
        checks=("zero_counts", "pre_trends", "few_treated", "bacon_decomposition"),
        figures=("event_study",),
        measures=("count", "continuous"),
    ),
    MethodRecord(
        name="staggered_did", module="staggered.staggered", options="StaggeredDiDOptions", headline_estimand="att_simple",
        level=3, level_label="compared with similar areas, with adoption at different dates",
        display_name="staggered difference-in-differences",
        does="compared with areas that had not yet started, each adoption date separately",
        references=(
            "Callaway B, Sant'Anna PHC (2021). Difference-in-differences with multiple time periods. Journal of "
            "Econometrics 225(2):200-230.",
            "Sant'Anna PHC, Zhao J (2020). Doubly robust difference-in-differences estimators. Journal of "
            "Econometrics 219(1):101-122.",
        ),
        checks=("pre_trends", "few_treated", "overlap", "missing_values", "sparse_ratio"),
        figures=("event_study",),
        measures=_PERIOD_MEASURES,
    ),
    MethodRecord(
        name="synthetic_control", module="synth.synth", options="SyntheticControlOptions", headline_estimand="att",
        level=3, level_label="compared with a weighted blend of similar areas", display_name="synthetic control",
        does="compared with a weighted blend of areas that did not adopt",
        references=(
            "Abadie A, Diamond A, Hainmueller J (2010). Synthetic control methods for comparative case studies. "
            "Journal of the American Statistical Association 105(490):493-505.",
            "Abadie A (2021). Using synthetic controls: feasibility, data requirements, and methodological aspects. "
            "Journal of Economic Literature 59(2):391-425.",
        ),
        checks=("pre_period_fit", "convex_hull", "placebo_resolution", "placebo_duplicates"),
        figures=("synthetic_control",),
        measures=("count", "continuous"),
    ),
    MethodRecord(
        name="survival_did", module="survival.survival", options="SurvivalDiDOptions", headline_estimand="hazard_ratio_did",
        level=3, level_label="compared with similar areas", display_name="time-to-found difference-in-differences",
        does="how soon children were found, compared with areas that did not adopt",
        references=(
            "Cox DR (1972). Regression models and life-tables. Journal of the Royal Statistical Society B "
            "34(2):187-220.",
            "Royston P, Parmar MKB (2013). Restricted mean survival time: an alternative to the hazard ratio. BMC "
            "Medical Research Methodology 13:152.",
            "Morris TP et al. (2019). Proposals on Kaplan-Meier plots in medical research and a survey of "
            "stakeholder views: KMunicate. BMJ Open 9:e030215.",
        ),
        checks=("proportional_hazards", "few_clusters", "censoring", "placebo"),
        figures=("kaplan_meier",),
        measures=("duration_hours",),
    ),
)}

#: every check evalkit can emit (by a method, the pipeline or the data layer), with what it means
CHECKS: dict[str, str] = {
    "minimum_data": "Enough time points either side of the change to tell a trend from a jump.",
    "overdispersion": "Whether the counts vary more than a simple count model expects; if they do, intervals must widen.",
    "autocorrelation": "Whether one period's count follows on from the last; if it does, intervals must allow for it.",
    "seasonality": "Whether the usual seasonal rise and fall is accounted for, so it is not mistaken for an effect.",
    "pre_trends": "Whether the adopting and comparison areas were moving in step before the change; if not, the "
                  "comparison may mislead.",
    "placebo": "Whether a fake intervention date or area shows an 'effect' too; if it does, the real one is doubtful.",
    "few_treated": "How many areas adopted; with few, ordinary standard errors are too small and special inference is "
                   "needed.",
    "few_clusters": "How many areas the time-to-found comparison rests on; with few, its intervals are less reliable.",
    "censoring": "How many episodes were still open when the data were extracted; they count as missing at least "
                 "that long.",
    "bacon_decomposition": "Whether a simple two-way comparison leans on already-treated areas as controls, which can "
                           "bias it.",
    "proportional_hazards": "Whether the change in how soon children are found is steady over the hours missing, as "
                            "the model assumes.",
    "moderators": "Whether every subgroup could be analysed.",
    "placebo_duplicates": "Whether some comparison areas are identical, which makes their placebo tests uninformative.",
    "missing_values": "Whether areas or periods had to be left out because values were missing.",
    "zero_counts": "Whether some areas or periods had no reports at all, which the model has to handle.",
    "pre_period_fit": "How closely the blend of other areas tracked this area before the change.",
    "convex_hull": "Whether this area lies within the range of the comparison areas; if not, no blend can match it.",
    "placebo_resolution": "Whether there are enough comparison areas for the placebo test to be able to show an "
                          "effect.",
    "adoption_dates": "Whether adoption dates fall inside a month, so the month of adoption mixes days before and "
                      "after.",
    "local_time": "Which clock the extract's times are on, and how times at a clock change (an hour that happens "
                  "twice in autumn, or not at all in spring) were read.",
    "duration_resolution": "How finely the data record times: SSDA903 returns hold dates only, so time to found is "
                           "counted in whole days.",
    "missing_code": "Whether some rows of the returns' Missing table had no usable missing/away code and were left "
                    "out.",
    "dfe_caveat": "The DfE's own warning that some authorities record every incident as missing, none as away.",
    "dfe_suppressed": "Whether the published figures had suppressed cells that had to be left out.",
    "dfe_codes_unknown": "Whether the published file used authority codes newer than evalkit's lookup.",
    **{f"dfe_rule_{code}": f"How many rows of the returns' Missing table broke DfE validation rule {code} and were left "
                           "out." for code in ("564", "567", "570", "574", "577", "581", "586")},
    "overlap": "Whether adopting and comparison areas are alike enough in their characteristics to be compared.",
    "sparse_ratio": "Whether the counts before adoption are large enough for a ratio to be estimated reliably.",
}

#: checks whose failure lowers the design level (pre-trends, placebo tests), when calibrated
LEVEL_CHECKS = ("pre_trends", "placebo")


def method(name: str) -> MethodRecord:
    """The record of a method (KeyError for an unknown name: the design refuses those first)."""
    return METHODS[name]


__all__ = ["MethodRecord", "METHODS", "CHECKS", "LEVEL_CHECKS", "method"]
