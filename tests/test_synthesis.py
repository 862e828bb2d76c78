"""Evidence synthesis: the meta-analysis engine against R metafor, results-file reading,
small-k behaviour, errors, determinism and the CLI (docs/synthesis.md).

Reference values: tests/fixtures/synthesis/reference.R (R 4.2.2, metafor 3.8-1) wrote
reference.json beside it; the tests never need R.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import evalkit
from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.results import Analysis, Estimate, Results
from evalkit.synthesis import synthesize
from evalkit.synthesis.meta import leave_one_out, meta_analysis
from evalkit.synthesis.studies import read_studies

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "synthesis"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text(encoding="utf-8"))
EXAMPLE = sorted((ROOT / "examples" / "synthesis").glob("*/results.json"))

#: the R call behind each stored model (reference.R), as engine options
MODELS = {
    "reml_knha": dict(method="REML", test="knha"),          # rma(method="REML", test="knha")
    "reml_z": dict(method="REML", test="z"),                # rma(method="REML")
    "reml_adhoc": dict(method="REML", test="adhoc"),        # rma(method="REML", test="adhoc")
    "dl_knha": dict(method="DL", test="knha"),              # rma(method="DL", test="knha")
    "dl_z": dict(method="DL", test="z"),                    # rma(method="DL")
    "fe": dict(method="FE", test="z"),                      # rma(method="FE")
    "reml_z_hts": dict(method="REML", test="z", prediction="hts"),        # predict(pi.type="riley")
    "reml_knha_hts": dict(method="REML", test="knha", prediction="hts"),
}
#: absolute tolerance against metafor run to convergence (threshold 1e-12); I^2 is in per cent
TOL = 1e-6
#: against metafor's default control (stops when tau^2 moves < 1e-5): its own truncation
#: error, up to 7e-4 percentage points of I^2 on the k = 3 set
TOL_DEFAULT_CONTROL = 1e-3


def _cases():
    for name, data in REFERENCE["datasets"].items():
        for model in data["models"]:
            if model in MODELS:
                yield pytest.param(name, model, id=f"{name}-{model}")


def _compare(fit, expected: dict, tol: float) -> None:
    for key, value in expected.items():
        mine = getattr(fit, key)
        if value == [] or value is None:  # NA in R (fixed-effect prediction interval)
            assert math.isnan(mine), key
        else:
            assert mine == pytest.approx(value, abs=tol, rel=0), key


@pytest.mark.reference
@pytest.mark.parametrize(("name", "model"), list(_cases()))
def test_matches_metafor(name, model):
    data = REFERENCE["datasets"][name]
    fit = meta_analysis(data["yi"], data["vi"], **MODELS[model])
    _compare(fit, data["models"][model], TOL)


@pytest.mark.reference
@pytest.mark.parametrize("name", list(REFERENCE["datasets"]))
def test_matches_metafor_default_control_within_its_stopping_rule(name):
    data = REFERENCE["datasets"][name]
    fit = meta_analysis(data["yi"], data["vi"], method="REML", test="knha")
    _compare(fit, data["models"]["reml_knha_default_control"], TOL_DEFAULT_CONTROL)


@pytest.mark.reference
@pytest.mark.parametrize("name", [n for n, d in REFERENCE["datasets"].items() if "reml_knha_leave1out" in d["models"]])
def test_leave_one_out_matches_metafor(name):
    data = REFERENCE["datasets"][name]
    expected = data["models"]["reml_knha_leave1out"]
    fits = leave_one_out(data["yi"], data["vi"], method="REML", test="knha")
    for key, values in expected.items():
        mine = [getattr(f, "q" if key == "q" else key) for f in fits]
        np.testing.assert_allclose(mine, values, atol=TOL, rtol=0, err_msg=key)


@pytest.mark.reference
def test_reference_covers_tau2_zero_and_k3():
    assert REFERENCE["datasets"]["homogeneous"]["models"]["reml_knha"]["tau2"] == 0
    assert len(REFERENCE["datasets"]["three"]["yi"]) == 3
    data = REFERENCE["datasets"]["homogeneous"]
    assert meta_analysis(data["yi"], data["vi"]).tau2 == 0.0  # exactly 0: truncated, not a tiny step


def test_hartung_knapp_factor_is_not_truncated_at_one_but_adhoc_is():
    data = REFERENCE["datasets"]["homogeneous"]
    knha = meta_analysis(data["yi"], data["vi"], test="knha")
    adhoc = meta_analysis(data["yi"], data["vi"], test="adhoc")
    plain = meta_analysis(data["yi"], data["vi"], test="z")
    assert knha.hk_factor < 1
    assert adhoc.hk_factor == 1.0
    assert knha.se < plain.se == pytest.approx(adhoc.se)
    assert knha.df == 4 and plain.df is None


def test_auto_test_uses_hartung_knapp_only_for_small_k():
    rng = np.random.default_rng(1)
    small = meta_analysis(rng.normal(0, 0.3, 5), np.full(5, 0.04))
    large = meta_analysis(rng.normal(0, 0.3, 25), np.full(25, 0.04))
    fixed = meta_analysis(rng.normal(0, 0.3, 5), np.full(5, 0.04), method="FE")
    assert (small.test, large.test, fixed.test) == ("knha", "z", "z")


@pytest.mark.parametrize(("yi", "vi", "message"), [
    ([0.1], [0.01], "at least two"),
    ([0.1, 0.2], [0.01, 0.0], "positive"),
    ([0.1, float("nan")], [0.01, 0.01], "finite"),
])
def test_engine_rejects_what_it_cannot_pool(yi, vi, message):
    with pytest.raises(ValueError, match=message):
        meta_analysis(yi, vi)


# results files -------------------------------------------------------------------------

def _results_file(path: Path, mechanism: str, estimates: list[Estimate], level: int = 3,
                  effects: list[dict] | None = None, title: str = "An evaluation", intervention: str = "A scheme") -> Path:
    if effects is None:
        effects = [{"method": e.method, "outcome": e.outcome, "estimand": e.estimand, "design_level": level,
                    "certainty": "moderate", "outcome_label": e.outcome.replace("_", " ")}
                   for e in estimates if e.group is None]
    results = Results(
        # each hand-made evaluation its own fingerprint: the same design and data twice is refused
        design={"path": "design.yaml", "title": title, "sha256": hashlib.sha256(str(path).encode()).hexdigest()},
        data={"sha256": "1" * 64, "rows": 10, "units": 2, "periods": ["2020-01", "2022-12"]},
        estimates=estimates, checks=[], analyses=[Analysis(method="did", outcome="reports", label="DiD")],
        evidence={"effects": effects},
        context={"intervention": {"name": intervention, "mechanism": mechanism, "mechanism_words": "words"},
                 "alpha": 0.05, "summary_counts": [{"before": 4321.0, "after": 3217.0}],
                 "disclosure": {"min_count": 10, "round_to": 5, "enabled": True, "preset": "default"},
                 "outcomes": [{"name": e.outcome} for e in estimates]},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    results.to_json(path)
    return path


def _ratio(estimate, low, high, se=None, outcome="reports", method="did", estimand="att", group=None):
    details = {"se_scale": "log"} if se is not None else {}
    return Estimate(outcome=outcome, method=method, estimand=estimand, scale="ratio", estimate=estimate, se=se,
                    ci_low=low, ci_high=high, group=group, details=details)


def _difference(estimate, low, high, se=None, outcome="time_to_found", estimand="rmst_difference_did"):
    return Estimate(outcome=outcome, method="survival_did", estimand=estimand, scale="difference",
                    estimate=estimate, se=se, ci_low=low, ci_high=high)


def test_ratios_enter_on_the_log_scale_differences_on_their_own(tmp_path):
    z = 1.959963984540054
    a = _results_file(tmp_path / "a" / "results.json", "joint_training", [
        _ratio(0.9, 0.8, 1.0125, se=0.05),
        _ratio(0.5, 0.1, 0.2, se=0.9, group="subgroup: looked-after children"),  # never used
    ])
    b = _results_file(tmp_path / "b" / "results.json", "joint_training", [_ratio(0.8, 0.7, 0.9)])
    c = _results_file(tmp_path / "c" / "results.json", "joint_training", [_difference(-2.0, -3.0, -1.0, se=0.4)])
    d = _results_file(tmp_path / "d" / "results.json", "joint_training", [_difference(-1.0, -2.0, 0.5)])
    studies, excluded = read_studies([a, b, c, d])
    by_id = {(s.id, s.scale): s for s in studies}
    assert excluded == []
    assert by_id["a", "ratio"].yi == pytest.approx(math.log(0.9)) and by_id["a", "ratio"].vi == pytest.approx(0.05 ** 2)
    assert by_id["b", "ratio"].vi == pytest.approx(((math.log(0.9) - math.log(0.7)) / (2 * z)) ** 2)
    assert by_id["c", "difference"].yi == -2.0 and by_id["c", "difference"].vi == pytest.approx(0.16)
    assert by_id["d", "difference"].vi == pytest.approx((2.5 / (2 * z)) ** 2)
    assert by_id["b", "ratio"].variance_from == "interval"


def test_different_estimands_and_scales_are_never_pooled_together(tmp_path):
    files = [
        _results_file(tmp_path / "a" / "results.json", "joint_training", [_ratio(0.9, 0.8, 1.0, se=0.05)]),
        _results_file(tmp_path / "b" / "results.json", "joint_training", [_ratio(0.8, 0.7, 0.9, se=0.06)]),
        _results_file(tmp_path / "c" / "results.json", "joint_training",
                      [_ratio(0.85, 0.7, 1.0, se=0.05, method="staggered_did", estimand="att_simple")]),
        _results_file(tmp_path / "d" / "results.json", "joint_training",
                      [Estimate(outcome="reports", method="did", estimand="att", scale="difference",
                                estimate=-3.0, se=1.0, ci_low=-5.0, ci_high=-1.0)]),
    ]
    synthesis = synthesize(files)
    headlines = [p for p in synthesis.pooled if p["subset"] == "all" and p["method"] in ("REML", None)]
    keys = sorted((p["estimand"], p["scale"], p["k"]) for p in headlines)
    assert keys == [("att", "difference", 1), ("att", "ratio", 2), ("att_simple", "ratio", 1)]


def test_k1_shows_the_study_and_k2_has_no_prediction_interval(tmp_path):
    one = _results_file(tmp_path / "one" / "results.json", "joint_training", [_ratio(0.9, 0.8, 1.0125, se=0.06)])
    two = [_results_file(tmp_path / f"s{i}" / "results.json", "information_sharing", [_ratio(r, r * 0.9, r * 1.1, se=0.05)])
           for i, r in enumerate((0.8, 0.95))]
    synthesis = synthesize([one, *two])
    single = synthesis.headline("joint_training", "reports")
    assert single["k"] == 1 and single["method"] is None and single["estimate"] is None
    assert "not pooled" in single["note"]
    pair = synthesis.headline("information_sharing", "reports")
    assert pair["k"] == 2 and pair["method"] == "REML" and pair["estimate"] is not None
    assert pair["pi_low"] is None and pair["pi_high"] is None and "prediction interval" in pair["note"]
    assert pair["leave_one_out"] == []
    sentences = {s["mechanism"]: s["sentence"] for s in synthesis.summaries}
    assert "too few to pool" in sentences["joint_training"]
    assert "too few to say what a new area might see" in sentences["information_sharing"]


def test_pooled_record_is_on_the_reporting_scale_with_yi_values_in_details(tmp_path):
    rates = (0.80, 0.86, 0.93, 0.97)
    ses = (0.05, 0.04, 0.06, 0.03)
    files = [_results_file(tmp_path / f"s{i}" / "results.json", "single_point_of_contact",
                           [_ratio(r, r * 0.9, r * 1.1, se=se)], level=2 if i == 0 else 3)
             for i, (r, se) in enumerate(zip(rates, ses))]
    synthesis = synthesize(files)
    fit = meta_analysis(np.log(rates), np.square(ses))
    record = synthesis.headline("single_point_of_contact", "reports")
    assert record["estimate"] == pytest.approx(math.exp(fit.estimate), abs=1e-12)
    assert record["pi_low"] == pytest.approx(math.exp(fit.pi_low), abs=1e-12)
    assert record["details"]["yi_estimate"] == pytest.approx(fit.estimate, abs=1e-12)
    assert record["se"] == pytest.approx(fit.se) and record["details"]["scale_of_se_and_tau2"] == "log"
    assert [r["omitted"] for r in record["leave_one_out"]] == ["s0", "s1", "s2", "s3"]
    strong = synthesis.headline("single_point_of_contact", "reports", subset="level_3_plus")
    assert strong["k"] == 3 and strong["study_ids"] == ["s1", "s2", "s3"]
    methods = {p["method"] for p in synthesis.pooled if p["subset"] == "all"}
    assert methods == {"REML", "DL", "FE"}
    hts = synthesize(files, prediction="hts").headline("single_point_of_contact", "reports")
    expected = meta_analysis(np.log(rates), np.square(ses), prediction="hts")
    assert hts["details"]["pi_df"] == 2 and hts["pi_low"] == pytest.approx(math.exp(expected.pi_low), abs=1e-12)
    assert hts["pi_low"] < record["pi_low"]  # t with k - 2 df is wider than t with k - 1


def test_hazard_ratios_and_differences_are_worded_for_what_they_measure(tmp_path):
    files = [_results_file(tmp_path / f"h{i}" / "results.json", "multiagency_meetings",
                           [_ratio(hr, hr * 0.9, hr * 1.1, se=0.04, outcome="time_to_found", method="survival_did",
                                   estimand="hazard_ratio_did")])
             for i, hr in enumerate((1.25, 1.15, 1.3))]
    files += [_results_file(tmp_path / f"d{i}" / "results.json", "shared_terminology", [_difference(x, x - 1, x + 1, se=0.5)])
              for i, x in enumerate((-2.0, -3.0, -2.5))]
    sentences = {s["mechanism"]: s["sentence"] for s in synthesize(files).summaries}
    hazard = sentences["multiagency_meetings"]
    assert "children found sooner in all" in hazard and "more likely to be found at any given moment" in hazard
    assert "chance of being found at any given moment could change by anything from" in hazard
    difference = sentences["shared_terminology"]
    assert "time to found lower in all" in difference and "a change of -2.5" in difference


# errors ---------------------------------------------------------------------------------

def test_missing_unreadable_or_foreign_files_are_one_line_errors(tmp_path):
    good = _results_file(tmp_path / "a" / "results.json", "joint_training", [_ratio(0.9, 0.8, 1.0, se=0.05)])
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "foreign.json").write_text('{"schema": "something/else"}', encoding="utf-8")
    cases = [(tmp_path / "missing.json", "file not found"), (tmp_path / "bad.json", "not valid JSON"),
             (tmp_path / "foreign.json", "not an evalkit results file"), (good, "given twice")]
    for path, message in cases:
        with pytest.raises(EvalkitError, match=message) as caught:
            synthesize([good, path] if path != good else [good, good])
        assert "\n" not in caught.value.message
    with pytest.raises(EvalkitError, match="no results files"):
        synthesize([])
    with pytest.raises(EvalkitError, match="is a folder"):
        synthesize([good.parent])
    no_effects = _results_file(tmp_path / "e" / "results.json", "joint_training", [], effects=[])
    with pytest.raises(EvalkitError, match="no finding"):
        synthesize([no_effects])


def test_cli_error_is_one_line_exit_1(tmp_path):
    result = CliRunner().invoke(main, ["synthesize", str(tmp_path / "nope.json"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert re.fullmatch(r"error: .*nope\.json: file not found; .*\n", result.output)
    assert not (tmp_path / "out").exists()


def test_cli_needs_at_least_one_results_file():
    assert CliRunner().invoke(main, ["synthesize"]).exit_code == 2


# the shipped example --------------------------------------------------------------------

def test_shipped_example_synthesizes_byte_identically_through_the_cli(tmp_path):
    outputs = []
    for run in ("one", "two"):
        result = CliRunner().invoke(main, ["synthesize", *map(str, EXAMPLE), "--out", str(tmp_path / run)])
        assert result.exit_code == 0, result.output
        assert "Single points of contact" in result.output
        outputs.append([(tmp_path / run / name).read_bytes() for name in ("synthesis.json", "synthesis.html")])
    assert outputs[0] == outputs[1]
    record = json.loads(outputs[0][0])
    assert record["schema"] == "evalkit.synthesis/1"
    assert {s["mechanism"] for s in record["studies"]} == {"single_point_of_contact", "information_sharing",
                                                            "joint_training"}
    text = outputs[0][0].decode()
    assert "NaN" not in text and "Infinity" not in text
    assert list(record) == sorted(record)


def test_default_out_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["synthesize", *map(str, EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "out" / "synthesis" / "synthesis.html").is_file()


def test_example_report_content_and_disclosure():
    synthesis = evalkit.synthesize(EXAMPLE)
    html = synthesis.to_html()
    spoc = synthesis.headline("single_point_of_contact", "reports")
    assert spoc["k"] == 4 and spoc["method"] == "REML" and spoc["test"] == "knha"
    assert spoc["pi_low"] is not None
    sentence = next(s["sentence"] for s in synthesis.summaries if s["mechanism"] == "single_point_of_contact")
    assert sentence.startswith("Single points of contact, missing reports: 4 evaluations, fewer missing reports in all;")
    assert "in a new area the change could be anything from" in sentence
    assert html.count("<svg") == 3  # one forest plot per mechanism and outcome
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    # no raw counts: the evaluations' summary counts never reach the synthesis
    for path in EXAMPLE:
        for row in json.loads(path.read_text())["context"]["summary_counts"]:
            for key in ("before", "after"):
                count = f"{row[key]:,.0f}"
                assert count not in html and f">{row[key]:.0f}<" not in html


def test_html_escapes_titles_from_results(tmp_path):
    hostile = _results_file(tmp_path / "x" / "results.json", "joint_training", [_ratio(0.9, 0.8, 1.0, se=0.05)],
                            title="<script>alert(1)</script>")
    html = synthesize([hostile]).to_html()
    assert "<script>alert" not in html and "&lt;script&gt;" in html


@pytest.mark.slow
def test_one_shipped_evaluation_regenerates(tmp_path):
    spec = importlib.util.spec_from_file_location("make_synthesis", ROOT / "examples" / "synthesis" / "make.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    [written] = make.make(["spoc_north"], out=tmp_path)
    fresh = json.loads(written.read_text())
    shipped = json.loads((ROOT / "examples" / "synthesis" / "spoc_north" / "results.json").read_text())
    assert fresh["estimates"] == shipped["estimates"]
    assert fresh["evidence"] == shipped["evidence"]
    assert fresh["data"]["sha256"] == shipped["data"]["sha256"]


def test_the_same_evaluation_under_two_paths_is_refused(tmp_path):
    import shutil

    first = _results_file(tmp_path / "a" / "results.json", "single_point_of_contact",
                          [Estimate("reports", "did", "att", "ratio", 0.9, 0.05, 0.8, 1.0, 0.04,
                                    details={"se_scale": "log"})])
    (tmp_path / "b").mkdir()
    shutil.copyfile(first, tmp_path / "b" / "results.json")
    with pytest.raises(EvalkitError, match=r"is the same evaluation as .*a/results.json"):
        synthesize([first, tmp_path / "b" / "results.json"])


def test_a_difference_pools_with_its_standard_error_unless_the_interval_inverts_a_test():
    from evalkit.synthesis.studies import pooling_scale

    wald = Estimate("hours", "survival_did", "rmst_difference_did", "difference", -2.0, 1.0, -6.0, 2.0, 0.5,
                    details={"se_scale": "identity"})
    assert pooling_scale(wald, 0.05)[1:] == (1.0, "standard error")
    inverted = Estimate("reports", "did", "att", "ratio", 0.9, 0.02, 0.7, 1.1, 0.3,
                        details={"se_scale": "log", "interval_method": "randomization test inversion"})
    yi, vi, source = pooling_scale(inverted, 0.05)
    assert source == "interval" and vi > 0.02**2


def test_nothing_to_pool_is_an_error_not_an_empty_report(tmp_path):
    lone = _results_file(tmp_path / "a" / "results.json", "single_point_of_contact",
                         [Estimate("reports", "did", "att", "ratio", 0.9, None, None, None, None)])
    with pytest.raises(EvalkitError, match=r"no finding of any results file can be pooled"):
        synthesize([lone])
    assert not (tmp_path / "out").exists()


def test_other_mechanisms_pool_only_with_the_same_named_intervention(tmp_path):
    # `other` means "none of the review's seven": two unrelated schemes must not be pooled as one
    files = [
        _results_file(tmp_path / "a" / "results.json", "other", [_ratio(0.9, 0.8, 1.0, se=0.05)], intervention="Safe Places"),
        _results_file(tmp_path / "b" / "results.json", "other", [_ratio(0.8, 0.7, 0.9, se=0.06)], intervention="safe  places"),
        _results_file(tmp_path / "c" / "results.json", "other", [_ratio(1.2, 1.0, 1.4, se=0.07)], intervention="Night patrols"),
    ]
    synthesis = synthesize(files)
    headlines = sorted((p["mechanism"], p["k"]) for p in synthesis.pooled if p["subset"] == "all" and p["method"] in ("REML", None))
    assert headlines == [("other: night patrols", 1), ("other: safe places", 2)]
    html = synthesis.to_html()
    assert "Another mechanism: safe places" in html and "Other mechanisms" not in html
