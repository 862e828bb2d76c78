"""Evidence synthesis: which mechanisms work, across evaluations.

Reads several evaluations' results.json files, pools each mechanism's effect on each
outcome by random-effects meta-analysis (:mod:`evalkit.synthesis.meta`, checked against R
metafor) and writes synthesis.json and synthesis.html (docs/synthesis.md).

    import evalkit
    synthesis = evalkit.synthesize(["a/results.json", "b/results.json"], out="reports/out/synthesis")
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..version import __version__
from ..errors import EvalkitError
from ..evidence import SCALE_NAME
from ..results import json_ready

# the engine (scipy) is imported when a synthesis runs, not with evalkit: every command
# imports this package through evalkit.synthesize

__all__ = ["Synthesis", "synthesize"]

SCHEMA = "evalkit.synthesis/1"
DEFAULT_OUT = Path("reports") / "out" / "synthesis"


@dataclass
class Synthesis:
    """What a synthesis found: the studies pooled, the pooled records, the plain-words summaries.

    ``pooled`` and ``studies`` are the records of synthesis.json (reporting scale, with
    yi-scale values in each record's ``details``); :meth:`to_json_text` and
    :meth:`to_html` render the two files, deterministically.
    """

    studies: list  # of evalkit.synthesis.studies.Study
    pooled: list[dict]
    summaries: list[dict]
    excluded: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    title: str = "Which mechanisms work: evidence synthesis"

    def to_dict(self) -> dict:
        return json_ready({
            "schema": SCHEMA,
            "evalkit_version": __version__,
            "title": self.title,
            "settings": self.settings,
            "studies": [s.to_dict() for s in self.studies],
            "pooled": self.pooled,
            "summaries": self.summaries,
            "excluded": self.excluded,
        })

    def to_json_text(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"

    def to_html(self) -> str:
        from .render import render_synthesis_html

        return render_synthesis_html(self.to_dict())

    def headline(self, mechanism: str, outcome: str, subset: str = "all") -> dict | None:
        """The REML (or k = 1) record of one mechanism and outcome."""
        for p in self.pooled:
            if p["mechanism"] == mechanism and p["outcome"] == outcome and p["subset"] == subset \
                    and p["method"] in ("REML", None):
                return p
        return None

    def write(self, out) -> list[Path]:
        """Render both files in memory, then write both or neither into ``out`` (evalkit.outputs)."""
        from ..outputs import write_outputs

        json_text = self.to_json_text()
        html = self.to_html()
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise EvalkitError(str(out), "exists and is not a folder", "choose another --out")
        return write_outputs({out / "synthesis.json": json_text, out / "synthesis.html": html})


def synthesize(paths, out=None, test: str = "auto", level: float = 0.95, prediction: str = "default") -> Synthesis:
    """Pool several evaluations' results by mechanism and outcome.

    Parameters
    ----------
    paths : iterable of str or path-like
        results.json files written by ``evalkit run`` (one per evaluation).
    out : str or path-like, optional
        Folder to write synthesis.json and synthesis.html to; nothing is written if None.
    test : {"auto", "knha", "adhoc", "z"}
        Inference for the pooled change ("auto": Hartung-Knapp below 20 evaluations).
    level : float
        Coverage of the intervals.
    prediction : {"default", "hts"}
        Prediction interval as metafor's predict(), or Higgins-Thompson-Spiegelhalter's
        t with k - 2 degrees of freedom (groups of 3 or more).

    Returns
    -------
    Synthesis

    Raises
    ------
    EvalkitError
        A results file is missing, unreadable or not evalkit's, or given twice.
    """
    from .meta import SMALL_K
    from .pool import MIN_STRONG_LEVEL, groups, pool_group
    from .studies import read_studies
    from .words import summary_sentence

    studies, excluded = read_studies(paths)
    if not studies:
        reasons = "; ".join(f"{e['id']}: {e['reason']}" for e in excluded[:3])
        raise EvalkitError("synthesize", f"no finding of any results file can be pooled ({reasons})",
                           "give results files whose headline estimates have a standard error or an interval")
    pooled, summaries = [], []
    for key, members in groups(studies):
        records = pool_group(key, members, test=test, level=level, prediction=prediction)
        pooled += records
        headline = next(r for r in records if r["subset"] == "all" and r["method"] in ("REML", None))
        strong = next((r for r in records if r["subset"] == "level_3_plus" and r["method"] in ("REML", None)), None)
        summaries.append({"mechanism": key[0], "outcome": key[1], "estimand": key[2], "scale": key[3],
                          "k": len(members), "sentence": summary_sentence(members, headline, strong)})
    synthesis = Synthesis(
        studies=studies, pooled=pooled, summaries=summaries, excluded=excluded,
        settings={"model": "random effects", "tau2_method": "REML", "sensitivity": ["DL", "FE"], "test": test,
                  "small_k": SMALL_K, "level": level, "prediction": prediction,
                  "min_strong_level": MIN_STRONG_LEVEL, "design_scale": SCALE_NAME,
                  "reference": "R metafor rma() and predict() (tests/fixtures/synthesis/reference.R)"},
    )
    if out is not None:
        synthesis.write(out)
    return synthesis
