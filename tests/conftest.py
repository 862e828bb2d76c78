"""Shared helpers: the repository root, and small hand-made data sets."""

from __future__ import annotations

import os

# one BLAS thread per process: the suite's many small fits are slower, not faster, when
# OpenBLAS spreads them over a busy 2-core machine
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root() -> Path:
    return ROOT


#: The pseudonym key every test runs with (data.columns.person needs one: evalkit/data/pseudonymise.py).
TEST_PSEUDONYM_KEY = "evalkit-test-key-0123456789abcdef"


@pytest.fixture(autouse=True, scope="session")
def pseudonym_key():
    """Person identifiers are pseudonymised with a key from the environment: tests set one
    (session-wide, so module-scoped fixtures have it too; a test may delete it with monkeypatch)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVALKIT_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
        yield TEST_PSEUDONYM_KEY


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


EPISODE_DESIGN = """
evalkit: 1
title: Test design
intervention:
  name: Test SPOC
  mechanism: single_point_of_contact
  start: 2021-01
data:
  source: episodes.csv
  layout: episodes
  columns: {unit: force, reported_at: reported_at, found_at: found_at, person: child_id}
  extracted_at: 2021-12-31
  frequency: month
  window: {start: 2020-01, end: 2021-12}
units:
  treated: [A]
outcomes:
  - {name: reports, measure: count}
  - {name: persons, measure: count}
  - {name: repeat_reports, measure: count}
analysis:
  - {method: its, outcome: reports, family: poisson, errors: none}
"""


@pytest.fixture
def episode_project(tmp_path):
    """A two-area episode extract with a design, for data tests: returns the design path."""
    rows = ["force,reported_at,found_at,child_id"]
    # area A: child c1 every month (repeats), c2 in some months; area B: c3 every other month
    for year in (2020, 2021):
        for month in range(1, 13):
            rows.append(f"A,{year}-{month:02d}-03 10:00,{year}-{month:02d}-03 18:30,c1")
            if month % 3 == 0:
                rows.append(f"A,{year}-{month:02d}-10 22:15,,c2" if (year, month) == (2021, 12)
                            else f"A,{year}-{month:02d}-10 22:15,{year}-{month:02d}-11 08:15,c2")
            if month % 2 == 0:
                rows.append(f"B,{year}-{month:02d}-05 09:00,{year}-{month:02d}-05 12:00,c3")
    write(tmp_path / "episodes.csv", "\n".join(rows) + "\n")
    return write(tmp_path / "design.yaml", EPISODE_DESIGN)
