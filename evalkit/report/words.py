"""The report's plain words for commissioners: what each check means, what each analysis
does, what the evidence means and what would make it stronger, and the cost in pounds.

Commissioners act on the top of the report, so it carries no test statistics (no "p =",
"W =", Wald or Breusch-Godfrey): those stay in the assumption-check table and the technical
annex. Every number here carries its unit, and every analysis is named by what it does
("compared with areas that had not yet started") before its technical name.
docs/evidence-language.md is the reader's version of these rules. Pure functions of
Results: nothing here fits a model.
"""

from __future__ import annotations

import math
import re

from ..catalog import METHODS
from ..evidence import HEADLINE_ESTIMAND
from ..periods import PERIODS_PER_YEAR

#: one short sentence per check and status, free of test statistics
CHECK_PLAIN = {
    "seasonality": {"pass": "the usual seasonal rise and fall is allowed for",
                    "warn": "a seasonal pattern may not be fully allowed for, so part of it could look like an effect",
                    "fail": "the seasonal pattern is not allowed for, so part of it could look like an effect"},
    "adoption_dates": {"pass": "every area adopted at the start of a month",
                       "warn": "some areas adopted part-way through a month, which blurs that month's comparison",
                       "fail": "some areas adopted part-way through a month, which blurs that month's comparison"},
    "missing_values": {"pass": "no area or period had to be left out for missing values",
                       "warn": "some areas or periods had to be left out because values were missing",
                       "fail": "too many values were missing to compare the areas fairly"},
    "moderators": {"pass": "every group of children could be analysed",
                   "warn": "some groups of children had too few episodes to be analysed",
                   "fail": "the groups of children could not be analysed"},
    "overlap": {"pass": "the adopting and comparison areas are alike enough to be compared",
                "warn": "some comparison areas differ a lot from the adopting ones and count for little",
                "fail": "the adopting and comparison areas differ too much to be compared"},
    "placebo_duplicates": {"pass": "every comparison area differs from the others",
                           "warn": "some comparison areas are copies of others, which weakens the placebo test",
                           "fail": "some comparison areas are copies of others, which weakens the placebo test"},
    "sparse_ratio": {"pass": "there were enough reports before adoption to express the change as a percentage",
                     "warn": "there were few reports before adoption, so the percentage change is rough",
                     "fail": "there were too few reports before adoption to express the change as a percentage, so "
                             "it is given as a difference in rates"},
    "zero_counts": {"pass": "the model handled areas and months with no reports",
                    "warn": "some areas or months had no reports at all and carry no information",
                    "fail": "too many areas or months had no reports at all"},
    "pre_trends": {
        "pass": "the adopting and comparison areas were moving in step before the change",
        "warn": "the adopting and comparison areas may not have been moving in step before the change",
        "fail": "the adopting and comparison areas were already moving apart before the change, so the comparison "
                "may mislead",
    },
    "placebo": {
        "pass": "a pretend change at a date or place where nothing happened shows no effect, as it should",
        "warn": "a pretend change where nothing happened shows some effect, so part of the estimate may not be real",
        "fail": "a pretend change where nothing happened shows an effect too, so the real one is doubtful",
    },
    "few_treated": {
        "pass": "enough areas adopted for the method's measure of uncertainty to hold",
        "warn": "few areas adopted, so the likely range may be too narrow",
        "fail": "too few areas adopted for a reliable likely range",
    },
    "few_clusters": {
        "pass": "enough areas for a reliable likely range",
        "warn": "the comparison rests on few areas, so its likely range may be too narrow",
        "fail": "too few areas for a reliable likely range",
    },
    "bacon_decomposition": {
        "pass": "the simple before-and-after comparison does not lean on areas that had already adopted",
        "warn": "the simple comparison leans partly on areas that had already adopted, which can bias it",
        "fail": "the simple comparison leans heavily on areas that had already adopted, which can bias it",
    },
    "pre_period_fit": {
        "pass": "the blend of other areas tracked this area closely before the change",
        "warn": "the blend of other areas tracked this area only loosely before the change",
        "fail": "the blend of other areas did not track this area before the change",
    },
    "convex_hull": {
        "pass": "this area lies within the range of the comparison areas",
        "warn": "this area lies near the edge of the comparison areas' range",
        "fail": "this area lies outside the comparison areas' range, so no blend can match it",
    },
    "placebo_resolution": {
        "pass": "there are enough comparison areas for the placebo test to show an effect",
        "warn": "there are few comparison areas, so the placebo test can only show large effects",
        "fail": "there are too few comparison areas for the placebo test to show any effect",
    },
    "minimum_data": {
        "pass": "there are enough months either side of the change to tell a trend from a jump",
        "warn": "there are few months either side of the change, so a trend is hard to tell from a jump",
        "fail": "there are too few months either side of the change to tell a trend from a jump",
    },
    "autocorrelation": {
        "pass": "one month's count does not clearly follow on from the last, or the likely range allows for it",
        "warn": "one month's count follows on from the last, so the likely range may be too narrow",
        "fail": "one month's count follows on from the last, so the likely range is too narrow",
    },
    "overdispersion": {
        "pass": "the counts vary no more than the model allows for",
        "warn": "the counts vary more than the model expects, so the likely range may be too narrow",
        "fail": "the counts vary much more than the model expects, so the likely range is too narrow",
    },
    "proportional_hazards": {
        "pass": "the change in how soon children are found is steady over the hours missing, as the model assumes",
        "warn": "the change in how soon children are found may vary over the hours missing",
        "fail": "the change in how soon children are found varies over the hours missing, so one ratio summarises "
                "it poorly",
    },
    "censoring": {
        "pass": "episodes still open when the data were taken are counted as open, not dropped",
        "warn": "many episodes were still open when the data were taken",
        "fail": "too many episodes were still open when the data were taken",
    },
}

#: what each method does, in plain words (the technical name follows in brackets)
METHOD_DOES = {name: record.does for name, record in METHODS.items()}

METHOD_TECHNICAL = {name: record.display_name for name, record in METHODS.items()}

#: any test statistic a commissioner-facing box must not carry (tests/test_report_words.py)
STATISTICS = re.compile(r"\b[pP]\s*[=<>]\s*[0-9.]|\b[WFzZ]\s*=|\bt\(|\bchi\b|chi-squared?|χ|Wald|Breusch|Schoenfeld|"
                        r"\bse\b|standard error|degrees of freedom")

UNIT_WORDS = {"month": "month", "quarter": "quarter", "year": "year", "week": "week"}


def method_does(method: str, settings: dict | None = None) -> str:
    """What the analysis does, e.g. "compared with areas that had not yet started"."""
    settings = settings or {}
    text = METHOD_DOES.get(method, METHOD_TECHNICAL.get(method, method))
    if method in ("did", "staggered_did") and settings.get("control_group") == "never_treated":
        text = text.replace("areas that had not yet started", "areas that never adopted")
    return text


def analysis_name(method: str, settings: dict | None = None) -> str:
    """What it does, then the technical name: "compared with ... (staggered difference-in-differences)"."""
    technical = METHOD_TECHNICAL.get(method, method)
    does = method_does(method, settings)
    return f"{does} ({technical})" if does != technical else technical


def check_plain(name: str, status: str) -> str:
    """A check's result in one plain sentence, with no statistic."""
    texts = CHECK_PLAIN.get(name)
    if texts:
        return texts.get(status, texts["pass"])
    words = name.replace("_", " ")
    return {"pass": f"the {words} check raised no concern", "warn": f"the {words} check raised a concern",
            "fail": f"the {words} check failed"}.get(status, f"{words}: {status}")


def strip_statistics(sentence: str) -> str:
    """A sentence without bracketed test statistics, e.g. " (placebo p = 0.05)" (they stay in the annex)."""
    return re.sub(r"\s*\((?:placebo )?p\s*[=<]\s*[0-9.]+\)", "", sentence)


# ----------------------------------------------------------------------------- numbers with units
def _pct(x: float) -> str:
    return f"{abs(x) * 100:.1f}%".replace(".0%", "%")


def ratio_words(x: float) -> str:
    change = (x - 1.0) * 100
    if change == 0:
        return "no change"
    if abs(change) < 0.05:  # small but not nothing: its first significant figures, never "no change"
        return f"{abs(change):.2g}% {'fewer' if change < 0 else 'more'}"
    return f"{_pct(x - 1.0)} {'fewer' if change < 0 else 'more'}"


def _num(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _signed(x: float, unit: str, down: str = "lower", up: str = "higher") -> str:
    if abs(x) < 1e-12:
        return "no change"
    return f"{_num(abs(x))}{unit} {down if x < 0 else up}"


def estimate_words(e, outcome: dict, frequency: str | None) -> tuple[str, str]:
    """(estimate, likely range) of an estimate with units: "3.7 hours sooner", "0.3% fewer a month"."""
    bounded = e.ci_low is not None and e.ci_high is not None and all(math.isfinite(v) for v in (e.ci_low, e.ci_high))
    period = UNIT_WORDS.get(frequency, "period") if frequency else "period"
    if e.estimand == "hazard_ratio_did":
        def one(x):
            return "no change" if abs(x - 1) < 0.0005 else (
                f"{_pct(x - 1)} {'more' if x > 1 else 'less'} likely to be found at any moment")
    elif e.estimand == "rmst_difference_did":
        def one(x):
            return _signed(x, " hours", "sooner", "later")
    elif e.estimand == "placebo_p":
        share = f"{e.estimate * 100:.0f}% of comparison areas show as large a change"
        return share, ""
    elif e.scale == "ratio":
        suffix = f" a {period}" if e.estimand == "slope_change" else ""
        def one(x):
            return ratio_words(x) + (suffix if ratio_words(x) != "no change" else "")
    else:
        per = outcome.get("per")
        unit = f" per {per:,.0f}" if per and e.scale in ("rate_difference",) else ""
        label = outcome.get("label", "")
        measure = outcome.get("measure")
        unit_text = " hours" if measure == "duration_hours" else (f" {label}{unit}" if label else unit)
        suffix = f" a {period}" if e.estimand == "slope_change" else ""
        rate = "rate per" in str((e.details or {}).get("difference_unit", "")) and per

        def one(x):
            if rate:   # a rate difference: "0.036 fewer missing reports per 1,000 a month"
                return "no change" if abs(x) < 1e-12 else (
                    f"{_num(abs(x))} {'fewer' if x < 0 else 'more'} {label or 'reports'} per {per:,.0f} a {period}")
            return _signed(x, unit_text) + suffix
    value = one(e.estimate) if e.estimate is not None and math.isfinite(e.estimate) else "not estimable"
    if not bounded:
        note = (e.details or {}).get("interval_note")
        if note:
            return value, f"no interval: {note}"
        return value, "" if e.ci_low is None and e.ci_high is None else "no bound (too few comparison areas)"
    ends = sorted((one(e.ci_low), one(e.ci_high)), key=lambda s: _leading_number(s))
    if e.estimand == "rmst_difference_did" and e.ci_high <= 0:   # both ends sooner: "2.8 to 4.5 hours sooner"
        return value, f"{_num(abs(e.ci_high))} to {_num(abs(e.ci_low))} hours sooner"
    low, high = (one(e.ci_low), one(e.ci_high))
    _, _, rest_low = low.partition(" ")
    _, _, rest_high = high.partition(" ")
    if rest_low and rest_low == rest_high and ends:   # same direction: "16% to 26% more likely ..."
        a, b = ends
        return value, f"{a.partition(' ')[0]} to {b}"
    return value, f"{low} to {high}"


def _leading_number(text: str) -> float:
    match = re.match(r"[0-9.,]+", text)
    return float(match.group(0).replace(",", "")) if match else 0.0


# ----------------------------------------------------------------------------- what this means
def _headline_estimate(results, method: str | None = None, outcome: str | None = None):
    evidence = results.evidence
    method = method or evidence.get("headline_method")
    outcome = outcome or evidence.get("headline_outcome")
    estimand = HEADLINE_ESTIMAND.get(method)
    return next((e for e in results.estimates if e.method == method and e.outcome == outcome
                 and e.estimand == estimand and not (e.group or "").startswith("subgroup")
                 and e.group in (None, "treated")), None)


def is_clear(e) -> bool | None:
    """True when the likely range excludes no change (and the declared test agrees); None without a range."""
    if e is None or e.ci_low is None or e.ci_high is None:
        return None
    if not all(math.isfinite(v) for v in (e.ci_low, e.ci_high)):
        return None
    if (e.details or {}).get("test_rejects") is False:
        return False
    null = 1.0 if e.scale == "ratio" else 0.0
    return not (e.ci_low <= null <= e.ci_high)


def _mde_sentence(results, diagnosis: dict | None) -> str | None:
    """The smallest change this design could detect, when a design diagnosis gives one.

    Reads ``diagnosis["headline"]["mde"]`` (a rate ratio, e.g. 0.85 = a 15% fall; as written by
    ``evalkit diagnose``) or ``results.evidence["mde"]`` (the same number, or a record holding it
    under "mde"); without either, no sentence.
    """
    mde = None
    if diagnosis:
        headline = diagnosis.get("headline")
        head = headline if isinstance(headline, dict) else diagnosis
        mde = head.get("mde")
    if mde is None:
        mde = results.evidence.get("mde")
    if isinstance(mde, dict):
        mde = mde.get("mde")
    if not isinstance(mde, (int, float)) or not math.isfinite(mde) or mde <= 0:
        return None
    return (f"This design could reliably detect (8 times in 10) a fall of about {abs(1 - mde) * 100:.0f}% or more; "
            "a smaller real change could be missed.")


def what_this_means(results, diagnosis: dict | None = None) -> dict:
    """Plain words on what the evidence supports, what it does not, and what would make it stronger.

    Returns a dict with lists ``supports``, ``does_not``, ``stronger`` of sentences; no test
    statistics, every number with its unit.
    """
    evidence, context = results.evidence, results.context
    supports, does_not, stronger = [], [], []
    certainty = evidence.get("certainty", "very low")
    for effect in evidence.get("effects", []):
        e = _headline_estimate(results, effect["method"], effect["outcome"])
        label = effect["outcome_label"]
        clear = is_clear(e)
        if e is None:
            continue
        hours = next((x for x in results.estimates if x.method == effect["method"] and x.outcome == effect["outcome"]
                      and x.estimand == "rmst_difference_did" and x.group is None), None)
        # the hours are the plain-words number, but only when they tell the same story as the headline's
        # hazard ratio: a range of hours that excludes no change beside "not clear" would contradict itself
        shown = hours if effect["method"] == "survival_did" and is_clear(hours) is not None \
            and is_clear(hours) == clear else e
        value, span = estimate_words(shown, _outcome(context, effect["outcome"]), context.get("frequency"))
        if hours is not None and shown is hours:
            value += f" within the first {hours.details.get('horizon_hours', 72):g} hours"
        how = method_does(effect["method"], _settings(results, effect["method"], effect["outcome"]))
        if clear:
            supports.append(f"A change in {label}: {value} (likely range {span}), from the analysis of {how}. "
                            f"Certainty: {effect['certainty']}.")
        elif clear is False:
            does_not.append(f"A clear change in {label}: the likely range runs from {span}, so both a change and "
                            "no change fit the data. This is not proof that the intervention made no difference.")
        else:
            does_not.append(f"Any size of change in {label}: the data cannot put bounds on it.")
    level = evidence.get("design_level")
    single_series = {a.method for a in results.analyses} <= {"its"} or not context.get("comparison_units")
    if level is not None and single_series:
        does_not.append("That the intervention, rather than something else that changed at the same time, "
                        "made the difference: there is no comparison area.")
    elif level is not None:
        does_not.append("That the intervention alone made the difference: the comparison areas may differ in ways "
                        "the data do not show.")
    if certainty in ("low", "very low"):
        does_not.append("Firm conclusions: certainty is " + certainty + ".")
    # what would make it stronger
    freq = context.get("frequency") or "month"
    per_year = PERIODS_PER_YEAR.get(freq, 12)
    n_post = max((a.settings.get("n_post") or 0 for a in results.analyses), default=0)
    if 0 < n_post < 3 * per_year:
        stronger.append(f"More {freq}s after the change: the data hold {n_post} {freq}s after it "
                        f"({n_post / per_year:.1f} years).".replace(".0 years", " years"))
    adopting = len(context.get("adoption", {}))
    comparison = context.get("comparison_units") or 0
    methods = {a.method for a in results.analyses}
    if comparison == 0 or methods <= {"its"}:
        stronger.append("A comparison area that did not adopt, followed over the same months.")
    elif adopting < 20:
        stronger.append(f"More areas: {adopting} adopted and {comparison} did not; more of either narrows the "
                        "likely range.")
    failed = [c for c in results.checks if c.status == "fail" and c.name in ("pre_trends", "placebo")]
    if failed:
        stronger.append("Comparison areas that move in step with the adopting ones before the change (a check here "
                        "found they did not).")
    mde = _mde_sentence(results, diagnosis)
    if mde:
        stronger.append(mde)
    return {"supports": supports, "does_not": does_not, "stronger": stronger}


def _outcome(context: dict, name: str) -> dict:
    return next((o for o in context.get("outcomes", []) if o["name"] == name), {"name": name, "label": name})


def _settings(results, method: str, outcome: str) -> dict:
    return next((a.settings for a in results.analyses if a.method == method and a.outcome == outcome), {})


# ----------------------------------------------------------------------------- where the headline comes from
def _headline_analysis(results, method: str, outcome: str | None):
    """The analysis a finding rests on: the first usable analysis of that method and outcome
    (evidence._strongest keeps the first declared among equals)."""
    return next((a for a in results.analyses if a.method == method and a.outcome == outcome), None)


def headline_source(results) -> str | None:
    """Which analysis the headline comes from, and why that one, in plain words.

    "This comes from the staggered difference-in-differences analysis (compared with areas
    that had not yet started, each adoption date separately), chosen because no analysis of
    missing reports in this plan has a stronger design (level 3 of 5: ...); it was declared
    first among the equally strong ones." The rule is evidence.assess's: the strongest design
    for the outcome (the Maryland level before any check lowers it), the first declared among
    equals.
    """
    from ..evidence import METHOD_LEVEL

    evidence = results.evidence or {}
    method, outcome = evidence.get("headline_method"), evidence.get("headline_outcome")
    if not method:
        return None
    analysis = _headline_analysis(results, method, outcome)
    settings = getattr(analysis, "settings", None) or {}
    label = next((f["outcome_label"] for f in evidence.get("effects", []) if f["outcome"] == outcome), outcome)
    level, level_label = METHOD_LEVEL.get(method, (0, ""))
    others = [a for a in results.analyses if a.outcome == outcome and a is not analysis and a.method in HEADLINE_ESTIMAND]
    if not others:
        why = f"it is the only analysis of {label} in this plan that gives an overall effect"
    elif all(METHOD_LEVEL.get(a.method, (0, ""))[0] < level for a in others):
        why = (f"it is the strongest design among the {len(others) + 1} analyses of {label} in this plan "
               f"(level {level} of 5: {level_label})")
    else:
        why = (f"no analysis of {label} in this plan has a stronger design (level {level} of 5: {level_label}), "
               "and it was declared first among the equally strong ones")
    technical = METHOD_TECHNICAL.get(method, method)
    return f"This comes from the {technical} analysis ({method_does(method, settings)}), chosen because {why}."


def sensitivity_notes(results) -> list[str]:
    """Plain words on the relative-magnitudes breakdown value (evidence.parallel_trends_sensitivity)
    of every did / staggered_did analysis of a reported outcome whose pre-trend check failed."""
    from ..evidence import sensitivity_words

    evidence = results.evidence or {}
    outcomes = {f["outcome"]: f["outcome_label"] for f in evidence.get("effects", [])}
    out = []
    for record in evidence.get("sensitivity") or []:
        if record.get("pre_trends") != "fail" or record["outcome"] not in outcomes:
            continue
        analysis = next((a for a in results.analyses if a.method == record["method"] and a.outcome == record["outcome"]
                         and a.settings.get("analysis", record.get("analysis")) == record.get("analysis")), None)
        name = analysis_name(record["method"], getattr(analysis, "settings", None))
        out.append(f"Trends before adoption differed for the analysis {name} of {outcomes[record['outcome']]}, "
                   f"so how much that matters was measured: {sensitivity_words(record)}.")
    return out


# ----------------------------------------------------------------------------- disagreement
def _direction(e) -> int:
    null = 1.0 if e.scale == "ratio" else 0.0
    return 0 if e.estimate is None or e.estimate == null else (1 if e.estimate > null else -1)


def disagreements(results, calibration: dict | None = None) -> list[str]:
    """Plain sentences on other analyses of a headline outcome that disagree or fail a check.

    The headline rests on the strongest analysis of its outcome; a commissioner reading
    "moderate certainty" above another analysis's failed check needs to know why they differ.
    Another analysis differs when it fails a check, when one shows a clear change and the
    other not (significance), when their central estimates point different ways (direction),
    or when a design diagnosis found its likely range too narrow (``calibration``: (method,
    outcome) -> {"lower", "words"}, as render builds it).
    """
    evidence = results.evidence
    out = []
    for effect in evidence.get("effects", []):
        head = _headline_estimate(results, effect["method"], effect["outcome"])
        head_clear = is_clear(head)
        label = effect["outcome_label"]
        head_analysis = _headline_analysis(results, effect["method"], effect["outcome"])
        head_name = method_does(effect["method"], _settings(results, effect["method"], effect["outcome"]))
        for a in results.analyses:
            if a.outcome != effect["outcome"] or a is head_analysis or a.method not in HEADLINE_ESTIMAND:
                continue
            if a.method == effect["method"] and not (a.settings.get("analysis") is not None
                                                     and head_analysis is not None
                                                     and head_analysis.settings.get("analysis") is not None):
                continue   # the same method twice, told apart only by the plan index: without it, skip
            name = analysis_name(a.method, a.settings)
            failed = [c for c in results.checks if c.method == a.method and c.outcome == a.outcome
                      and c.status == "fail"]
            if a.method == effect["method"]:
                other = next((e for e in results.estimates if e.method == a.method and e.outcome == a.outcome
                              and e.estimand == HEADLINE_ESTIMAND[a.method] and e.group in (None, "treated")
                              and (e.details or {}).get("analysis") == a.settings.get("analysis")), None)
                failed = []   # checks carry no plan index: they cannot be told apart from the headline's
            else:
                other = _headline_estimate(results, a.method, a.outcome)
            reasons = []
            if failed:
                reasons.append("it failed a check: " + "; ".join(check_plain(c.name, c.status) for c in failed))
            other_clear = is_clear(other)
            if other is not None and other_clear is not None and head_clear is not None:
                value, span = estimate_words(other, _outcome(results.context, a.outcome),
                                             results.context.get("frequency"))
                if other_clear != head_clear:
                    reasons.append(f"it {'does' if other_clear else 'does not'} show a clear change ({value}, "
                                   f"likely range {span})")
                elif _direction(other) * _direction(head) < 0 and head.scale == other.scale:
                    reasons.append(f"it points the other way ({value})")
            note = (calibration or {}).get((a.method, a.outcome))
            if note and note.get("verdict") == "fail" and note.get("words"):
                words = note["words"]
                reasons.append(words[0].lower() + words[1:])
            if reasons:
                own = [c for c in results.checks if c.method == effect["method"] and c.outcome == effect["outcome"]
                       and c.name in ("pre_trends", "placebo")]
                passed = own and all(c.status == "pass" for c in own)
                out.append(f"Why another analysis of {label} differs: the analysis {name} is weaker here because "
                           f"{'; and '.join(reasons)}. The headline uses the analysis {head_name}"
                           + (", whose own check of the period before the change passed." if passed else
                              "; read it with this in mind."))
    return out


# ----------------------------------------------------------------------------- cost
def _money(x: float) -> str:
    x = abs(x)
    if x >= 10000:
        return f"£{round(x, -3):,.0f}"
    if x >= 1000:
        return f"£{round(x, -2):,.0f}"
    return f"£{round(x):,.0f}"


def _count(x: float) -> str:
    x = abs(x)
    return f"{round(x, -1):,.0f}" if x >= 100 else f"{x:,.0f}" if x >= 10 else f"{x:.1f}".rstrip("0").rstrip(".")


def economics_words(results) -> dict | None:
    """The cost section in plain words: unit cost with its source and price year, totals a year
    and per adopting area; when the likely range spans no change the range leads and no net
    saving is claimed."""
    econ = results.evidence.get("economics")
    if not econ:
        return None
    intervention = results.context["intervention"]
    areas = econ.get("areas") or len(results.context.get("adoption", {})) or 1  # the areas the estimate covers
    change, cost = econ["reports_change_per_year"], econ["cost_per_episode"]
    saved = econ["police_cost_saved_per_year"]
    span = econ.get("police_cost_saved_range")
    year = intervention.get("cost_price_year")
    source = intervention.get("cost_per_episode_source")
    prices = f" at {year} prices" if year else ""
    spans_zero = bool(span) and min(span) < 0 < max(span)
    direction = "fewer" if change < 0 else "more"
    per_area = f"{_count(change / areas)} {direction} per adopting area" if areas > 1 else ""
    sentences = []
    if span and spans_zero:
        low, high = min(span), max(span)
        sentences.append(
            f"The change in missing reports is not clear, so neither is any saving: across the {areas} adopting areas "
            f"together, police time{prices} could run from {_money(low)} more to {_money(high)} less a year. "
            "No net saving can be claimed.")
        worth = "be worth" if saved >= 0 else "cost"
        sentences.append(f"The central estimate, about {_count(change)} {direction} reports a year"
                         + (f" ({per_area})" if per_area else "") + f", would {worth} about {_money(abs(saved))} "
                         "of police time a year"
                         + (f" ({_money(abs(saved) / areas)} per adopting area)" if areas > 1 else "")
                         + ", but no change fits the data as well.")
    else:
        range_text = (f" (likely range {_money(min(span))} to {_money(max(span))})" if span else "")
        verb = "save" if saved >= 0 else "cost"
        sentences.append(f"About {_count(change)} {direction} missing reports a year across the {areas} adopting "
                         f"areas{f' ({per_area})' if per_area else ''} would {verb} about {_money(saved)} of police "
                         f"time a year{prices}{range_text}.")
        if econ.get("annual_cost") and econ.get("net_saving_per_year") is not None:
            net = econ["net_saving_per_year"]
            sentences.append(f"Against the intervention's cost of {_money(econ['annual_cost'])} a year, that is a net "
                             f"{'saving' if net >= 0 else 'cost'} of about {_money(net)} a year.")
    facts = [f"Police cost of one missing episode: £{cost:,.0f}" + (f"{prices}" if year else "")
             + (f"; source: {source}" if source else "") + " (set intervention.cost_per_episode, "
             "cost_per_episode_source and cost_price_year in the design to change it)."]
    if econ.get("annual_cost"):
        facts.append(f"Cost of the intervention: £{econ['annual_cost']:,.0f} a year, as declared in the design.")
    return {**econ, "sentences": sentences, "facts": facts, "spans_zero": spans_zero, "sentence": " ".join(sentences)}


# ----------------------------------------------------------------------------- annex settings
def setting_text(key: str, value, method: str) -> str | None:
    """One method setting for the annex: seeds without thousands separators, options in words."""
    if key == "seed" and isinstance(value, int):
        return str(value)
    if key == "estimation" and value == "none":
        return "unadjusted (no covariates, so no outcome regression or weighting is needed)"
    return None  # the caller formats everything else


def adoption_schedule(adoption: dict) -> str:
    """ "3 areas from 2021-04, 2 from 2022-01, 2 from 2022-10" from {unit: period}."""
    by_period: dict = {}
    for period in adoption.values():
        by_period[period] = by_period.get(period, 0) + 1
    parts = []
    for i, (period, n) in enumerate(sorted(by_period.items())):
        noun = (" area" if n == 1 else " areas") if i == 0 else ""
        parts.append(f"{n}{noun} from {period}")
    return ", ".join(parts)


__all__ = ["CHECK_PLAIN", "METHOD_DOES", "STATISTICS", "analysis_name", "check_plain", "economics_words",
           "estimate_words", "what_this_means", "disagreements", "headline_source", "sensitivity_notes", "strip_statistics", "adoption_schedule",
           "setting_text", "method_does", "is_clear"]
