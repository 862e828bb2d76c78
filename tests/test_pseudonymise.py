"""Pseudonymisation of person identifiers at ingestion (HMAC-SHA256, key from the environment)."""

from __future__ import annotations

import hmac
import json
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import evalkit
from evalkit.cli import main
from evalkit.data import load_data
from evalkit.data.pseudonymise import hmac_sha256_hex, pseudonym_key, pseudonymise

from .conftest import ROOT, TEST_PSEUDONYM_KEY


def reference_hmac(key: str | bytes, value: str) -> str:
    key = key.encode() if isinstance(key, str) else key
    return hmac.new(key, value.encode("utf-8"), "sha256").hexdigest()


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=1, max_size=150), values=st.lists(st.text(max_size=40), max_size=20))
def test_hmac_matches_the_standard_library(key, values):
    assert hmac_sha256_hex(key, values) == [reference_hmac(key, v) for v in values]


def test_rfc4231_test_case_2():
    # RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?"
    assert hmac_sha256_hex(b"Jefe", ["what do ya want for nothing?"]) == [
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"]


def test_identifiers_become_keyed_hashes_with_codes_kept():
    key = b"k" * 32
    values = pd.Series(["C1", " C1", "C2", "", None, "C1 ", "C3"])
    result = pseudonymise(values, key)
    assert isinstance(result.dtype, pd.CategoricalDtype)
    assert result[0] == result[1] == result[5] == reference_hmac(key, "C1")
    assert result[2] == reference_hmac(key, "C2") and result[6] == reference_hmac(key, "C3")
    assert pd.isna(result[3]) and pd.isna(result[4])
    assert not set(result.cat.categories) & {"C1", "C2", "C3"}
    assert len(result.cat.categories) == 3


def test_categorical_and_numeric_identifiers():
    key = b"z" * 20
    categorical = pseudonymise(pd.Series(["b", "a", "b"], dtype="category"), key)
    assert list(categorical) == [reference_hmac(key, "b"), reference_hmac(key, "a"), reference_hmac(key, "b")]
    numeric = pseudonymise(pd.Series([17.0, 18.0, np.nan, 17.0]), key)
    assert numeric[0] == numeric[3] == reference_hmac(key, "17") and pd.isna(numeric[2])


def test_missing_or_short_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("EVALKIT_PSEUDONYM_KEY")
    with pytest.raises(evalkit.EvalkitError, match=r"d.yaml:data.columns.person: .*EVALKIT_PSEUDONYM_KEY is not set; "
                                                   r"set it to a secret of 16\+ characters, e.g. export EVALKIT_PSEUDONYM_KEY="):
        pseudonym_key(where="d.yaml")
    monkeypatch.setenv("MY_KEY", "short-secret")
    with pytest.raises(evalkit.EvalkitError, match="the key in MY_KEY is shorter than 16 characters") as info:
        pseudonym_key("MY_KEY", where="d.yaml")
    assert "short-secret" not in info.value.message
    assert len(pseudonym_key(mode="ephemeral")) == 32


def test_the_loaded_person_column_holds_pseudonyms(episode_project):
    data = load_data(evalkit.load_design(episode_project))
    people = set(data.episodes["person"].astype(object))
    assert people == {reference_hmac(TEST_PSEUDONYM_KEY, c) for c in ("c1", "c2", "c3")}


def test_a_design_without_a_key_fails_before_reading(episode_project, monkeypatch):
    monkeypatch.delenv("EVALKIT_PSEUDONYM_KEY")
    (episode_project.parent / "episodes.csv").write_bytes(b"\x00 not even read")
    result = CliRunner().invoke(main, ["run", str(episode_project), "--out", str(episode_project.parent / "out")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "EVALKIT_PSEUDONYM_KEY is not set" in result.stderr
    assert not (episode_project.parent / "out").exists()


def test_a_design_can_name_its_key_variable(episode_project, monkeypatch):
    text = episode_project.read_text().replace("  frequency: month", "  person_key_env: POLICE_EXTRACT_KEY\n  frequency: month")
    episode_project.write_text(text)
    with pytest.raises(evalkit.EvalkitError, match="POLICE_EXTRACT_KEY is not set"):
        load_data(evalkit.load_design(episode_project))
    monkeypatch.setenv("POLICE_EXTRACT_KEY", "another-secret-key-for-police")
    data = load_data(evalkit.load_design(episode_project))
    assert reference_hmac("another-secret-key-for-police", "c1") in set(data.episodes["person"].astype(object))


def test_counts_do_not_depend_on_the_key(episode_project, monkeypatch):
    first = load_data(evalkit.load_design(episode_project))
    monkeypatch.setenv("EVALKIT_PSEUDONYM_KEY", "a-completely-different-key-123456")
    second = load_data(evalkit.load_design(episode_project))
    pd.testing.assert_frame_equal(first.panel, second.panel)
    assert set(first.episodes["person"].astype(object)).isdisjoint(set(second.episodes["person"].astype(object)))


def test_an_ephemeral_key_needs_no_environment_and_gives_identical_outputs(episode_project, monkeypatch, tmp_path):
    monkeypatch.delenv("EVALKIT_PSEUDONYM_KEY")
    text = episode_project.read_text().replace("  frequency: month", "  person_key: ephemeral\n  frequency: month")
    episode_project.write_text(text)
    outputs = []
    for _ in range(2):  # two runs, two random keys, the same output folder (it is in the command shown)
        result = CliRunner().invoke(main, ["run", str(episode_project), "--out", str(tmp_path / "out")])
        assert result.exit_code == 0, result.output
        outputs.append([(tmp_path / "out" / f).read_bytes() for f in ("results.json", "report.html")])
    assert outputs[0] == outputs[1]


@pytest.mark.slow
def test_no_identifier_reaches_results_or_report(tmp_path):
    """The shipped SPOC example, run with a key: no child or episode id, pseudonym or key in the outputs."""
    design = ROOT / "designs" / "spoc_rollout.yaml"
    runner = CliRunner()
    result = runner.invoke(main, ["run", str(design), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    summary = runner.invoke(main, ["validate", str(design)])
    assert summary.exit_code == 0, summary.output
    texts = {name: (tmp_path / "out" / name).read_text(encoding="utf-8") for name in ("results.json", "report.html")}
    texts["validate"] = summary.output
    json.loads(texts["results.json"])
    episodes = pd.read_csv(ROOT / "examples" / "spoc" / "episodes.csv.gz", usecols=["child_id", "episode_id"], dtype=str)
    children = set(episodes["child_id"])
    pseudonyms = set(hmac_sha256_hex(TEST_PSEUDONYM_KEY.encode(), sorted(children)[:2000]))
    for name, text in texts.items():
        tokens = set(re.findall(r"[A-Za-z0-9_]+", text))
        assert not tokens & children, (name, sorted(tokens & children)[:5])
        assert not tokens & set(episodes["episode_id"]), name
        assert not re.search(r"\bC\d{7}\b", text), name
        assert not tokens & pseudonyms, name
        assert TEST_PSEUDONYM_KEY not in text, name
