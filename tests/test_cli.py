"""The command line: outputs, determinism, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from click.testing import CliRunner

from evalkit.cli import main

from .conftest import ROOT


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def sicily(tmp_path):
    shutil.copytree(ROOT / "examples" / "sicily", tmp_path / "examples" / "sicily")
    shutil.copy(ROOT / "designs" / "sicily_smoking_ban.yaml", tmp_path / "sicily.yaml")
    text = (tmp_path / "sicily.yaml").read_text().replace("../examples/", "examples/")
    (tmp_path / "sicily.yaml").write_text(text)
    return tmp_path / "sicily.yaml"


def test_run_writes_results_and_report_byte_identically(sicily, tmp_path):
    first = invoke("run", sicily, "--out", tmp_path / "a")
    assert first.exit_code == 0, first.output
    second = invoke("run", sicily, "--out", tmp_path / "a")
    assert second.exit_code == 0
    a_json = (tmp_path / "a" / "results.json").read_bytes()
    a_html = (tmp_path / "a" / "report.html").read_bytes()
    invoke("run", sicily, "--out", tmp_path / "a")
    assert (tmp_path / "a" / "results.json").read_bytes() == a_json
    assert (tmp_path / "a" / "report.html").read_bytes() == a_html
    results = json.loads(a_json)
    assert results["schema"] == "evalkit.results/1"
    assert set(results) >= {"evalkit_version", "design", "data", "estimates", "checks", "evidence"}
    assert set(results["data"]) >= {"sha256", "rows", "units", "periods", "censored"}
    assert results["data"]["periods"] == ["2002-01", "2006-11"]
    step = next(e for e in results["estimates"] if e["estimand"] == "level_change")
    assert set(step) >= {"outcome", "method", "estimand", "scale", "estimate", "se", "ci_low", "ci_high", "p_value", "group", "details"}
    assert step["estimate"] == pytest.approx(0.885072, abs=1e-6)
    html = a_html.decode()
    assert "<svg" in html and "<metadata>" not in html
    # self-contained: the only URLs are SVG namespace names, never fetched
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    assert results["evidence"]["headline"] in html


def test_report_rerenders_from_results_without_refitting(sicily, tmp_path):
    invoke("run", sicily, "--out", tmp_path / "a")
    original = (tmp_path / "a" / "report.html").read_bytes()
    # the data are gone: a refit would fail, a re-render must not
    shutil.rmtree(tmp_path / "examples")
    result = invoke("report", tmp_path / "a" / "results.json", "--out", tmp_path / "again.html")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "again.html").read_bytes() == original


def test_validate_prints_a_summary_without_fitting(sicily):
    result = invoke("validate", sicily)
    assert result.exit_code == 0
    assert "periods: 2002-01 to 2006-11 (59 months)" in result.output
    assert "series: adopts 2005-01" in result.output


def test_validate_episode_summary(episode_project):
    result = invoke("validate", episode_project)
    assert result.exit_code == 0, result.output
    for line in ("units: 2", "A: adopts 2021-01", "comparison units: 1 (B)", "episodes in the window: 44",
                 "open at extraction (censored): 1"):
        assert line in result.output


@pytest.mark.parametrize("edit, expected", [
    (("start: 2005-01", "strat: 2005-01"), "intervention.strat: unknown key 'strat' (did you mean 'start'?)"),
    (("sicily.csv", "missing.csv"), "missing.csv: file not found"),
    (("family: quasipoisson", "family: poison"), "'poison' is not allowed (did you mean 'poisson'?)"),
    (("columns: {time: [year, month], exposure: stdpop}", "columns: {time: [year, mnth], exposure: stdpop}"),
     "column 'mnth' not found (did you mean 'month'?)"),
])
def test_errors_are_one_line_exit_1_and_write_nothing(sicily, tmp_path, edit, expected):
    sicily.write_text(sicily.read_text().replace(*edit))
    result = CliRunner().invoke(main, ["run", str(sicily), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_usage_error_exits_2():
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2


def test_schema_prints_json():
    result = invoke("schema")
    assert json.loads(result.output)["title"] == "evalkit design file"


def test_report_of_a_non_results_file(tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    result = CliRunner().invoke(main, ["report", str(tmp_path / "x.json")])
    assert result.exit_code == 1 and "not an evalkit results file" in result.output


def test_the_console_command_keeps_exit_statuses_and_output_when_it_skips_teardown(sicily, tmp_path):
    # evalkit.cli:entry ends the process with os._exit after main(): the status main chose,
    # every line printed, the exit functions run, and a run's files complete
    import subprocess
    import sys

    def command(*args):
        return subprocess.run([sys.executable, "-m", "evalkit.cli", *map(str, args)], capture_output=True, text=True,
                              cwd=tmp_path)

    version = command("--version")
    assert version.returncode == 0 and version.stdout.startswith("evalkit, version")
    usage = command("run", "--no-such-option")
    assert usage.returncode == 2 and "No such option" in usage.stderr
    missing = command("run", tmp_path / "absent.yaml")
    assert missing.returncode == 1 and missing.stderr.startswith("error: ") and missing.stderr.count("\n") == 1
    run = command("run", sicily, "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))["estimates"]
    assert (tmp_path / "out" / "report.html").read_text(encoding="utf-8").rstrip().endswith("</html>")
    code = ("import atexit, sys; from evalkit import cli; atexit.register(lambda: print('exit function ran')); "
            "sys.argv = ['evalkit', '--version']; cli.entry()")
    hooked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert hooked.returncode == 0 and hooked.stdout.splitlines() == ["evalkit, version " + __import__("evalkit").__version__,
                                                                     "exit function ran"]
