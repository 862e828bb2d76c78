"""Local authority to police force area: the shipped lookup and unit aggregation.

``units.aggregate: police_force_area`` turns local-authority data (SSDA903 returns, the
DfE published statistics) into force-area data: each authority's records, counts and
exposure are counted in its police force area (ONS E23/W15 codes). The lookup ships in
examples/geography/la_to_pfa.csv; its sources, vintage and the authorities it does not
cover are in examples/geography/SOURCE.md.

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
    path = lookup_path()
    if not path.exists():
        raise EvalkitError(str(path), "the local authority to police force area lookup is not installed", "reinstall evalkit")
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["LA_CODE"]: (row["LA_NAME"], row["PFA_CODE"], row["PFA_NAME"]) for row in csv.DictReader(handle)}


def police_force_areas(authorities, where: str, merge_city_of_london: bool = True) -> dict[str, str]:
    """Map each authority code to its police force area code.

    Raises
    ------
    EvalkitError
        For an authority the lookup does not hold (a shire county, a DfE code, a typo).
    """
    lookup = load_lookup()
    mapping = {}
    for code in sorted({str(a) for a in authorities}):
        if code not in lookup:
            raise EvalkitError(where, f"local authority '{code}' is not in the police force area lookup"
                               f"{did_you_mean(code, list(lookup))}",
                               "name authorities by ONS code; shire counties and DfE codes are not covered "
                               "(examples/geography/SOURCE.md), so leave units.aggregate out for them", key="units.aggregate")
        force = lookup[code][1]
        mapping[code] = METROPOLITAN if (merge_city_of_london and force == CITY_OF_LONDON) else force
    return mapping


def force_area_name(code: str) -> str:
    """The force area's name for a code (the code itself when unknown)."""
    for _, force, name in load_lookup().values():
        if force == code:
            return name
    return code
