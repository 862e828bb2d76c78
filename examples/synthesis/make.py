"""Regenerate the shipped synthesis example: seven synthetic evaluations' results.json files.

Run from the repository root (about 5 s per evaluation):

    python examples/synthesis/make.py

Each evaluation simulates the generator's 13-force staggered rollout
(evalkit.data.synthetic.write_spoc_rollout) with its own seed and planted rate ratio,
writes a design file beside its results, fits one Poisson difference-in-differences on
missing reports, and keeps only results.json and design.yaml (the simulated episodes are
deleted: the seed regenerates them). Then: evalkit synthesize examples/synthesis/*/results.json
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

#: id, mechanism, intervention name, seed, planted rate ratio on reports
EVALUATIONS = (
    ("spoc_north", "single_point_of_contact", "A single point of contact in children's social care", 101, 0.88),
    ("spoc_east", "single_point_of_contact", "A missing-children coordinator shared by police and social care", 102, 0.92),
    ("spoc_west", "single_point_of_contact", "A named social-care liaison for every missing-child case", 103, 0.85),
    ("spoc_south", "single_point_of_contact", "A single point of contact in the police missing-persons unit", 104, 0.97),
    ("philomena_dales", "information_sharing", "The Philomena Protocol (care-home profile forms shared with police)", 201, 0.80),
    ("philomena_coast", "information_sharing", "The Philomena Protocol with return-home interview sharing", 202, 0.95),
    ("training_moors", "joint_training", "Joint training for police and care-home staff", 301, 1.00),
)

DESIGN = """\
# Synthetic evaluation for the synthesis example (examples/synthesis/make.py): seed {seed},
# planted rate ratio {rate_ratio} on reports (phased in over 3 months).
evalkit: 1
title: "{name} (synthetic evaluation {id})"
intervention:
  name: "{name}"
  mechanism: {mechanism}
  start: 2021-04
  transition: 3
data:
  source: data/episodes.csv.gz
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
  person_key: ephemeral
  extracted_at: 2024-03-31
  frequency: month
  window: {{start: 2016-01, end: 2023-12}}
  exposure:
    source: data/population.csv
    columns: {{unit: force, time: year, value: children}}
units:
  treated: [Northshire, Ashcombe, Brackenmoor]
  adoption: {{Eastmoor: 2022-01, Fellside: 2022-01, Harrowdale: 2022-10, Lowmarsh: 2022-10}}
  comparison: all_untreated
outcomes:
  - {{name: reports, measure: count, per: 1000}}
primary_outcome: reports
analysis:
  - {{method: did, outcome: reports, family: poisson, inference: analytic}}
alpha: 0.05
seed: {seed}
report:
  audience: commissioner
  disclosure: {{preset: default}}
"""


def make(ids=None, out=None) -> list[Path]:
    """Write <out>/<id>/{design.yaml,results.json} for the chosen evaluations (all by default).

    ``out`` defaults to examples/synthesis relative to the working directory, which the
    script sets to the repository root so that paths in results.json are repository paths.
    """
    from evalkit import load_design, run
    from evalkit.data.synthetic import write_spoc_rollout

    written = []
    for eval_id, mechanism, name, seed, rate_ratio in EVALUATIONS:
        if ids and eval_id not in ids:
            continue
        folder = (Path(out) if out is not None else Path("examples") / "synthesis") / eval_id
        folder.mkdir(parents=True, exist_ok=True)
        data = folder / "data"
        try:
            write_spoc_rollout(data, seed=seed, rate_ratio=rate_ratio)
            design_path = folder / "design.yaml"
            design_path.write_text(DESIGN.format(id=eval_id, mechanism=mechanism, name=name, seed=seed,
                                                 rate_ratio=rate_ratio), encoding="utf-8")
            results = run(load_design(design_path), command="python examples/synthesis/make.py")
            written.append(results.to_json(folder / "results.json"))
        finally:
            shutil.rmtree(data, ignore_errors=True)
    return written


if __name__ == "__main__":
    os.chdir(ROOT)  # paths in results.json are relative to the repository root
    sys.path.insert(0, str(ROOT))
    for path in make(sys.argv[1:] or None):
        print(f"wrote {path}")
