"""Local authority to police force area: the shipped lookup and unit aggregation.

``units.aggregate: police_force_area`` turns local-authority data (SSDA903 returns, the
DfE published statistics) into force-area data: each authority's records, counts and
exposure are counted in its police force area (ONS E23/W15 codes). The lookup ships in
examples/geography/la_to_pfa.csv; its sources, vintage and the authorities it does not
cover are in examples/geography/SOURCE.md.

It holds both tiers of England's two-tier areas: each shire county (E10) and each of its
districts (E07) lands in the county's force area, and every row names the authority's
upper tier (a district's county; a unitary authority itself), so district-level data
(a force's own extract, a district's counts) aggregates to counties with
:func:`upper_tier_authorities` and to force areas with :func:`police_force_areas`. Data
holding a county and one of its districts at once would count the district twice and is
refused.

The City of London has its own force (E23000034); most force-level statistics count it
with the Metropolitan Police (E23000001), which ``units.merge_city_of_london`` (default
true) does.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from ..errors import EvalkitError, did_you_mean

METROPOLITAN, CITY_OF_LONDON = "E23000001", "E23000034"


def lookup_path() -> Path:
    """The shipped lookup (a link to examples/geography/la_to_pfa.csv in the repository)."""
    from ..resources import shipped

    return shipped("examples/geography/la_to_pfa.csv")


@lru_cache(maxsize=1)
def load_lookup() -> dict[str, tuple[str, str, str]]:
    """LA code -> (LA name, force area code, force area name)."""
    return {code: row[:3] for code, row in _rows().items()}


@lru_cache(maxsize=1)
def _rows() -> dict[str, tuple[str, str, str, str, str]]:
    """LA code -> (LA name, force area code, force area name, upper-tier code, upper-tier name)."""
    path = lookup_path()
    if not path.exists():
        raise EvalkitError(str(path), "the local authority to police force area lookup is not installed", "reinstall evalkit")
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["LA_CODE"]: (row["LA_NAME"], row["PFA_CODE"], row["PFA_NAME"], row["UTLA_CODE"], row["UTLA_NAME"])
                for row in csv.DictReader(handle)}


def _known(authorities, where: str) -> list[str]:
    """The authority codes, each checked to be in the lookup, and no county with its own districts."""
    rows = _rows()
    codes = sorted({str(a) for a in authorities})
    for code in codes:
        if code not in rows:
            raise EvalkitError(where, f"local authority '{code}' is not in the police force area lookup"
                               f"{did_you_mean(code, list(rows))}",
                               "name authorities by ONS code (DfE three-digit codes are not covered: "
                               "examples/geography/SOURCE.md), or leave units.aggregate out", key="units.aggregate")
    held = set(codes)
    for code in codes:
        county = rows[code][3]
        if county != code and county in held:
            raise EvalkitError(where, f"holds both the county {county} ({rows[county][0]}) and its district {code} "
                               f"({rows[code][0]}): the district would count twice in the aggregate",
                               "hold either the county's figures or its districts', not both", key="units.aggregate")
    return codes


def police_force_areas(authorities, where: str, merge_city_of_london: bool = True) -> dict[str, str]:
    """Map each authority code to its police force area code.

    A shire district (E07) lands in its county's force area, so district-level and
    county-level data aggregate to the same force-area figures.

    Raises
    ------
    EvalkitError
        For an authority the lookup does not hold (a DfE code, a typo), or for a county
        held together with one of its own districts (counted twice).
    """
    rows = _rows()
    mapping = {}
    for code in _known(authorities, where):
        force = rows[code][1]
        mapping[code] = METROPOLITAN if (merge_city_of_london and force == CITY_OF_LONDON) else force
    return mapping


def upper_tier_authorities(authorities, where: str) -> dict[str, str]:
    """Map each authority code to its upper-tier authority: a shire district (E07) to its
    county (E10), every other authority to itself (the tier that runs children's services).

    Raises
    ------
    EvalkitError
        As :func:`police_force_areas`.
    """
    rows = _rows()
    return {code: rows[code][3] for code in _known(authorities, where)}


def force_area_name(code: str) -> str:
    """The force area's name for a code (the code itself when unknown)."""
    for _, force, name in load_lookup().values():
        if force == code:
            return name
    return code
