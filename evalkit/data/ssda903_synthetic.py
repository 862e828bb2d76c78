"""Synthetic SSDA903 returns for ten local authorities, with a planted effect and rule breaches.

The shipped example of ``data.layout: ssda903`` (``evalkit example ssda903``,
designs/ssda903_return_home.yaml). Shapes follow DOMAIN.md: looked-after children go
missing far more often than others (about 1 in 10 a year, about 6 reports each, so a
gamma frailty with most children never missing), mostly teenagers, most found within a
day (the DOMAIN.md lognormal of hours to found, mu = 1.96, sigma = 1.72 log-hours). All
randomness comes from one ``numpy.random.default_rng(seed)``: a seed always writes the
same bytes.

How the returns are made
------------------------
* Children enter care in each authority as a Poisson stream from April 2015 (a steady
  state by the first return), aged 0-17 (teenagers over-represented), and stay a
  lognormal time (median about 1.6 years), never past their 18th birthday. A period of
  care is cut into episodes at placement changes (about one a year).
* While in care a child aged 11 or over goes missing at a rate that is their frailty
  (gamma, shape 0.08) times 2.4 a year; under 11, a twentieth of that. An episode lasts
  the DOMAIN.md lognormal number of hours from a random hour of the day; a child found
  after care ended is recorded as found the day care ended. Episodes of one child never
  overlap (a candidate starting while the previous one is open is dropped). A fifth
  are recorded A (away from placement without authorisation) rather than M. With seed
  20240601: about 13% of the children looked after in a year go missing in it, about 6
  episodes each, 58% back the same day and 83% by the next (about 28 episodes per
  authority and month).
* Planted effect: in the five adopting authorities, from their adoption month, missing
  episodes are kept with probability 0.85 (rate ratio 0.85 on M and A alike, by
  independent thinning), and time to found is shortened by a factor 1 / 1.2.
* The returns: for each authority and collection year 2020-2024 (1 April - 31 March),
  Header, Episodes and Missing tables as the DfE specifies them (dates dd/mm/YYYY), or
  (``write_returns(..., fmt="xml")``) the same returns as the DfE's XML file. An
  episode or missing period open at 31 March has a blank end date and appears again,
  closed or still open, in the next year's return. Still open at 31 March 2024:
  censored.
* Rule breaches, a few per rule, are planted in the Missing tables (truth.json lists
  them): 564 (blank start), 567 (end before start), 570 (start after the year), 574
  (overlapping periods), 577 (care ended while missing), 581 (missing before care began)
  and 586 (start before the date of birth).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .ssda903 import TABLE_COLUMNS

__all__ = ["AUTHORITIES", "simulate_returns", "write_returns"]

SEED = 20240601
#: ONS code, name, children looked after on a typical day, adoption month (None: never)
AUTHORITIES = (
    ("E08000036", "Wakefield", 300, "2021-10"),
    ("E08000035", "Leeds", 420, "2021-10"),
    ("E08000034", "Kirklees", 330, "2022-04"),
    ("E08000016", "Barnsley", 240, "2022-04"),
    ("E08000019", "Sheffield", 380, "2022-04"),
    ("E08000032", "Bradford", 400, None),
    ("E08000033", "Calderdale", 230, None),
    ("E08000017", "Doncaster", 320, None),
    ("E08000018", "Rotherham", 310, None),
    ("E06000014", "York", 200, None),
)
YEARS = (2020, 2021, 2022, 2023, 2024)
SIM_START = np.datetime64("2015-04-01")
SIM_END = np.datetime64("2024-03-31")  # the last collection year's end
RATE_RATIO = 0.85
TIME_FACTOR = 1 / 1.2
MISSING_PER_YEAR, FRAILTY_SHAPE, UNDER_11_FACTOR = 2.4, 0.08, 0.05
AWAY_SHARE = 0.2
STAY_MEDIAN_DAYS, STAY_SIGMA = 600.0, 1.0
PLACEMENT_CHANGES_PER_YEAR = 0.9
FOUND_MU, FOUND_SIGMA = 1.96, 1.72
ENTRY_AGES = np.arange(18)
ENTRY_AGE_P = np.array([8, 4, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 5, 6, 7, 8, 9, 4], dtype=float)
ETHNIC = ("WBRI", "WBRI", "WBRI", "WOTH", "MWBC", "AIND", "APKN", "BAFR", "OOTH")
BREACHES = {"564": 1, "567": 2, "570": 1, "574": 2, "577": 2, "581": 2, "586": 2}


def _days(values) -> np.ndarray:
    return np.asarray(values, dtype="datetime64[D]")


def _collection_bounds(year: int):
    return np.datetime64(f"{year - 1}-04-01"), np.datetime64(f"{year}-03-31")


def _simulate_authority(rng: np.random.Generator, la_index: int, typical: int, adoption: str | None):
    """Children, care episodes and missing periods of one authority (whole history)."""
    stay_mean = STAY_MEDIAN_DAYS * np.exp(STAY_SIGMA ** 2 / 2)
    span = int((SIM_END - SIM_START).astype(int)) + 1
    n_children = rng.poisson(typical / stay_mean * span) + typical  # + those in care at the start
    entry = SIM_START + rng.integers(-int(stay_mean * 2), span, n_children).astype("timedelta64[D]")
    entry_age = rng.choice(ENTRY_AGES, n_children, p=ENTRY_AGE_P / ENTRY_AGE_P.sum())
    dob = entry - (entry_age * 365.25 + rng.uniform(0, 365, n_children)).astype("timedelta64[D]")
    stay = np.maximum(1, rng.lognormal(np.log(STAY_MEDIAN_DAYS), STAY_SIGMA, n_children)).astype(np.int64)
    eighteenth = dob + np.timedelta64(int(18 * 365.25), "D")
    leave = np.minimum(entry + stay.astype("timedelta64[D]"), eighteenth)
    keep = (leave > SIM_START) & (leave > entry)
    entry, dob, leave = entry[keep], dob[keep], leave[keep]
    n = entry.size
    order = np.lexsort((dob.astype(np.int64), entry.astype(np.int64)))
    entry, dob, leave = entry[order], dob[order], leave[order]
    sex = rng.choice(["1", "2"], n, p=[0.56, 0.44])
    ethnic = rng.choice(ETHNIC, n)
    open_at_end = leave > SIM_END
    child_ids = np.array([f"{100001 + 7 * i + la_index}" for i in range(n)])

    episodes = []
    for i in range(n):
        length = int((min(leave[i], SIM_END + 1) - entry[i]).astype(int))
        changes = rng.poisson(PLACEMENT_CHANGES_PER_YEAR * length / 365.25)
        cuts = np.unique(rng.integers(1, max(length, 2), changes)) if length > 1 and changes else np.array([], int)
        bounds = np.concatenate([[0], cuts, [length]]).astype(np.int64)
        for k in range(len(bounds) - 1):
            decom = entry[i] + np.timedelta64(int(bounds[k]), "D")
            last = k == len(bounds) - 2
            dec = np.datetime64("NaT") if (last and open_at_end[i]) else entry[i] + np.timedelta64(int(bounds[k + 1]), "D")
            episodes.append((i, decom, dec, "S" if k == 0 else "P"))

    adopt_day = np.datetime64(adoption + "-01") if adoption else None
    frailty = rng.gamma(FRAILTY_SHAPE, 1 / FRAILTY_SHAPE, n)
    missing = []
    for i in range(n):
        start, stop = entry[i], min(leave[i], SIM_END + 1)
        length = int((stop - start).astype(int))
        if length <= 0:
            continue
        count = rng.poisson(frailty[i] * MISSING_PER_YEAR * length / 365.25)
        if not count:
            continue
        days = np.sort(rng.integers(0, length, count))
        previous_end = None
        for day in days:
            when = start + np.timedelta64(int(day), "D")
            age = (when - dob[i]).astype(int) / 365.25
            effect = adopt_day is not None and when >= adopt_day
            keep_p = (UNDER_11_FACTOR if age < 11 else 1.0) * (RATE_RATIO if effect else 1.0)
            if rng.random() >= keep_p:
                continue
            hour = rng.integers(0, 24)
            hours = rng.lognormal(FOUND_MU, FOUND_SIGMA) * (TIME_FACTOR if effect else 1.0)
            end = when + np.timedelta64(int((hour + hours) // 24), "D")
            if previous_end is not None and when <= previous_end:
                continue  # the child is still missing from the previous episode
            if not open_at_end[i] or end <= SIM_END:
                end = min(end, leave[i]) if not open_at_end[i] else end
            if end > SIM_END:
                end = np.datetime64("NaT")  # still missing when the last return was made
            code = "A" if rng.random() < AWAY_SHARE else "M"
            missing.append((i, when, end, code))
            previous_end = end if not np.isnat(end) else SIM_END + 1
            if np.isnat(end):
                break
    children = pd.DataFrame({"CHILD": child_ids, "SEX": sex, "DOB": dob, "ETHNIC": ethnic, "entry": entry,
                             "leave": np.where(open_at_end, np.datetime64("NaT"), leave)})
    eps = pd.DataFrame(episodes, columns=["i", "DECOM", "DEC", "RNE"])
    eps["CHILD"] = child_ids[eps["i"]]
    mis = pd.DataFrame(missing, columns=["i", "MIS_START", "MIS_END", "MISSING"])
    mis["CHILD"] = child_ids[mis["i"]]
    mis["DOB"] = dob[mis["i"]]
    return children, eps, mis


def _returns_of(children, eps, mis, year: int, rng: np.random.Generator):
    """The three tables of one collection year's return."""
    first, last = _collection_bounds(year)
    e = eps[(eps["DECOM"] <= last) & (eps["DEC"].isna() | (eps["DEC"] >= first))].copy()
    e.loc[e["DEC"] > last, "DEC"] = pd.NaT
    e = e.sort_values(["CHILD", "DECOM"], kind="stable")
    n = len(e)
    episodes = pd.DataFrame({
        "CHILD": e["CHILD"].to_numpy(), "DECOM": e["DECOM"].to_numpy(), "RNE": e["RNE"].to_numpy(),
        "LS": rng.choice(["C2", "C2", "V2", "J2"], n), "CIN": rng.choice(["N1", "N2", "N4"], n),
        "PLACE": rng.choice(["U1", "U4", "K2", "R1"], n), "PLACE_PROVIDER": rng.choice(["PR1", "PR4"], n),
        "DEC": e["DEC"].to_numpy(), "REC": np.where(e["DEC"].isna(), "", "X1"),
        "REASON_PLACE_CHANGE": "", "HOME_POST": "WF1", "PL_POST": "WF2", "URN": "",
    })
    in_return = children[children["CHILD"].isin(set(e["CHILD"]))].sort_values("CHILD")
    header = pd.DataFrame({
        "CHILD": in_return["CHILD"].to_numpy(), "SEX": in_return["SEX"].to_numpy(), "DOB": in_return["DOB"].to_numpy(),
        "ETHNIC": in_return["ETHNIC"].to_numpy(), "UPN": "", "MOTHER": "", "MC_DOB": pd.NaT,
    })
    m = mis[(mis["MIS_START"] <= last) & (mis["MIS_END"].isna() | (mis["MIS_END"] >= first))].copy()
    m.loc[m["MIS_END"] > last, "MIS_END"] = pd.NaT
    missing = m[["CHILD", "DOB", "MISSING", "MIS_START", "MIS_END"]].sort_values(["CHILD", "MIS_START"], kind="stable")
    return header, episodes, missing.reset_index(drop=True)


def _plant(rule: str, missing: pd.DataFrame, episodes: pd.DataFrame, year: int, rng) -> tuple[pd.DataFrame, bool]:
    """Make one row of ``missing`` break ``rule`` (True when it could)."""
    first, last = _collection_bounds(year)
    closed = missing.index[missing["MIS_END"].notna() & (missing["MIS_END"] > missing["MIS_START"])
                           & (missing["MIS_START"] >= first)]
    if rule == "564":
        row = missing.iloc[[0]].copy()
        row["MIS_START"], row["MIS_END"], row["MISSING"] = pd.NaT, pd.NaT, "M"
        return pd.concat([missing, row], ignore_index=True), True
    if rule in ("567", "586", "574") and not len(closed):
        return missing, False
    if rule == "567":
        i = rng.choice(closed)
        start, end = missing.at[i, "MIS_START"], missing.at[i, "MIS_END"]
        missing.at[i, "MIS_START"], missing.at[i, "MIS_END"] = end, start
        return missing, True
    if rule == "586":
        i = rng.choice(closed)
        missing.loc[i, "DOB"] = missing.loc[i, "MIS_START"] + pd.Timedelta(days=1)
        return missing, True
    if rule == "574":
        i = rng.choice(closed)
        row = missing.loc[[i]].copy()
        row["MIS_END"] = row["MIS_END"] + pd.Timedelta(days=1)
        return pd.concat([missing, row], ignore_index=True), True
    if rule == "570":
        row = missing.iloc[[0]].copy()
        row["MIS_START"] = pd.Timestamp(last) + pd.Timedelta(days=3)
        row["MIS_END"] = row["MIS_START"] + pd.Timedelta(days=1)
        return pd.concat([missing, row], ignore_index=True), True
    if rule == "577":
        # a child whose care ended in the year, reported missing on their last day with no end
        ended = episodes[episodes["DEC"].notna()].drop_duplicates("CHILD", keep="last")
        ended = ended[~ended["CHILD"].isin(set(episodes.loc[episodes["DEC"].isna(), "CHILD"]))]
        ended = ended[(ended["DEC"] >= first) & (ended["DEC"] > ended["DECOM"])]
        if not len(ended):
            return missing, False
        pick = ended.iloc[int(rng.integers(len(ended)))]
        if ((missing["CHILD"] == pick["CHILD"]) & (missing["MIS_START"] >= pick["DECOM"])).any():
            return missing, False
        row = pd.DataFrame({"CHILD": [pick["CHILD"]], "DOB": [pd.NaT], "MISSING": ["M"],
                            "MIS_START": [pick["DEC"] - pd.Timedelta(days=1)], "MIS_END": [pd.NaT]})
        return pd.concat([missing, row], ignore_index=True), True
    if rule == "581":
        firsts = episodes.groupby("CHILD")["DECOM"].min()
        firsts = firsts[firsts - pd.Timedelta(days=40) >= pd.Timestamp(first)]
        if not len(firsts):
            return missing, False
        child = firsts.index[int(rng.integers(len(firsts)))]
        start = firsts[child] - pd.Timedelta(days=30)
        row = pd.DataFrame({"CHILD": [child], "DOB": [pd.NaT], "MISSING": ["M"], "MIS_START": [start],
                            "MIS_END": [start + pd.Timedelta(days=1)]})
        return pd.concat([missing, row], ignore_index=True), True
    raise ValueError(rule)


def simulate_returns(seed: int = SEED) -> dict:
    """Simulate every authority's returns.

    Returns
    -------
    dict
        ``{"tables": {(la, year): {"header": df, "episodes": df, "missing": df}},
        "truth": dict}``; dates as datetime64, blanks as NaT or "".
    """
    rng = np.random.default_rng(seed)
    tables, planted = {}, []
    for index, (la, _name, typical, adoption) in enumerate(AUTHORITIES):
        children, eps, mis = _simulate_authority(rng, index, typical, adoption)
        for year in YEARS:
            header, episodes, missing = _returns_of(children, eps, mis, year, rng)
            tables[(la, year)] = {"header": header, "episodes": episodes, "missing": missing}
    # breaches: each rule's count spread over returns drawn at random
    keys = sorted(tables)
    for rule, count in BREACHES.items():
        made = 0
        for _attempt in range(50):
            if made == count:
                break
            key = keys[int(rng.integers(len(keys)))]
            table = tables[key]
            missing, ok = _plant(rule, table["missing"].copy(), table["episodes"], key[1], rng)
            if ok:
                table["missing"] = missing
                planted.append({"rule": rule, "la": key[0], "year": key[1]})
                made += 1
    truth = {
        "seed": int(seed), "years": list(YEARS),
        "authorities": [{"code": la, "name": name, "adoption": adoption} for la, name, _, adoption in AUTHORITIES],
        "rate_ratio": RATE_RATIO, "time_to_found_factor": TIME_FACTOR,
        "description": ("In adopting authorities, from the adoption month, missing episodes (M and A) are kept with "
                        "probability 0.85 (rate ratio 0.85) and time to found is multiplied by 1/1.2."),
        "planted_breaches": planted,
    }
    return {"tables": tables, "truth": truth}


def _as_text(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """The columns as the return writes them: dates dd/mm/YYYY, blanks empty."""
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            out[column] = pd.to_datetime(values).dt.strftime("%d/%m/%Y").fillna("")
        else:
            out[column] = values.fillna("").astype(str)
    return out


def _csv_text(frame: pd.DataFrame, columns) -> str:
    return _as_text(frame, columns).to_csv(index=False, lineterminator="\n")


def one_dob_per_child(tables: dict) -> dict:
    """The same returns with one date of birth per child in each return, as the XML holds it.

    The CSV Missing table repeats each child's DOB on every row, and the generator plants
    a rule-586 breach by changing one row's copy (and leaves it blank on the rows it adds
    for rules 577 and 581). The XML return has one DOB per child, in its HEADER, which its
    missing periods share. So here a changed DOB moves the child's Header DOB (and every
    Missing row of that child in that return), and a blank one takes the Header's: the
    returns the XML form of these tables holds, written as CSV by
    ``write_returns(..., one_dob=True)``.
    """
    out = {}
    for key, table in tables.items():
        header, missing = table["header"].copy(), table["missing"].copy()
        recorded = dict(zip(header["CHILD"], header["DOB"]))
        dob = dict(recorded)
        for child, own in zip(missing["CHILD"], missing["DOB"]):
            if not pd.isna(own) and child in recorded and own != recorded[child]:
                dob[child] = own  # a planted breach: the child's one DOB becomes the changed one
        header["DOB"] = header["CHILD"].map(dob).to_numpy()
        held = missing["CHILD"].map(dob)
        missing["DOB"] = held.where(held.notna(), missing["DOB"]).to_numpy()
        out[key] = {**table, "header": header, "missing": missing}
    return out


def _xml_text(table: dict) -> str:
    """One return as the DfE's XML (EXPSSDA903; evalkit/data/ssda903_xml.py has its structure)."""
    from xml.sax.saxutils import escape

    def element(name, text, indent) -> str:
        return f"{indent}<{name}>{escape(text)}</{name}>\n" if text else f"{indent}<{name} />\n"

    header = _as_text(table["header"], TABLE_COLUMNS["header"])
    episodes = _as_text(table["episodes"], TABLE_COLUMNS["episodes"])
    missing = _as_text(table["missing"], TABLE_COLUMNS["missing"])
    children = list(header["CHILD"])
    extra = sorted((set(missing["CHILD"]) | set(episodes["CHILD"])) - set(children))
    by_child = dict(zip(header["CHILD"], header.to_dict("records")))
    episode_rows: dict[str, list[dict]] = {}
    missing_rows: dict[str, list[dict]] = {}
    for rows, frame in ((episode_rows, episodes), (missing_rows, missing)):
        for record in frame.to_dict("records"):  # each child's rows in the table's order
            rows.setdefault(record["CHILD"], []).append(record)
    lines = ['<?xml version="1.0" encoding="utf-8"?>\n', "<EXPSSDA903>\n"]
    for child in children + extra:
        periods = missing_rows.get(child, [])
        row = by_child.get(child, {"DOB": periods[0]["DOB"] if periods else ""})
        lines.append("  <CHILD>\n    <HEADER>\n")
        lines.append(element("CHILDID", child, "      "))
        for name in ("UPN", "SEX", "DOB", "ETHNIC"):
            lines.append(element(name, row.get(name, ""), "      "))
        lines.append(element("UASC", "", "      "))
        for name in ("MOTHER", "MC_DOB"):
            lines.append(element(name, row.get(name, ""), "      "))
        for period in periods:  # in the Missing table's order
            lines.append("      <AMISSING>\n")
            for name in ("MISSING", "MIS_START", "MIS_END"):
                lines.append(element(name, period[name], "        "))
            lines.append("      </AMISSING>\n")
        lines.append("    </HEADER>\n")
        for episode in episode_rows.get(child, []):
            lines.append("    <EPISODE>\n")
            for name in ("DECOM", "RNE", "LS", "CIN", "PLACE", "PL_POST", "HOME_POST", "URN", "PLACE_PROVIDER",
                         "DEC", "REC", "REASON_PLACE_CHANGE"):
                lines.append(element("PL" if name == "PLACE" else name, episode[name], "      "))
            lines.append("    </EPISODE>\n")
        lines.append("  </CHILD>\n")
    lines.append("</EXPSSDA903>\n")
    return "".join(lines)


def write_returns(out_dir, seed: int = SEED, fmt: str = "csv", one_dob: bool = False) -> dict:
    """Write ``<out_dir>/returns/<LA>/<YEAR>/`` and truth.json.

    Parameters
    ----------
    fmt : {"csv", "xml"}
        ``csv``: each return's Header, Episodes and Missing tables
        (``header.csv``, ``episodes.csv``, ``missing.csv``); ``xml``: one ``ssda903.xml``
        per return, the DfE's XML form. The XML holds one date of birth per child, so it
        is written from :func:`one_dob_per_child` of the simulated tables.
    one_dob : bool
        For ``csv``: write the tables of :func:`one_dob_per_child` (the returns the XML
        form holds, so the two forms can be compared) rather than the shipped ones.

    The same seed and arguments write byte-identical files. Returns the names written.
    """
    if fmt not in ("csv", "xml"):
        raise ValueError(f"fmt must be 'csv' or 'xml', not {fmt!r}")
    data = simulate_returns(seed)
    tables = one_dob_per_child(data["tables"]) if (one_dob or fmt == "xml") else data["tables"]
    out = Path(out_dir)
    root = out / "returns"
    for (la, year), table in sorted(tables.items()):
        folder = root / la / str(year)
        folder.mkdir(parents=True, exist_ok=True)
        if fmt == "xml":
            (folder / "ssda903.xml").write_text(_xml_text(table), encoding="utf-8")
            continue
        for kind in ("header", "episodes", "missing"):
            (folder / f"{kind}.csv").write_text(_csv_text(table[kind], TABLE_COLUMNS[kind]), encoding="utf-8")
    (out / "truth.json").write_text(json.dumps(data["truth"], sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return {"returns": "returns", "truth": "truth.json"}
