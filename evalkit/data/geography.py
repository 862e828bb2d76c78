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

The lookup also holds each upper-tier authority's DfE three-digit code (208 Lambeth, 886
Kent), so SSDA903 folders and DfE files named by those codes get the same units as ones
named by ONS codes (:func:`ons_code`), and the upper-tier authorities abolished since 2009
(Bedfordshire and Cheshire 2009, Bournemouth, Poole and Dorset 2019, Buckinghamshire 2020,
Northamptonshire 2021, ...) with the day each ceased and the codes that replaced it, so older
returns and published series still count in their force areas. An authority the ONS recoded
while the DfE kept its code (Barnsley E08000016 to E08000038 in 2025) is one authority under
its codes (:func:`recoding_chain`), named in a run by the code its data use most
(:func:`recoded_names`).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from ..errors import EvalkitError, did_you_mean

METROPOLITAN, CITY_OF_LONDON = "E23000001", "E23000034"
#: a DfE three-digit code is read as the ONS code its authority had on this day: the vintage of
#: the DfE's GIAS code list the lookup was checked against (examples/geography/SOURCE.md)
DFE_CODE_VINTAGE = "2024-04-01"
DFE_CODE = re.compile(r"^\d{3}$")


class Authority(NamedTuple):
    """One row of the lookup."""

    name: str
    force: str
    force_name: str
    upper: str
    upper_name: str
    dfe: str = ""  # the DfE three-digit code ("" for districts and Welsh areas)
    started: str = ""  # ISO day the ONS code came into use ("" = in use on 1 January 2009)
    ended: str = ""  # ISO day it went out of use ("" = still in use)
    replaced_by: tuple[str, ...] = ()


def lookup_path() -> Path:
    """The shipped lookup (a link to examples/geography/la_to_pfa.csv in the repository)."""
    from ..resources import shipped

    return shipped("examples/geography/la_to_pfa.csv")


@lru_cache(maxsize=1)
def load_lookup() -> dict[str, tuple[str, str, str]]:
    """LA code -> (LA name, force area code, force area name)."""
    return {code: row[:3] for code, row in _rows().items()}


@lru_cache(maxsize=1)
def _rows() -> dict[str, Authority]:
    """LA code -> its row (name, force area, upper tier, DfE code, dates, successors)."""
    path = lookup_path()
    if not path.exists():
        raise EvalkitError(str(path), "the local authority to police force area lookup is not installed", "reinstall evalkit")
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["LA_CODE"]: Authority(row["LA_NAME"], row["PFA_CODE"], row["PFA_NAME"], row["UTLA_CODE"],
                                          row["UTLA_NAME"], row.get("DFE_CODE") or "", row.get("STARTED") or "",
                                          row.get("ENDED") or "", tuple((row.get("REPLACED_BY") or "").split()))
                for row in csv.DictReader(handle)}


def authority(code: str) -> Authority | None:
    """The lookup's row for an ONS code (None when it has none)."""
    return _rows().get(str(code))


@lru_cache(maxsize=1)
def dfe_codes() -> dict[str, str]:
    """DfE three-digit code -> the ONS code its authority had on :data:`DFE_CODE_VINTAGE`.

    A DfE code outlives ONS recodings of the same area (815 North Yorkshire: the county
    E10000023 to March 2023, the unitary E06000065 since; 390 Gateshead: E08000020 to 2013,
    E08000037 since), so one folder named 815 is one unit, named as of the vintage. Codes of
    abolished authorities (835 Dorset county, 928 Northamptonshire) name those authorities.
    """
    out: dict[str, str] = {}
    for code, row in _rows().items():
        if row.dfe and (not row.started or row.started <= DFE_CODE_VINTAGE) and \
                (not row.ended or row.ended >= DFE_CODE_VINTAGE):
            out[row.dfe] = code
    for code, row in _rows().items():  # an authority abolished before the vintage keeps its own code
        if row.dfe and row.dfe not in out:
            out[row.dfe] = code
    return out


@lru_cache(maxsize=1)
def dfe_code_pairs() -> frozenset[tuple[str, str]]:
    """Every (DfE code, ONS code) pair the DfE has used (815 with E10000023 and with E06000065)."""
    return frozenset((row.dfe, code) for code, row in _rows().items() if row.dfe)


def ons_code(label: str, where: str, key: str | None = None) -> str:
    """An authority's ONS code from its label: a DfE three-digit code is looked up, anything else kept.

    Raises
    ------
    EvalkitError
        For a three-digit code the DfE list does not hold, naming ``where`` (the folder or file).
    """
    label = str(label).strip()
    if not DFE_CODE.match(label):
        return label
    codes = dfe_codes()
    if label not in codes:
        raise EvalkitError(where, f"'{label}' is not a DfE local authority code{did_you_mean(label, list(codes))}",
                           "name the authority by its DfE three-digit code (208 for Lambeth) or its ONS code "
                           "(E09000022); the known codes are in examples/geography/la_to_pfa.csv", key=key)
    return codes[label]


def authority_name(code: str) -> str:
    """The authority's name (the code itself when the lookup has none)."""
    row = _rows().get(str(code))
    return row.name if row else str(code)


def same_authority(code: str) -> str:
    """A key shared by the codes of one authority: its DfE code (E10000023 and E06000065 are both
    815, North Yorkshire), or the ONS code itself when it has none."""
    row = _rows().get(str(code))
    return f"DfE {row.dfe}" if row and row.dfe else str(code)


def collection_year_span(code: str) -> tuple[int | None, int | None]:
    """The first and last collection years (named by the year they end: 2022 is April 2021 to
    March 2022) in which the authority's code was in use on any day; None for no bound.

    Dorset county (ended 31 March 2019) runs to 2019, and Bournemouth, Christchurch and Poole
    (from 1 April 2019) from 2020.
    """
    row = _rows().get(str(code))
    if row is None:
        return None, None

    def year_of(day: str) -> int:
        when = dt.date.fromisoformat(day)
        return when.year + 1 if when.month >= 4 else when.year

    return (year_of(row.started) if row.started else None), (year_of(row.ended) if row.ended else None)


@lru_cache(maxsize=1)
def _recodings() -> dict[str, tuple[str, ...]]:
    """Each code of a recoded authority -> every code of that authority, oldest first."""
    rows = _rows()

    def upper_tier(code: str) -> bool:
        return rows[code].upper == code

    successor: dict[str, str] = {}
    for code, row in rows.items():
        if not (row.dfe and upper_tier(code) and len(row.replaced_by) == 1):
            continue
        (new,) = row.replaced_by
        after = rows.get(new)
        # a pure recoding: one successor with the same DfE code, the same force area, and no
        # other upper-tier authority merged into it (a county's own districts lie inside it)
        if after is None or after.dfe != row.dfe or after.force != row.force or not upper_tier(new):
            continue
        if [p for p in predecessors(new) if upper_tier(p)] == [code]:
            successor[code] = new
    chains: dict[str, tuple[str, ...]] = {}
    for code in successor:
        if code in successor.values():
            continue  # not the oldest code of its chain
        chain = [code]
        while chain[-1] in successor:
            chain.append(successor[chain[-1]])
        for member in chain:
            chains[member] = tuple(chain)
    return chains


def recoding_chain(code: str) -> tuple[str, ...]:
    """Every ONS code of the authority ``code`` names, oldest first, across pure recodings.

    A pure recoding gives an authority a new ONS code but leaves it the same authority: the
    DfE keeps its three-digit code, it has one successor, in the same force area, and no
    other upper-tier authority is merged into it (Barnsley E08000016 to E08000038 in 2025,
    Gateshead E08000020 to E08000037 in 2013, North Yorkshire's county E10000023 to the
    unitary E06000065 in 2023, its districts lying inside it). A code with no recoding is
    its own chain; an abolition or merger (Northamptonshire, Dorset) is not a recoding.
    """
    return _recodings().get(str(code), (str(code),))


def recoded_names(counts: dict[str, int]) -> dict[str, str]:
    """For the codes data hold (with how many returns or years each names), the one name of each
    recoded authority: the code the data use most, the newest on a tie. Codes of authorities
    never recoded are left out (they keep their names).

    Choosing from the data keeps a run's unit names the codes its user wrote (returns all under
    E08000016 stay E08000016; all under E08000038 stay E08000038), while every code of the
    authority, in the data or in the design, names that one unit.
    """
    out: dict[str, str] = {}
    chains = {recoding_chain(code) for code in counts if len(recoding_chain(code)) > 1}
    for chain in sorted(chains):
        held = [c for c in chain if c in counts]
        # the most used; on a tie the newest (the later in the chain)
        name = max(held, key=lambda c: (counts[c], chain.index(c)))
        out.update({c: name for c in chain})
    return out


def chain_span(code: str) -> tuple[int | None, int | None]:
    """:func:`collection_year_span` of an authority across its recodings (the first code's
    first year, the last code's last year)."""
    chain = recoding_chain(code)
    return collection_year_span(chain[0])[0], collection_year_span(chain[-1])[1]


def unknown_code_error(code: str, where: str, key: str | None = None) -> EvalkitError:
    """The one-line error for an ONS-style code the shipped lookup does not hold.

    A suggestion is made only when the code is clearly a typo: exactly one known code is one
    changed or two swapped adjacent characters away (a loose match would propose a
    neighbouring authority, E08000036 Wakefield for an unknown E08000016-like code), and
    only within the code's country (its first letter: N09000001 is not a typo of E09000001).
    """
    # the first letter is the country (E England, W Wales, N Northern Ireland): never suggest across it
    known = [c for c in _rows() if c[:1] == str(code)[:1] and (c[:3] == str(code)[:3] or len(c) == len(str(code)))]
    close = [c for c in known if _one_typo(str(code), c)]
    hint = f" (did you mean '{close[0]}', {authority_name(close[0])}?)" if len(close) == 1 else ""
    return EvalkitError(where, f"'{code}' is not a local authority code in the shipped lookup{hint}",
                        "name the authority by its ONS code or DfE three-digit code (the lookup, with the codes "
                        "it holds and its vintage: examples/geography/la_to_pfa.csv and SOURCE.md)", key=key)


def _one_typo(typed: str, code: str) -> bool:
    """One character changed, or two adjacent characters swapped."""
    if len(typed) != len(code) or typed == code:
        return False
    diff = [i for i, (a, b) in enumerate(zip(typed, code)) if a != b]
    return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                              and typed[diff[0]] == code[diff[1]] and typed[diff[1]] == code[diff[0]])


def predecessors(code: str) -> list[str]:
    """The authorities the lookup says ``code`` replaced (directly)."""
    return sorted(c for c, row in _rows().items() if str(code) in row.replaced_by)


def _known(authorities, where: str) -> list[tuple[str, str]]:
    """(code as given, ONS code) of each authority, each checked to be in the lookup (a DfE
    three-digit code read as its ONS code), and no county with its own districts."""
    rows = _rows()
    codes = sorted({str(a) for a in authorities})
    pairs = [(code, ons_code(code, where, key="units.aggregate")) for code in codes]
    for code, ons in pairs:
        if ons not in rows:
            raise EvalkitError(where, f"local authority '{code}' is not in the police force area lookup"
                               f"{did_you_mean(code, list(rows))}",
                               "name authorities by ONS code or DfE three-digit code (the lookup's authorities "
                               "and what it does not cover: examples/geography/SOURCE.md), or leave "
                               "units.aggregate out", key="units.aggregate")
    held = {ons for _, ons in pairs}
    for _, code in pairs:
        county = rows[code].upper
        # the county under any of its codes: data renamed to one code per recoded authority hold North
        # Yorkshire as E06000065 even for the years E10000023 named it, its districts' county
        same = sorted(held & set(recoding_chain(county))) if county != code else []
        if same:
            raise EvalkitError(where, f"holds both the county {same[0]} ({rows[same[0]].name}) and its district "
                               f"{code} ({rows[code].name}): the district would count twice in the aggregate",
                               "hold either the county's figures or its districts', not both", key="units.aggregate")
    return pairs


def police_force_areas(authorities, where: str, merge_city_of_london: bool = True) -> dict[str, str]:
    """Map each authority code to its police force area code.

    A shire district (E07) lands in its county's force area, so district-level and
    county-level data aggregate to the same force-area figures.

    Raises
    ------
    EvalkitError
        For an authority the lookup does not hold (a typo, an unknown DfE code), or for a county
        held together with one of its own districts (counted twice).
    """
    rows = _rows()
    mapping = {}
    for given, code in _known(authorities, where):
        force = rows[code].force
        mapping[given] = METROPOLITAN if (merge_city_of_london and force == CITY_OF_LONDON) else force
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
    return {given: rows[code].upper for given, code in _known(authorities, where)}


def force_area_name(code: str) -> str:
    """The force area's name for a code (the code itself when unknown)."""
    for _, force, name in load_lookup().values():
        if force == code:
            return name
    return code
