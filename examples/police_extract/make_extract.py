"""Write force_export.csv: a synthetic missing-persons export as a force analyst holds it.

    python examples/police_extract/make_extract.py     (writes force_export.csv beside this file)

Simulated, not real (no person in it exists). One row per missing-person occurrence, as a
force's missing-persons system exports it: UK day-first dates in local (Europe/London)
wall-clock time without a zone, "Found Date/Time" empty while the person is still missing,
and columns evalkit does not use. The generator draws true instants in UTC and writes them
as a London clock shows them, so the durations the file implies are real elapsed time;
tests/test_police_extract.py regenerates the file and checks it is byte-identical.

Planted on purpose (docs/police-extracts.md walks through them):

* an episode across each clock change of 2025: reported 30/03/2025 00:30 and found
  30/03/2025 03:30 (2 hours: the clocks skipped 01:00-02:00), reported 26/10/2025 00:30 and
  found 26/10/2025 03:30 (4 hours: the clocks went back, 01:00-02:00 happened twice);
* a report written 26/10/2025 01:30 (ambiguous: that time occurred twice) and one written
  30/03/2025 01:30 (nonexistent: the clocks went from 01:00 to 02:00), as real systems hold;
* a report at 00:30 on 1 April 2025 (23:30 UTC on 31 March): it counts in April;
* from 2024-10, the North and East divisions bring in return home interviews shared with the
  police, and their reports fall by a fifth (rate ratio 0.8).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

import numpy as np

LONDON = zoneinfo.ZoneInfo("Europe/London")
SEED = 20250330
DIVISIONS = {"North": 5.0, "South": 4.0, "East": 4.5, "West": 3.5, "Central": 6.0, "Coastal": 3.0}
TREATED, START, EFFECT = ("North", "East"), (2024, 10), 0.8
FIRST, LAST = (2023, 1), (2025, 12)
EXTRACTED = dt.datetime(2026, 1, 1, tzinfo=LONDON)  # the extract: taken at the end of 31/12/2025
HEADER = ["Occurrence Ref", "Force Area", "Division", "Person ID", "Age at Report", "Gender", "Risk Grading",
          "Looked After Child", "Reported Date/Time", "Found Date/Time", "Location Found", "Officer in Case",
          "Return Interview Offered"]
#: (division, reported, found) written exactly so, in London wall-clock time ("" = still missing)
PLANTED = [
    ("Central", "30/03/2025 00:30", "30/03/2025 03:30"),   # spring: 2 hours elapsed
    ("Central", "26/10/2025 00:30", "26/10/2025 03:30"),   # autumn: 4 hours elapsed
    ("South", "26/10/2025 01:30", "26/10/2025 06:00"),     # ambiguous report: read as 01:30 BST
    ("West", "30/03/2025 01:30", "30/03/2025 09:15"),      # nonexistent report: read as 01:30 GMT (02:30 BST)
    ("Coastal", "01/04/2025 00:30", "01/04/2025 07:45"),   # April by the local calendar (31 March in UTC)
]


def _months():
    year, month = FIRST
    while (year, month) <= LAST:
        yield year, month
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _local(instant: dt.datetime) -> str:
    return instant.astimezone(LONDON).strftime("%d/%m/%Y %H:%M")


def rows(seed: int = SEED) -> list[list[str]]:
    """The export's rows (without the header), in the order the file holds them."""
    rng = np.random.default_rng(seed)
    people = [f"P{n:07d}" for n in rng.choice(9_000_000, size=180, replace=False) + 1_000_000]
    ages = {p: int(rng.integers(11, 18)) for p in people}
    genders = {p: str(rng.choice(["Male", "Female", "Female", "Unknown"], p=[0.45, 0.45, 0.05, 0.05])) for p in people}
    looked_after = {p: str(rng.choice(["Y", "N"], p=[0.4, 0.6])) for p in people}
    home = {p: str(rng.choice(list(DIVISIONS))) for p in people}
    out = []
    for year, month in _months():
        first = dt.datetime(year, month, 1, tzinfo=dt.timezone.utc)
        days = (dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=dt.timezone.utc) - first).days
        for division, mean in DIVISIONS.items():
            rate = mean * (EFFECT if division in TREATED and (year, month) >= START else 1.0)
            for _ in range(int(rng.poisson(rate))):
                local_people = [p for p in people if home[p] == division] or people
                person = str(rng.choice(local_people))
                reported = first + dt.timedelta(minutes=int(rng.integers(0, days * 24 * 60)))
                hours = float(rng.lognormal(2.3, 1.1))
                found = reported + dt.timedelta(minutes=max(5, round(hours * 60)))
                out.append([division, person, reported, None if found >= EXTRACTED else found])
    for division, reported_text, found_text in PLANTED:
        person = str(rng.choice([p for p in people if home[p] == division] or people))
        out.append([division, person, reported_text, found_text])
    # the system's own order: by report time as its clock shows it, then occurrence
    written = []
    for division, person, reported, found in out:
        reported_text = reported if isinstance(reported, str) else _local(reported)
        found_text = found if isinstance(found, str) else ("" if found is None else _local(found))
        written.append((dt.datetime.strptime(reported_text, "%d/%m/%Y %H:%M"), division, person, reported_text, found_text))
    written.sort(key=lambda r: (r[0], r[1], r[2]))
    table = []
    for number, (_, division, person, reported_text, found_text) in enumerate(written, start=1):
        year = reported_text[8:10]
        table.append([
            f"MP/{year}/{number:06d}", "Northshire Police", division, person, str(ages[person]), genders[person],
            str(rng.choice(["High", "Medium", "Medium", "Low"])), looked_after[person], reported_text, found_text,
            "" if not found_text else str(rng.choice(["Home address", "Friend's address", "Public place", "Other"])),
            f"PC {int(rng.integers(1000, 9999))}", "" if not found_text else str(rng.choice(["Yes", "No"])),
        ])
    return table


def _cell(value: str) -> str:
    return f'"{value}"' if "," in value or '"' in value else value


def write(path: Path, seed: int = SEED) -> Path:
    """Write the export (CRLF line ends, as exported from the force's system)."""
    lines = [",".join(_cell(v) for v in HEADER)] + [",".join(_cell(v) for v in row) for row in rows(seed)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


if __name__ == "__main__":
    print(write(Path(__file__).resolve().parent / "force_export.csv"))
