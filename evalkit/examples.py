"""Shipped examples: `evalkit example NAME --out DIR` writes a design file and its data."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import EvalkitError
from .results import write_atomic

SPOC_SEED = 20240510

SPOC_DESIGN = """\
# A synthetic staggered rollout of a single point of contact (SPOC) between the police and
# children's social care across {areas} (evalkit.data.synthetic, seed below).
# Planted truth (truth.json beside the data): 12% fewer reports (rate ratio 0.88), phased in
# over 3 months; hazard of being found 1.25 times higher.
evalkit: 1
title: Single point of contact with children's social care, northern forces (synthetic example)
intervention:
  name: The single point of contact (SPOC)
  mechanism: single_point_of_contact
  description: A named liaison in children's social care for every live missing-child case.
  start: 2021-04
  transition: 3
  annual_cost: 85000
data:
  source: {prefix}{episodes}
  layout: episodes
  columns:
    unit: force
    reported_at: reported_at
    found_at: found_at
    person: child_id
    episode: episode_id
    age: age
    sex: sex
    looked_after: looked_after
    risk: risk
  # child_id values are synthetic: pseudonymised with a random key for this run only
  # (a real extract: leave this out and set EVALKIT_PSEUDONYM_KEY; docs/data-sources.md)
  person_key: ephemeral
  extracted_at: 2024-03-31
  frequency: month
  window: {{start: {window_start}, end: {window_end}}}
  exposure:
    source: {prefix}population.csv
    columns: {{unit: force, time: year, value: children}}
units:
  treated: [Northshire, Ashcombe, Brackenmoor]
  adoption: {{Eastmoor: 2022-01, Fellside: 2022-01, Harrowdale: 2022-10, Lowmarsh: 2022-10}}
  comparison: all_untreated
outcomes:
  - {{name: reports, measure: count, per: 1000}}
  - {{name: time_to_found, measure: duration_hours, horizon: 72}}
primary_outcome: reports
analysis:
  # the first cohort's pooled series; the COVID year is a known break, left out of the fit
  - method: its
    outcome: reports
    family: quasipoisson
    seasonality: {{harmonics: 2}}
    errors: newey_west
    lags: auto
    horizons: [12, 24]
    exclude_periods: [{{start: 2020-04, end: 2021-03}}]
  # all seven adopters in three cohorts against forces not yet adopting (Callaway & Sant'Anna);
  # the 3-month phase-in is left out of the averages; with seven adopters the default
  # inference permutes adoption dates across forces (docs/methods/staggered_did.md)
  - {{method: staggered_did, outcome: reports, control_group: not_yet_treated}}
{did_entry}  # time to found: stratified Cox DiD and the 72-hour restricted-mean DiD
  - {{method: survival_did, outcome: time_to_found}}
alpha: 0.05
seed: {seed}
report:
  audience: commissioner
  disclosure: {{preset: default}}
"""


DID_ENTRY = """\
  # Poisson (PPML) difference-in-differences on the counts with children as exposure; only
  # seven areas adopt, so the p-value comes from permuting adoption across areas
  - {method: did, outcome: reports, family: poisson, inference: randomization, reps: 499}
"""


def spoc_design_text(prefix: str, episodes: str = "episodes.csv.gz", seed: int = SPOC_SEED,
                     scale: str = "regional") -> str:
    """The SPOC example's design file, with data paths starting with ``prefix``."""
    from .data.synthetic import WINDOWS

    start, end = WINDOWS[scale]
    # the national example's plan is the one the national-scale budget is set for (ITS,
    # staggered DiD, survival DiD): 499 permutation refits of a 43-area Poisson DiD are left
    # to the regional example
    did_entry = "" if scale == "national" else DID_ENTRY
    areas = "43 force areas, 10 years" if scale == "national" else "13 small force areas"
    return SPOC_DESIGN.format(prefix=prefix, episodes=episodes, seed=seed, window_start=start, window_end=end,
                              did_entry=did_entry, areas=areas)


#: shipped example files by name, at their repository paths (evalkit.resources)
SHIPPED_FILES = {"sicily.csv": "examples/sicily/sicily.csv", "sicily_smoking_ban.yaml": "designs/sicily_smoking_ban.yaml",
                 "ssda903_return_home.yaml": "designs/ssda903_return_home.yaml"}


def _packaged(name: str) -> Path:
    """A shipped example file (from the repository, or from the copy inside an installed wheel)."""
    from .resources import shipped

    return shipped(SHIPPED_FILES[name])


def write_example(name: str, out_dir: Path, seed: int | None = None, scale: str = "regional",
                  fmt: str = "csv") -> Path:
    """Write example ``name`` into ``out_dir``; return the design file's path.

    ``fmt`` (ssda903 only): ``csv`` writes each return's CSV tables, ``xml`` the DfE's
    XML return (evalkit/data/ssda903_synthetic.py says how the two differ).

    The files are made in a hidden staging folder inside ``out_dir`` and moved into place
    only when complete; a file (or link) already in ``out_dir`` under one of the example's
    names is never replaced or written through: the example is refused instead.
    """
    import os
    import tempfile

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise EvalkitError(str(out_dir), "exists and is not a folder", "choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".evalkit-example-", dir=out_dir))
    try:
        design_path = _write_example_files(name, staging, seed, scale, fmt)
        names = sorted(os.listdir(staging))
        clash = next((n for n in names if os.path.lexists(out_dir / n)), None)
        if clash is not None:
            raise EvalkitError(str(out_dir / clash), "already exists, and evalkit example never replaces a file",
                               "choose an empty folder with --out, or move that file away")
        for file_name in names:
            os.replace(staging / file_name, out_dir / file_name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / design_path.name


def _write_example_files(name: str, out_dir: Path, seed: int | None, scale: str, fmt: str = "csv") -> Path:
    """Write example ``name``'s files into the (new, empty) folder ``out_dir``.

    The design file is named after the example (spoc_rollout.yaml, sicily_smoking_ban.yaml), so
    its outputs default to reports/out/<that name>/ and never replace another example's.
    """
    design_path = out_dir / f"{name.replace('-', '_')}.yaml"
    if name == "spoc-rollout":
        from .data.synthetic import write_spoc_rollout

        seed = SPOC_SEED if seed is None else seed
        files = write_spoc_rollout(out_dir, seed=seed, scale=scale)
        write_atomic(design_path, spoc_design_text("", files["episodes"], seed, scale))
        return design_path
    if name == "sicily-smoking-ban":
        shutil.copyfile(_packaged("sicily.csv"), out_dir / "sicily.csv")
        text = _packaged("sicily_smoking_ban.yaml").read_text(encoding="utf-8")
        write_atomic(design_path, text.replace("../examples/sicily/", ""))
        return design_path
    if name == "ssda903":
        from .data.ssda903_synthetic import SEED, write_returns

        write_returns(out_dir, seed=SEED if seed is None else seed, fmt=fmt)
        text = _packaged("ssda903_return_home.yaml").read_text(encoding="utf-8")
        design_path = out_dir / "ssda903.yaml"  # named after the example
        write_atomic(design_path, text.replace("../examples/ssda903/returns", "returns"))
        return design_path
    raise EvalkitError(name, "no such example", "use spoc-rollout, sicily-smoking-ban or ssda903")
