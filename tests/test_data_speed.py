"""The data layer's fast paths (issue 16, "Numbers it must reach") give exactly what the
plain paths give: the same values, the same one-line errors naming the same rows.

- Parquet text columns read as Arrow dictionaries, row group by row group, and the
  person ids pseudonymised from the dictionaries (evalkit/data/sources.py, pseudonymise.py);
- a text area as a Categorical in the episode frame, and counts from it;
- a panel's numbers through Arrow's parser, units and periods through their distinct values
  (evalkit/data/panel.py).
"""

from __future__ import annotations

import hmac
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import evalkit
from evalkit.data import load_data
from evalkit.data.episodes import derive_counts, period_positions, unit_positions
from evalkit.data.panel import _parse_periods, _to_float, numeric_column, parse_period_column, unit_column
from evalkit.data.pseudonymise import pseudonymise
from evalkit.data.sources import read_table, release_unused_memory
from evalkit.errors import EvalkitError

from .conftest import TEST_PSEUDONYM_KEY


def _hmac(value: str) -> str:
    return hmac.new(TEST_PSEUDONYM_KEY.encode(), value.encode(), "sha256").hexdigest()


def _parquet_project(episode_project, row_group_size: int):
    """The conftest episode extract as a Parquet file of several row groups."""
    folder = episode_project.parent
    frame = pd.read_csv(folder / "episodes.csv", dtype=str, keep_default_na=False)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "episodes.parquet",
                   row_group_size=row_group_size)
    text = episode_project.read_text().replace("source: episodes.csv", "source: episodes.parquet")
    episode_project.write_text(text)
    return episode_project, frame


@pytest.mark.parametrize("row_group_size", [7, 1000])
def test_a_parquet_extract_gives_the_csv_extracts_data(episode_project, row_group_size):
    from_csv = load_data(evalkit.load_design(episode_project))
    design, frame = _parquet_project(episode_project, row_group_size)
    from_parquet = load_data(evalkit.load_design(design))
    pd.testing.assert_frame_equal(from_csv.panel, from_parquet.panel)
    episodes = from_parquet.episodes
    # every row's pseudonym is the HMAC of its own child id, across row groups
    assert episodes["person"].astype(object).tolist() == [_hmac(c) for c in frame["child_id"]]
    assert isinstance(episodes["unit"].dtype, pd.CategoricalDtype)
    assert episodes["unit"].astype(object).tolist() == frame["force"].tolist()
    assert from_csv.episodes["unit"].astype(object).tolist() == frame["force"].tolist()
    for column in ("reported_at", "found_at", "hours_to_found", "censored", "repeat"):
        np.testing.assert_array_equal(from_csv.episodes[column].to_numpy(), episodes[column].to_numpy())


def test_a_too_long_person_id_in_a_later_row_group_names_its_row(episode_project):
    folder = episode_project.parent
    frame = pd.read_csv(folder / "episodes.csv", dtype=str, keep_default_na=False)
    frame.loc[23, "child_id"] = "x" * 12_000
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "episodes.parquet", row_group_size=5)
    episode_project.write_text(episode_project.read_text().replace("source: episodes.csv", "source: episodes.parquet"))
    with pytest.raises(EvalkitError) as error:
        load_data(evalkit.load_design(episode_project))
    assert error.value.key == "row 24" and "is 12,000 characters long" in str(error.value)


def test_pseudonyms_from_an_arrow_dictionary_match_those_from_text():
    key = b"k" * 32
    shared = pa.array(["a", " b", None, "a", ""]).dictionary_encode()
    # two batches of one row group share a dictionary; another row group has its own
    chunked = pa.chunked_array([shared, shared.slice(1, 3), pa.array(["c", "a", "b "]).dictionary_encode()])
    from_dictionary = pseudonymise(pd.Series(pd.arrays.ArrowExtensionArray(chunked)), key)
    from_text = pseudonymise(pd.Series(["a", " b", None, "a", "", " b", None, "a", "c", "a", "b "]), key)
    assert from_dictionary.astype(object).tolist() == from_text.astype(object).tolist()
    assert len(from_dictionary.cat.categories) == 3  # a, b, c: spaces and row groups merged
    codes = from_dictionary.cat.codes.tolist()
    assert codes[0] == codes[3] == codes[7] == codes[9] and codes[1] == codes[5] == codes[10]


def test_text_numbers_are_exactly_what_pandas_reads():
    rng = np.random.default_rng(7)
    values = rng.normal(0, 1, 5000) * 10.0 ** rng.integers(-12, 12, 5000)
    for fmt in ("%.10g", "%.17g", "%.3e", "%.6f"):
        text = pd.Series([fmt % v for v in values], dtype="str")
        np.testing.assert_array_equal(_to_float(text).to_numpy(), pd.to_numeric(text).astype("float64").to_numpy())
    awkward = pd.Series(["-0", "0", "1e400", "-inf", "Infinity", "12345678901234567890123", "0.1234567890123456789",
                         "+3", ".5", "5.", None, "1,5", "0x10", "1e", "abc"], dtype="str")
    expected = pd.to_numeric(awkward, errors="coerce").astype("float64").to_numpy()
    got = _to_float(awkward).to_numpy()
    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))
    assert not np.signbit(_to_float(pd.Series(["-0", "1"], dtype="str")).to_numpy()).any()  # pandas: the integer 0


@pytest.mark.parametrize("cells", [["1.5", " 2 ", "NA", "nan", "", "null", "-3e2", None], ["1", "x"], ["-0", "1"],
                                   ["inf", "1"], ["+nan", "1"], ["1", None], ["1e400"], ["123456789012345678", "1"]])
@pytest.mark.parametrize("allow_missing", [True, False])
def test_arrow_text_reads_as_pandas_reads_it(cells, allow_missing):
    """Arrow-backed text (a CSV column) and the same cells as Python objects (pandas' path)."""
    def read(values):
        try:
            return numeric_column(values, "p.csv", "y", "csv", allow_missing=allow_missing)
        except EvalkitError as exc:
            return str(exc)
    fast, slow = read(pd.Series(cells, dtype="str")), read(pd.Series(cells, dtype=object))
    if isinstance(slow, str):
        assert fast == slow
    else:
        np.testing.assert_array_equal(fast, slow)
        assert np.array_equal(np.signbit(fast), np.signbit(slow))


def test_numbers_errors_name_the_same_row():
    with pytest.raises(EvalkitError) as error:
        numeric_column(pd.Series(["1.5", "2", "x7", "3"], dtype="str"), "p.csv", "y", "csv")
    assert error.value.key == "row 4" and "'x7' in column 'y' is not a number" in str(error.value)


def test_units_and_periods_from_distinct_values_match_row_by_row():
    raw = pd.DataFrame({"area": pd.Series([" 3", "10", "3", "10 "] * 3, dtype="str"),
                        "name": pd.Series(["b", " a", "b", "a"] * 3, dtype="str"),
                        "month": pd.Series(["2020-01", "2020-01", " 2020-02", "2020-02"] * 3, dtype="str")})
    raw.attrs["kind"] = "csv"
    ints = unit_column(raw["area"], "p.csv", "area", "csv")
    assert ints.dtype == np.int64 and ints.tolist() == [3, 10, 3, 10] * 3
    assert unit_column(raw["name"], "p.csv", "name", "csv").tolist() == ["b", "a", "b", "a"] * 3
    fast, _ = parse_period_column(raw, ["month"], "month", "p.csv")
    slow, _ = _parse_periods(raw, ["month"], "month", "p.csv")
    pd.testing.assert_series_equal(fast, slow)
    raw.loc[5, "month"] = "13/2020"
    with pytest.raises(EvalkitError) as error:
        parse_period_column(raw, ["month"], "month", "p.csv")
    assert error.value.key == "row 7"  # the row itself, not the distinct value's position
    raw.loc[8, "area"] = "  "
    with pytest.raises(EvalkitError) as error:
        unit_column(raw["area"], "p.csv", "area", "csv")
    assert error.value.key == "row 10" and "column 'area' is empty" in str(error.value)


def test_categorical_areas_and_period_positions_count_as_text_does():
    periods = pd.period_range("2020-01", "2020-06", freq="M")
    reported = pd.Series(pd.PeriodIndex(["2019-12", "2020-01", "2020-03", "2020-06", "2020-07", "2020-03"], freq="M"))
    assert period_positions(reported, periods).tolist() == periods.get_indexer(reported).tolist()
    assert period_positions(reported, periods[::2]).tolist() == periods[::2].get_indexer(reported).tolist()
    units = ["A", "B", "C"]
    text = pd.Series(["B", "A", "C", "Z", "A", "B"], dtype="str")
    categorical = text.astype("category")
    assert unit_positions(categorical, units).tolist() == unit_positions(text, units).tolist() == [1, 0, 2, -1, 0, 1]
    episodes = pd.DataFrame({"unit": categorical, "period": reported, "repeat": [False, True, False, False, True, True]})
    as_text = episodes.assign(unit=text)
    pd.testing.assert_frame_equal(derive_counts(episodes, units, periods), derive_counts(as_text, units, periods))


def test_read_table_keeps_a_dictionary_column_as_arrow(tmp_path):
    table = pa.table({"who": ["p", "q", "p", None], "n": [1, 2, 3, 4]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2)
    frame = read_table(tmp_path / "t.parquet", "t.parquet", ["who", "n"], "data.source", dictionary=["who"])
    assert isinstance(frame["who"].dtype, pd.ArrowDtype)
    assert frame["who"].astype(object).where(frame["who"].notna(), None).tolist() == ["p", "q", "p", None]
    assert frame["n"].tolist() == [1, 2, 3, 4]
    release_unused_memory()  # harmless to call at any time, on any platform


# ------------------------------------------------------------------ the national run's memory and time (issue 16)
SURVIVAL_DESIGN = Path(__file__).parent / "fixtures" / "survival" / "design.yaml"


def _survival_case():
    from evalkit.methods.survival.survival import _distinct_episodes, survival_frame

    design = evalkit.load_design(SURVIVAL_DESIGN)
    data = load_data(design)
    return design, data, design.analysis[0], _distinct_episodes, survival_frame


def test_distinct_episodes_come_in_area_post_hours_order_found_first():
    # the row order is part of the result: the Cox cluster sums add the rows' residuals in it
    design, data, spec, distinct, frame_of = _survival_case()
    episodes, _ = distinct(design, data, spec, "analysis[0]")
    frame, _ = frame_of(design, data, spec)
    reference = (frame.assign(group=frame["unit"].cat.codes.to_numpy() * 2 + frame["post"].to_numpy())
                 .groupby(["group", "hours", "found"]).size().reset_index(name="count")
                 .sort_values(["group", "hours", "found"], ascending=[True, True, False], kind="stable"))
    np.testing.assert_array_equal(episodes.unit * 2 + episodes.post, reference["group"].to_numpy())
    np.testing.assert_array_equal(episodes.hours, reference["hours"].to_numpy())
    np.testing.assert_array_equal(episodes.found, reference["found"].to_numpy())
    np.testing.assert_array_equal(episodes.count, reference["count"].to_numpy())


def test_selecting_rows_by_mask_is_selecting_from_the_copied_rows():
    from dataclasses import replace

    design, data, spec, distinct, _ = _survival_case()
    rows = np.random.default_rng(5).random(len(data.episodes)) < 0.6
    copied = replace(data, episodes=data.episodes.loc[rows].reset_index(drop=True))
    masked, masked_dropped = distinct(design, data, spec, "analysis[0]", rows=rows)
    plain, plain_dropped = distinct(design, copied, spec, "analysis[0]")
    assert masked.units == plain.units and masked_dropped == plain_dropped
    for name in ("unit_treated", "unit", "post", "hours", "found", "count"):
        np.testing.assert_array_equal(getattr(masked, name), getattr(plain, name))


def _cox_data(seed: int = 11, n: int = 3000):
    rng = np.random.default_rng(seed)
    area = rng.integers(0, 5, n)
    post = (rng.random(n) < 0.5).astype(float)
    X = np.column_stack([post, (area < 2) * post])
    hours = np.round(rng.exponential(8.0, n) * 2) / 2  # heavy ties: Efron terms matter
    return hours, rng.random(n) < 0.85, X, area, rng.integers(1, 4, n)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_sums_block_by_block_are_the_full_length_sums_bit_for_bit(monkeypatch, ties):
    from evalkit.methods.survival import cox

    hours, found, X, area, weights = _cox_data()
    whole = cox.fit_cox(hours, found, X, strata=area, cluster=area, ties=ties, weights=weights)
    monkeypatch.setattr(cox._RiskSets, "BLOCK_TERMS", 7)  # many blocks, groups never split
    blocks = cox.fit_cox(hours, found, X, strata=area, cluster=area, ties=ties, weights=weights)
    assert blocks.loglik == whole.loglik and blocks.loglik_null == whole.loglik_null
    for name in ("params", "cov", "robust_cov", "information"):
        np.testing.assert_array_equal(getattr(blocks, name), getattr(whole, name))
    assert blocks.zph() == whole.zph()


def test_the_test_inside_the_fit_is_the_test_after_it():
    from evalkit.methods.survival.cox import fit_cox

    hours, found, X, area, weights = _cox_data(seed=12)
    after = fit_cox(hours, found, X, strata=area, cluster=area, weights=weights)
    inside = fit_cox(hours, found, X, strata=area, cluster=area, weights=weights, zph="km")
    assert inside.zph() == after.zph("km")
    np.testing.assert_array_equal(inside.robust_cov, after.robust_cov)
    with pytest.raises(ValueError, match="risk sets"):
        inside.zph("identity")  # the risk sets were not kept


def _count_episodes(seed: int = 4, n: int = 5000):
    rng = np.random.default_rng(seed)
    periods = pd.period_range("2020-01", periods=6, freq="M")
    person = pd.Categorical.from_codes(rng.integers(-1, 300, n), categories=[f"p{i}" for i in range(300)])
    frame = pd.DataFrame({
        "unit": pd.Categorical(rng.choice(["A", "B", "C", "Z"], n)),  # Z: not an analysed unit
        "period": periods[rng.integers(0, 6, n)],
        "repeat": rng.random(n) < 0.3,
        "person": person,
    })
    return frame, ["A", "B", "C"], periods[1:]  # the first period is outside the grid


def test_episode_cells_count_a_subgroup_as_derive_counts_does():
    from evalkit.data.episodes import EpisodeCells, counts_frame

    frame, units, periods = _count_episodes()
    cells = EpisodeCells.of(frame, units, periods)
    pd.testing.assert_frame_equal(counts_frame(units, periods, *cells.count()), derive_counts(frame, units, periods))
    for seed in range(3):
        mask = np.random.default_rng(seed).random(len(frame)) < 0.4
        pd.testing.assert_frame_equal(counts_frame(units, periods, *cells.count(mask)),
                                      derive_counts(frame.loc[mask], units, periods))
    no_person = frame.drop(columns="person")
    pd.testing.assert_frame_equal(counts_frame(units, periods, *EpisodeCells.of(no_person, units, periods).count()),
                                  derive_counts(no_person, units, periods))


def test_risk_subgroups_from_categories_match_those_from_text():
    from evalkit.data.subgroups import RISK_LEVELS, _lowercase_matches

    values = pd.Series(["High", "low", None, "MEDIUM", "high ", "Low", "unknown", None] * 3)
    from_categories = _lowercase_matches(values.astype("category"), RISK_LEVELS)
    from_text = _lowercase_matches(values.astype(object), RISK_LEVELS)
    for ours, theirs in zip(from_categories, from_text):
        np.testing.assert_array_equal(ours, theirs)
    assert [int(m.sum()) for m in from_text] == [3, 3, 6]
