"""Write cla_missing_la.csv: a small MADE-UP file in the DfE published column layout.

No network here, so the real open-data file is not shipped: the numbers below are
invented (seeded), only the columns and their conventions follow the "Children looked
after in England" open data (SOURCE.md). Run: ``python make_fixture.py``.
"""

import csv

import numpy as np

AUTHORITIES = (  # new_la_code, old_la_code, la_name, region_code, region_name, looked after during the year
    ("E08000036", "384", "Wakefield", "E12000003", "Yorkshire and The Humber", 720),
    ("E08000034", "382", "Kirklees", "E12000003", "Yorkshire and The Humber", 900),
    ("E08000016", "370", "Barnsley", "E12000003", "Yorkshire and The Humber", 520),
    ("E08000033", "381", "Calderdale", "E12000003", "Yorkshire and The Humber", 510),
    ("E08000017", "371", "Doncaster", "E12000003", "Yorkshire and The Humber", 830),
    ("E08000018", "372", "Rotherham", "E12000003", "Yorkshire and The Humber", 860),
    ("E09000001", "201", "City of London", "E12000007", "London", 12),
)
YEARS = ("201819", "201920", "202021", "202122", "202223")
STATUSES = ("Children looked after during the year", "Children who went missing", "Missing incidents",
            "Children who were away from placement without authorisation", "Away from placement incidents")


def main(seed: int = 20240602) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for year in YEARS:
        totals = dict.fromkeys(STATUSES, 0)
        for code, old, name, region, region_name, looked_after in AUTHORITIES:
            children = int(looked_after * rng.uniform(0.95, 1.05))
            went = int(rng.binomial(children, 0.10))
            incidents = int(rng.poisson(6.0 * went))
            away = int(rng.binomial(children, 0.04))
            away_incidents = int(rng.poisson(2.5 * away))
            values = dict(zip(STATUSES, (children, went, incidents, away, away_incidents)))
            for status in STATUSES:
                totals[status] += values[status]
                number = values[status]
                shown = "c" if 0 < number < 6 and status != STATUSES[0] else str(number)  # DfE-style suppression
                rows.append([year, "Financial year", "Local authority", "E92000001", "England", region, region_name,
                             old, name, code, status, shown])
        for status in STATUSES:
            rows.append([year, "Financial year", "National", "E92000001", "England", "", "", "", "", "", status,
                         str(totals[status])])
    with open("cla_missing_la.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["time_period", "time_identifier", "geographic_level", "country_code", "country_name",
                         "region_code", "region_name", "old_la_code", "la_name", "new_la_code", "missing_status",
                         "number"])
        writer.writerows(rows)


if __name__ == "__main__":
    main()
