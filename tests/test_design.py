"""The design file: validation, hints, TOML, schema."""

from __future__ import annotations

import json

import pytest
import yaml

import evalkit
from evalkit.design import design_from_mapping, design_json_schema

from .conftest import EPISODE_DESIGN, write


def raw_design():
    return yaml.safe_load(EPISODE_DESIGN)


def test_shipped_designs_load(root):
    for path in (root / "designs").glob("*.yaml"):
        design = evalkit.load_design(path)
        assert design.title


def test_unknown_key_gets_a_did_you_mean_hint():
    raw = raw_design()
    raw["intervention"]["strat"] = "2021-01"
    with pytest.raises(evalkit.DesignError) as info:
        design_from_mapping(raw)
    message = info.value.message
    assert "intervention.strat" in message and "did you mean 'start'" in message


def test_unknown_top_level_key_and_method_option():
    raw = raw_design()
    raw["analysys"] = []
    with pytest.raises(evalkit.EvalkitError, match="did you mean 'analysis'"):
        design_from_mapping(raw)
    raw = raw_design()
    raw["analysis"][0]["familly"] = "poisson"
    with pytest.raises(evalkit.EvalkitError, match=r"analysis\[0\]\.familly.*did you mean 'family'"):
        design_from_mapping(raw)


def test_bad_family_and_method_are_named():
    raw = raw_design()
    raw["analysis"][0]["family"] = "poison"
    with pytest.raises(evalkit.EvalkitError, match=r"analysis\[0\]\.family: 'poison' is not allowed \(did you mean 'poisson'\?\)"):
        design_from_mapping(raw)
    raw = raw_design()
    raw["analysis"][0]["method"] = "itts"
    with pytest.raises(evalkit.EvalkitError, match="unknown method 'itts' \\(did you mean 'its'\\?\\)"):
        design_from_mapping(raw)


def test_design_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path / "d.yaml", "- just\n- a list\n")
    with pytest.raises(evalkit.EvalkitError, match="not a mapping"):
        evalkit.load_design(path)


def test_missing_design_file(tmp_path):
    with pytest.raises(evalkit.EvalkitError, match="does not exist"):
        evalkit.load_design(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path / "d.yaml", "title: x\nintervention: [unclosed\n")
    with pytest.raises(evalkit.EvalkitError, match=r"d.yaml:line \d+: not valid YAML"):
        evalkit.load_design(path)


def test_toml_design_is_the_same_design(tmp_path):
    toml = """
    evalkit = 1
    title = "Test design"
    [intervention]
    name = "Test SPOC"
    start = "2021-01"
    [data]
    source = "episodes.csv"
    columns = {unit = "force", reported_at = "reported_at"}
    [units]
    treated = ["A"]
    [[outcomes]]
    name = "reports"
    measure = "count"
    [[analysis]]
    method = "its"
    outcome = "reports"
    """
    design = evalkit.load_design(write(tmp_path / "d.toml", toml))
    assert design.units.treated == ["A"]
    assert design.analysis[0].errors == "newey_west"
    assert design.resolve(design.data.source) == tmp_path / "episodes.csv"


def test_unparseable_period_names_the_key():
    raw = raw_design()
    raw["units"]["adoption"] = {"B": "21-13"}
    with pytest.raises(evalkit.EvalkitError, match=r"units.adoption.B: '21-13' is not a period"):
        design_from_mapping(raw)


def test_cross_field_rules():
    raw = raw_design()
    raw["analysis"][0]["outcome"] = "report"
    with pytest.raises(evalkit.EvalkitError, match="did you mean 'reports'"):
        design_from_mapping(raw)
    raw = raw_design()
    raw["units"] = {}
    with pytest.raises(evalkit.EvalkitError, match="no unit is treated"):
        design_from_mapping(raw)
    raw = raw_design()
    raw["data"]["window"] = {"start": "2021-12", "end": "2020-01"}
    with pytest.raises(evalkit.EvalkitError, match="window ends"):
        design_from_mapping(raw)


def test_schema_is_json_schema_of_the_model():
    schema = json.loads(design_json_schema())
    assert schema["title"] == "evalkit design file"
    assert {"intervention", "data", "outcomes", "analysis"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("analysis, outcome, message", [
    ({"method": "did", "outcome": "hours"}, {"name": "hours", "measure": "duration_hours"},
     r"analysis\[1\]\.outcome: did cannot fit outcome 'hours' \(measure: duration_hours\); use method: survival_did"),
    ({"method": "its", "outcome": "hours"}, {"name": "hours", "measure": "duration_hours"},
     r"analysis\[1\]\.outcome: its cannot fit outcome 'hours'"),
    ({"method": "survival_did", "outcome": "reports"}, None,
     r"analysis\[1\]\.outcome: survival_did cannot fit outcome 'reports' \(measure: count\); use a method that fits it \(its, controlled_its"),
    ({"method": "synthetic_control", "outcome": "found24"}, {"name": "found24", "measure": "share_found_within", "hours": 24},
     r"analysis\[1\]\.outcome: synthetic_control cannot fit outcome 'found24'"),
    ({"method": "did", "outcome": "found24", "family": "poisson"}, {"name": "found24", "measure": "share_found_within", "hours": 24},
     r"analysis\[1\]\.outcome: did cannot fit"),
    ({"method": "did", "outcome": "reports", "inference": "wild_cluster"}, None,
     r"analysis\[1\]\.inference: inference: wild_cluster is for the linear TWFE \(the default family for count outcome "
     r"'reports' is poisson\); use inference: randomization"),
])
def test_a_method_that_cannot_fit_its_outcome_is_refused_when_the_design_loads(analysis, outcome, message):
    # issue 14: options and outcomes a method cannot take are refused at load, not half-way through a run
    raw = raw_design()
    if outcome:
        raw["outcomes"].append(outcome)
    raw["analysis"].append(analysis)
    with pytest.raises(evalkit.EvalkitError, match=message):
        design_from_mapping(raw)


def test_every_method_accepts_the_measures_its_record_lists():
    from evalkit.catalog import METHODS

    for name, record in METHODS.items():
        assert record.measures, name
        for measure in record.measures:
            raw = raw_design()
            raw["data"]["layout"] = "episodes"
            out = {"name": "y", "measure": measure, **({"hours": 24} if measure == "share_found_within" else {}),
                   **({"derive": "reports"} if measure == "count" else {})}
            if measure == "continuous":
                continue  # an episode layout has no continuous outcome (refused for the layout, not the method)
            raw["outcomes"].append(out)
            raw["analysis"] = [{"method": name, "outcome": "y"}]
            design_from_mapping(raw)
