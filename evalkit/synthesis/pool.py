"""Pool studies per mechanism, outcome, estimand and scale: the records of synthesis.json.

Studies are pooled only within one (mechanism, outcome, estimand, scale): a rate ratio is
never averaged with a difference in hours, nor a DiD effect with another estimand. Each
group is pooled for all evaluations and, as the design-strength moderator, for those at
design level 3 or above; REML with Hartung-Knapp is the headline, DerSimonian-Laird and the
fixed-effect model are sensitivity analyses.
"""

from __future__ import annotations

import math
from itertools import groupby

from .meta import MetaResult, leave_one_out, meta_analysis
from .studies import Study

#: the design-strength moderator: evaluations that compared with similar areas
MIN_STRONG_LEVEL = 3
SUBSETS = ("all", "level_3_plus")
#: headline first, then the sensitivity analyses
METHODS = ("REML", "DL", "FE")

NOTE_ONE = "one evaluation: shown, not pooled"
NOTE_TWO = "two evaluations: too few for a prediction interval (what a new area might see)"


def group_key(study: Study) -> tuple:
    return (study.mechanism, study.outcome, study.estimand, study.scale)


def groups(studies: list[Study]) -> list[tuple[tuple, list[Study]]]:
    """Studies grouped by (mechanism, outcome, estimand, scale), in sorted order."""
    ordered = sorted(studies, key=lambda s: (group_key(s), s.id))
    return [(key, list(members)) for key, members in groupby(ordered, key=group_key)]


def _subset(members: list[Study], subset: str) -> list[Study]:
    if subset == "all":
        return members
    return [s for s in members if s.design_level is not None and s.design_level >= MIN_STRONG_LEVEL]


def _back(value: float | None, scale: str) -> float | None:
    """From the pooling scale to the reporting scale (exp for ratios)."""
    if value is None or not math.isfinite(value):
        return None
    return math.exp(value) if scale == "ratio" else value


def _empty(key: tuple, subset: str, members: list[Study], method: str | None, note: str) -> dict:
    mechanism, outcome, estimand, scale = key
    fields = ("estimate", "se", "ci_low", "ci_high", "p_value", "tau2", "i2", "h2", "q", "q_p", "pi_low", "pi_high")
    return {"mechanism": mechanism, "outcome": outcome, "outcome_label": members[0].outcome_label,
            "estimand": estimand, "scale": scale, "subset": subset, "k": len(members),
            "study_ids": [s.id for s in members], "method": method, "test": None,
            "role": "headline" if method in (None, "REML") else "sensitivity",
            **{f: None for f in fields}, "note": note, "details": {}, "leave_one_out": []}


def _record(key: tuple, subset: str, members: list[Study], fit: MetaResult, loo: list[MetaResult]) -> dict:
    mechanism, outcome, estimand, scale = key
    record = _empty(key, subset, members, fit.method, "")
    pi_missing = fit.k < 3
    record.update({
        "test": fit.test,
        "estimate": _back(fit.estimate, scale), "se": fit.se,
        "ci_low": _back(fit.ci_low, scale), "ci_high": _back(fit.ci_high, scale),
        "p_value": fit.p_value, "tau2": fit.tau2, "i2": fit.i2, "h2": fit.h2, "q": fit.q, "q_p": fit.q_p,
        "pi_low": None if pi_missing else _back(fit.pi_low, scale),
        "pi_high": None if pi_missing else _back(fit.pi_high, scale),
        "note": NOTE_TWO if fit.k == 2 else "",
        "details": {
            "scale_of_se_and_tau2": "log" if scale == "ratio" else "difference",
            "yi_estimate": fit.estimate, "yi_ci_low": fit.ci_low, "yi_ci_high": fit.ci_high,
            "yi_pi_low": None if pi_missing else fit.pi_low, "yi_pi_high": None if pi_missing else fit.pi_high,
            "statistic": fit.statistic, "df": fit.df, "pi_df": None if pi_missing else fit.pi_df,
            "prediction": fit.prediction, "hk_factor": fit.hk_factor, "q_df": fit.q_df,
            "iterations": fit.iterations, "level": fit.level,
            "weights": _weights(members, fit),
        },
        "leave_one_out": [
            {"omitted": members[i].id, "k": r.k, "estimate": _back(r.estimate, scale),
             "ci_low": _back(r.ci_low, scale), "ci_high": _back(r.ci_high, scale), "tau2": r.tau2,
             "i2": r.i2, "yi_estimate": r.estimate, "se": r.se}
            for i, r in enumerate(loo)
        ],
    })
    return record


def _weights(members: list[Study], fit: MetaResult) -> dict:
    """Each study's share of the pooled estimate (per cent), as metafor's weights()."""
    raw = [1.0 / (s.vi + fit.tau2) for s in members]
    total = sum(raw)
    return {s.id: 100.0 * w / total for s, w in zip(members, raw)}


def pool_group(key: tuple, members: list[Study], test: str = "auto", level: float = 0.95,
               prediction: str = "default") -> list[dict]:
    """The pooled records of one group: per subset, REML (headline), DL and FE."""
    records = []
    for subset in SUBSETS:
        chosen = _subset(members, subset)
        if not chosen:
            continue
        if len(chosen) == 1:
            records.append(_empty(key, subset, chosen, None, NOTE_ONE))
            continue
        yi = [s.yi for s in chosen]
        vi = [s.vi for s in chosen]
        for method in METHODS:
            use_prediction = prediction if len(chosen) >= 3 else "default"
            fit = meta_analysis(yi, vi, method=method, test=test, level=level, prediction=use_prediction)
            loo = []
            if method == "REML" and len(chosen) >= 3:
                loo = leave_one_out(yi, vi, method=method, test=test, level=level)
            records.append(_record(key, subset, chosen, fit, loo))
    return records
