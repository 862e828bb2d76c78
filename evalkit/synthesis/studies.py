"""Read evaluations' results files into the studies a synthesis pools.

From each results.json, per outcome, the estimate its evidence headline rests on
(``evidence["effects"]``: method, outcome and estimand of the strongest analysis), with
that finding's design level and the intervention's mechanism. Ratios enter on the log
scale, differences on their own scale; the sampling variance comes from the estimate's
standard error when it is on that scale, otherwise from its interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeGuard, cast

from scipy import special

from ..errors import EvalkitError
from ..results import Estimate, Results, load_results

FIX = "give results.json files that evalkit run wrote"


@dataclass(frozen=True)
class Study:
    """One evaluation's headline estimate of one outcome, ready to pool.

    ``yi`` and ``vi`` are on the pooling scale (log for ratios); ``estimate``, ``ci_low``
    and ``ci_high`` on the reporting scale, as the evaluation reported them.
    """

    id: str
    title: str
    intervention: str
    mechanism: str
    mechanism_words: str
    outcome: str
    outcome_label: str
    method: str
    estimand: str
    scale: str
    estimate: float
    ci_low: float | None
    ci_high: float | None
    yi: float
    vi: float
    variance_from: str
    design_level: int | None
    certainty: str | None
    path: str
    design_sha256: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def _headline_estimate(results: Results, effect: dict) -> Estimate | None:
    """The estimate a finding rests on; subgroup refits (EMMIE moderators) never count."""
    for e in results.estimates:
        if e.method == effect.get("method") and e.outcome == effect.get("outcome") \
                and e.estimand == effect.get("estimand") and not (e.group or "").startswith("subgroup"):
            return e
    return None


def _finite(x: object) -> TypeGuard[float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def pooling_scale(estimate: Estimate, alpha: float) -> tuple[float, float, str] | str:
    """(yi, vi, where vi came from) for one estimate, or the reason it cannot be pooled.

    Ratios: ``yi = log(estimate)``; ``vi = se^2`` when ``details.se_scale == "log"``, else
    ``((log hi - log lo) / (2 z))^2``. Differences: ``yi = estimate``; ``vi = se^2`` when
    a standard error is given, else ``((hi - lo) / (2 z))^2``. z is the normal quantile
    of the evaluation's own alpha.
    """
    z = float(-special.ndtri(alpha / 2))
    if estimate.scale == "ratio":
        if not _finite(estimate.estimate) or estimate.estimate <= 0:
            return "the ratio is missing or not positive"
        yi = math.log(estimate.estimate)
        if estimate.details.get("se_scale") == "log" and _finite(estimate.se) and estimate.se > 0 \
                and not _interval_by_test_inversion(estimate):
            return yi, float(estimate.se) ** 2, "standard error (log scale)"
        low, high = estimate.ci_low, estimate.ci_high
        if _finite(low) and low > 0 and _finite(high) and high > 0 and high > low:
            return yi, ((math.log(high) - math.log(low)) / (2 * z)) ** 2, "interval"
        return "the ratio has no usable standard error or interval"
    if estimate.scale == "difference":
        if not _finite(estimate.estimate):
            return "the difference is missing"
        yi = float(estimate.estimate)
        if _finite(estimate.se) and estimate.se > 0 and estimate.details.get("se_scale") != "log" \
                and not _interval_by_test_inversion(estimate):
            return yi, float(estimate.se) ** 2, "standard error"
        if _finite(estimate.ci_low) and _finite(estimate.ci_high) and estimate.ci_high > estimate.ci_low:
            return yi, ((estimate.ci_high - estimate.ci_low) / (2 * z)) ** 2, "interval"
        return "the difference has no usable standard error or interval"
    return f"scale {estimate.scale!r} cannot be pooled (only ratios and differences)"


def _interval_by_test_inversion(estimate: Estimate) -> bool:
    """Whether the estimate's interval comes from inverting a test (randomization, wild cluster
    bootstrap) rather than from its standard error: then the interval, the procedure the
    analysis declared, carries the uncertainty, and the (analytic) standard error does not."""
    return "inversion" in str(estimate.details.get("interval_method", ""))


def read_studies(paths) -> tuple[list[Study], list[dict]]:
    """Studies from results files, and the findings left out (with why).

    Parameters
    ----------
    paths : iterable of str or path-like
        results.json files, one per evaluation.

    Returns
    -------
    (list of Study, list of dict)
        Studies sorted by mechanism, outcome, estimand and id; excluded findings as
        ``{"id", "path", "outcome", "reason"}``.

    Raises
    ------
    EvalkitError
        A file is missing, unreadable, not an evalkit results file, given twice, or has
        no finding to pool.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise EvalkitError("synthesize", "no results files given", FIX)
    seen: dict[Path, str] = {}
    loaded = []
    for path in paths:
        key = path.resolve()
        if key in seen:
            raise EvalkitError(str(path), f"given twice (also as {seen[key]})",
                               "give each evaluation once: a study counted twice would weigh double")
        seen[key] = str(path)
        if path.is_dir():
            raise EvalkitError(str(path), "is a folder, not a results file", "give the results.json inside it")
        try:
            loaded.append((path, load_results(path)))
        except OSError as exc:
            raise EvalkitError(str(path), f"cannot be read ({exc.strerror or exc.__class__.__name__})", FIX) from None
    fingerprints: dict = {}
    for path, results in loaded:
        fingerprint = (results.design.get("sha256"), (results.data or {}).get("sha256"))
        if all(fingerprint) and fingerprint in fingerprints:
            raise EvalkitError(str(path), f"is the same evaluation as {fingerprints[fingerprint]} (same design and data)",
                               "give each evaluation once: a study counted twice would weigh double")
        fingerprints[fingerprint] = str(path)
    ids = _study_ids([p for p, _ in loaded])
    studies, excluded = [], []
    for (path, results), study_id in zip(loaded, ids):
        effects = results.evidence.get("effects") or []
        if not effects:
            raise EvalkitError(str(path), "the results file has no finding (evidence.effects is empty)",
                               "run evalkit run again with at least one analysis that gives a headline")
        intervention = results.context.get("intervention") or {}
        alpha = results.context.get("alpha") or 0.05
        for effect in effects:
            if not isinstance(effect, dict):
                raise EvalkitError(str(path), "evidence.effects holds something that is not a finding",
                                   "run evalkit run again to rewrite the results file")
            estimate = _headline_estimate(results, effect)
            if estimate is None:
                raise EvalkitError(str(path), f"evidence names {effect.get('method')} {effect.get('estimand')} "
                                   f"for {effect.get('outcome')} but no such estimate is stored",
                                   "run evalkit run again to rewrite the results file")
            scaled = pooling_scale(estimate, alpha)
            if isinstance(scaled, str):
                excluded.append({"id": study_id, "path": str(path), "outcome": estimate.outcome, "reason": scaled})
                continue
            yi, vi, source = scaled
            level = effect.get("design_level")
            if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
                raise EvalkitError(str(path), f"evidence gives design level {str(level)[:20]!r}, not a number 1-5",
                                   "run evalkit run again to rewrite the results file")
            studies.append(Study(
                id=study_id, title=str(results.design.get("title") or study_id),
                intervention=str(intervention.get("name") or ""),
                mechanism=_pooling_mechanism(intervention),
                mechanism_words=str(intervention.get("mechanism_words") or ""),
                outcome=estimate.outcome, outcome_label=str(effect.get("outcome_label") or estimate.outcome),
                method=estimate.method, estimand=estimate.estimand, scale=estimate.scale,
                estimate=float(cast(float, estimate.estimate)),  # pooling_scale refused a missing one
                ci_low=float(estimate.ci_low) if _finite(estimate.ci_low) else None,
                ci_high=float(estimate.ci_high) if _finite(estimate.ci_high) else None,
                yi=yi, vi=vi, variance_from=source, design_level=int(level) if level is not None else None,
                certainty=effect.get("certainty"), path=str(path), design_sha256=results.design.get("sha256"),
            ))
    studies.sort(key=lambda s: (s.mechanism, s.outcome, s.estimand, s.scale, s.id))
    return studies, excluded


def _pooling_mechanism(intervention: dict) -> str:
    """The mechanism a study pools under: `other` only with interventions of the same name.

    `other` says only that the intervention is none of the review's seven mechanisms; two
    such interventions need not have anything in common, so each named one is its own
    group (``other: <name>``), and same-named evaluations (one scheme in several areas) pool.
    """
    mechanism = str(intervention.get("mechanism") or "other")
    if mechanism != "other":
        return mechanism
    name = " ".join(str(intervention.get("name") or "").split()).lower()
    return f"other: {name}" if name else "other"


def _study_ids(paths: list[Path]) -> list[str]:
    """A short id per file: its folder's name (or its stem), made unique in the given order."""
    ids, used = [], set()
    for path in paths:
        base = path.parent.name if path.name == "results.json" and path.parent.name else path.stem
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        ids.append(name)
    return ids
