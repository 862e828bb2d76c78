"""The report: self-contained, deterministic, disclosure-controlled, safe with hostile names,
and rendering in a real browser (headless Chromium)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

import evalkit
from evalkit.design import design_from_mapping
from evalkit.report.disclosure import DisclosureRule, control_count, control_table
from evalkit.report.render import render_html

from .conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def spoc_results():
    return evalkit.run(evalkit.load_design(ROOT / "designs" / "spoc_rollout.yaml"))


@pytest.fixture(scope="module")
def spoc_html(spoc_results):
    return render_html(spoc_results)


def test_sections_in_the_contract_order(spoc_html):
    order = ["What we found", "What this means", "How strong is the evidence?", "Effect", "Mechanism", "Moderators",
             "Implementation",
             "Economic cost", "The data", "Assumption checks", "Technical annex", "Reproducibility"]
    positions = [spoc_html.index(f">{title}") for title in order]
    assert positions == sorted(positions)


def test_every_headline_number_comes_from_results(spoc_results, spoc_html):
    assert spoc_results.evidence["headline"] in spoc_html
    assert spoc_results.design["sha256"] in spoc_html and spoc_results.data["sha256"] in spoc_html
    assert "Maryland Scientific Methods Scale" in spoc_html
    assert "caused" not in spoc_html.lower()


def test_no_identifier_or_episode_date_in_the_report(spoc_html):
    assert not re.search(r"\bC\d{7}\b", spoc_html)  # child ids of the example
    assert not re.search(r"\bE\d{7}\b", spoc_html)  # episode ids
    assert not re.search(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}", spoc_html)  # episode timestamps


def test_published_counts_are_rounded_and_small_ones_suppressed():
    rule = DisclosureRule(min_count=10, round_to=5)
    assert [control_count(v, rule) for v in (0, 3, 9, 10, 12, 13, 1234)] == [0, "c", "c", 10, 10, 15, 1235]
    nhs = DisclosureRule(min_count=8, round_to=5)
    assert control_count(7, nhs) == "c" and control_count(8, nhs) == 10
    # secondary suppression: one hidden cell in a column with a total hides the next smallest
    table = control_table([["a", 4], ["b", 30], ["c", 60], ["all", 94]], [1], rule, total_row=3)
    assert [row[1] for row in table] == ["c", "c", 60, 95]


def test_report_tables_apply_disclosure_control(spoc_results, spoc_html):
    for row in spoc_results.context["summary_counts"]:
        for value in (row["before"], row["after"]):
            if value % 5:
                assert f">{int(value):,}<" not in spoc_html


def test_disclosure_presets_change_the_published_counts():
    raw = yaml.safe_load((ROOT / "designs" / "spoc_rollout.yaml").read_text())
    raw["report"]["disclosure"] = {"preset": "dfe"}
    results = evalkit.run(design_from_mapping(raw, path=ROOT / "designs" / "spoc_rollout.yaml"))
    assert results.context["disclosure"] == {"min_count": 1, "round_to": 10, "enabled": True, "preset": "dfe"}
    assert "rounded to the nearest 10" in render_html(results)


def hostile_project(tmp_path):
    """The Sicily design with script in the title, the intervention and the description."""
    shutil.copytree(ROOT / "examples" / "sicily", tmp_path / "examples" / "sicily")
    raw = yaml.safe_load((ROOT / "designs" / "sicily_smoking_ban.yaml").read_text())
    raw["data"]["source"] = "examples/sicily/sicily.csv"
    raw["title"] = "<script>alert('title')</script> & co"
    raw["intervention"]["name"] = "<img src=x onerror=alert(1)>"
    raw["intervention"]["description"] = "</p><script>alert('d')</script>"
    raw["context"] = {"concurrent_changes": [{"name": "<b>recording</b> change", "date": "2005-06"}]}
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_hostile_names_are_shown_as_text(tmp_path):
    results = evalkit.run(evalkit.load_design(hostile_project(tmp_path)))
    html = render_html(results)
    assert "<script>" not in html and "<img src=x" not in html and "<b>recording" not in html
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt; &amp; co" in html
    # the overlapping concurrent change lowers the level below the single-series 2
    assert results.evidence["design_level"] == 1


def test_two_runs_give_identical_bytes(tmp_path):
    out = [tmp_path / "a", tmp_path / "b"]
    for folder in out:
        results = evalkit.run(evalkit.load_design(ROOT / "designs" / "spoc_rollout.yaml"))
        results.to_json(folder / "results.json")
        evalkit.render_report(results, folder / "report.html")
    for name in ("results.json", "report.html"):
        assert (out[0] / name).read_bytes() == (out[1] / name).read_bytes()


def test_technical_audience_opens_the_annex(spoc_results):
    technical = evalkit.Results.from_dict(spoc_results.to_dict())
    technical.context["audience"] = "technical"
    html = render_html(technical)
    assert "<details open>" in html and "Residual autocorrelation" in html
    assert "<details>" in render_html(spoc_results)


def _commissioner_text(html: str) -> str:
    """The words of the commissioner-facing sections: headline, what this means, evidence box, EMMIE."""
    import html as html_module

    sections = re.findall(r'<section[^>]*data-audience="commissioner"[^>]*>.*?</section>', html, flags=re.S)
    body = re.sub(r"<svg.*?</svg>", " ", " ".join(sections), flags=re.S)
    return re.sub(r"\s+", " ", html_module.unescape(re.sub(r"<[^>]+>", " ", body)))


def test_commissioner_sections_carry_no_test_statistics(spoc_results, spoc_html):
    from evalkit.report.words import STATISTICS

    text = _commissioner_text(spoc_html)
    for title in ("What we found", "What this means", "How strong is the evidence?", "Effect", "Mechanism",
                  "Moderators", "Implementation", "Economic cost"):
        assert title in text
    assert not STATISTICS.search(text), STATISTICS.findall(text)
    # ... while the statistics are still in the report, in the checks and the annex
    assert "Wald" in spoc_html and STATISTICS.search(spoc_html)
    assert "per period" not in text and "-3.67" not in text and "3.67 hours sooner" in text


def test_what_this_means_says_what_is_supported_what_is_not_and_what_would_help(spoc_html):
    text = _commissioner_text(spoc_html)
    means = text[text.index("What this means"):text.index("How strong is the evidence?")]
    assert "What the evidence supports" in means and "time to found: 3.67 hours sooner" in means
    assert "What it does not show" in means and "A clear change in missing reports" in means
    assert "What would make it stronger" in means and "30 months after it" in means and "More areas" in means
    assert "could reliably detect" not in means   # no diagnosis given: no detectable-change sentence


def test_the_evidence_box_says_why_a_failing_analysis_differs_from_the_headline(spoc_html):
    text = _commissioner_text(spoc_html)
    box = text[text.index("How strong is the evidence?"):text.index("Effect")]
    assert "FAIL" in box.upper() and "already moving apart before the change" in box
    assert "Why another analysis of missing reports differs" in box
    assert "whose own check of the period before the change passed" in box


def test_cost_asserts_no_saving_when_the_range_spans_no_change(spoc_results, spoc_html):
    text = _commissioner_text(spoc_html)
    cost = text[text.index("Economic cost"):]
    low, high = sorted(spoc_results.evidence["economics"]["police_cost_saved_range"])
    assert low < 0 < high
    assert "No net saving can be claimed" in cost and "net saving of" not in cost
    assert "2014 prices" in cost and "Shalev Greene" in cost and "7 adopting areas" in cost


def test_subtitle_schedule_annex_seed_and_grouped_estimates(spoc_html):
    assert "3 areas from 2021-04, 2 from 2022-01, 2 from 2022-10" in spoc_html
    assert "seed: 20240510" in spoc_html and "20,240,510" not in spoc_html
    assert "estimation: none" not in spoc_html and "estimation: unadjusted" in spoc_html
    assert spoc_html.count('<details class="events">') == 1   # event-study rows folded
    assert "left out of the fit (excluded period)" in spoc_html and "phase-in (not fitted)" in spoc_html


#: problems a table can have at a width: a cell off-screen (outside any scroll region with a cue)
TABLE_REACH = """(width) => {
  const problems = [];
  for (const table of document.querySelectorAll('table')) {
    const scroller = table.closest('.scroll');
    if (scroller) {
      if (scroller.tabIndex < 0) problems.push('scroll region not focusable');
      if (scroller.scrollWidth > scroller.clientWidth + 1) {
        const cue = scroller.querySelector('.scroll-cue');
        if (!cue || cue.getBoundingClientRect().height === 0) problems.push('a table scrolls with no cue');
      }
      continue;
    }
    for (const cell of table.querySelectorAll('td')) {
      const box = cell.getBoundingClientRect();
      if (box.width === 0) continue;
      if (box.right > width + 1 || box.left < -1)
        problems.push(`cell "${cell.innerText.slice(0, 30)}" of ${table.className || 'a table'} is off-screen`);
    }
  }
  return problems;
}"""

AXE = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path, spoc_results):
    from playwright.sync_api import sync_playwright

    from evalkit.report.words import STATISTICS

    report = evalkit.render_report(spoc_results, tmp_path / "report.html")
    hostile = evalkit.run(evalkit.load_design(hostile_project(tmp_path)))
    hostile_report = evalkit.render_report(hostile, tmp_path / "hostile.html")
    problems, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        for (path, width) in [(p, w) for p in (report, hostile_report) for w in (1280, 390)]:
            page = browser.new_page(viewport={"width": width, "height": 844 if width == 390 else 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
            page.goto(Path(path).resolve().as_uri())
            page.wait_for_load_state("load")
            figures = page.locator("figure svg")
            assert figures.count() >= 1
            for i in range(figures.count()):
                box = figures.nth(i).bounding_box()
                assert box and box["width"] > 200 and box["height"] > 80
                assert figures.nth(i).locator("path, line, text").count() > 10
            assert page.locator("#headline").inner_text().strip()
            # figure text readable without zoom: on a phone the figure scrolls inside its own region
            # rather than shrinking its text (median text box of at least 14 px)
            heights = page.evaluate("[...document.querySelectorAll('figure svg text')]"
                                    ".map(t => t.getBoundingClientRect().height).filter(h => h > 0)")
            assert sorted(heights)[len(heights) // 2] >= 14, (width, sorted(heights)[len(heights) // 2])
            shots = os.environ.get("EVALKIT_SCREENSHOTS")   # docs/report-desktop.png, docs/report-phone.png
            if shots and path == report:
                page.screenshot(path=str(Path(shots) / f"report-{'phone' if width == 390 else 'desktop'}.png"))
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width + 1, f"the page scrolls sideways at {width} px"
            assert page.evaluate(TABLE_REACH, width) == [], width
            text = " ".join(page.locator('[data-audience="commissioner"]').all_inner_texts())
            assert "What this means" in text and not STATISTICS.search(text), STATISTICS.findall(text)
            # accessibility: axe-core (vendored, MPL-2.0), no serious or critical violations
            page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
            violations = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']}))"
                                       ".violations.map(v => [v.id, v.impact, v.nodes.length])")
            serious = [v for v in violations if v[1] in ("serious", "critical")]
            assert serious == [], (width, serious)
            page.close()
        browser.close()
    assert problems == []
    assert all(url.startswith("file://") for url in requests), requests


@pytest.mark.slow
def test_run_pdf_prints_through_chromium(tmp_path):
    from click.testing import CliRunner

    from evalkit.cli import main

    shutil.copytree(ROOT / "examples" / "sicily", tmp_path / "examples" / "sicily")
    design = tmp_path / "sicily.yaml"
    design.write_text((ROOT / "designs" / "sicily_smoking_ban.yaml").read_text().replace("../examples/", "examples/"))
    result = CliRunner().invoke(main, ["run", str(design), "--out", str(tmp_path / "out"), "--pdf"])
    assert result.exit_code == 0, result.output
    pdf = (tmp_path / "out" / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


def test_subgroup_estimate_equals_the_analysis_on_that_subgroup_alone(tmp_path, spoc_results):
    """A moderator row is the headline analysis refitted on that subgroup's episodes: the same
    number as running the design on a file holding only those episodes."""
    import pandas as pd

    episodes = pd.read_csv(ROOT / "examples" / "spoc" / "episodes.csv.gz", dtype=str, keep_default_na=False)
    episodes[episodes["looked_after"] == "True"].to_csv(tmp_path / "lac.csv", index=False)
    raw = yaml.safe_load((ROOT / "designs" / "spoc_rollout.yaml").read_text())
    raw["data"]["source"] = "lac.csv"
    raw["data"]["exposure"]["source"] = str(ROOT / "examples" / "spoc" / "population.csv")
    # subgroup refits are descriptive and use the analytic inference (evalkit/methods/moderators.py)
    raw["analysis"] = [{**a, "inference": "analytic"} for a in raw["analysis"] if a["method"] == "staggered_did"]
    path = tmp_path / "lac.yaml"
    path.write_text(yaml.safe_dump(raw))
    alone = evalkit.run(evalkit.load_design(path)).estimate("att_simple", group=None)
    moderator = spoc_results.estimate("att_simple", group="subgroup: looked-after children")
    assert moderator.details["episodes"] == len(episodes[episodes["looked_after"] == "True"])
    assert moderator.estimate == pytest.approx(alone.estimate, rel=1e-10)
    assert (moderator.ci_low, moderator.ci_high) == pytest.approx((alone.ci_low, alone.ci_high), rel=1e-10)


def test_economics_follow_from_the_headline_and_the_declared_costs(spoc_results, spoc_html):
    econ = spoc_results.evidence["economics"]
    headline = spoc_results.estimate(spoc_results.evidence["headline_estimand"],
                                     method=spoc_results.evidence["headline_method"], group=None)
    per_year = headline.details["per_year"]
    assert econ["reports_change_per_year"] == per_year
    assert econ["cost_per_episode"] == 1870 and econ["annual_cost"] == 85000
    assert econ["police_cost_saved_per_year"] == pytest.approx(-per_year * 1870)
    assert econ["net_saving_per_year"] == pytest.approx(-per_year * 1870 - 85000)
    assert sorted(econ["police_cost_saved_range"]) == pytest.approx(
        sorted([-headline.details["per_year_ci_low"] * 1870, -headline.details["per_year_ci_high"] * 1870]))
    assert "£1,870" in spoc_html and "£85,000 a year" in spoc_html


def test_the_sensitivity_row_says_when_the_headline_test_never_concluded():
    # the breakdown of the event study's analytic interval is shown, but with a clause saying there is
    # nothing to overturn when the headline's own (e.g. randomization) test does not reject
    from types import SimpleNamespace

    from evalkit.report.render import _sensitivity_rows

    record = {"method": "staggered_did", "outcome": "reports", "analysis": 0, "scale": "log ratio", "estimate": -0.26,
              "original_ci": [-0.44, -0.08], "significant": True, "capped": False, "breakdown": 0.18,
              "robust_ci": [{"mbar": 0.5, "ci": [-0.5, -0.01]}, {"mbar": 1.0, "ci": [None, None]}],
              "num_pre": 3, "num_post": 5, "inputs": "universal-base event study"}
    clause = "the headline's own test does not reject, so there is no conclusion to overturn"
    shown = {}
    for rejects in (False, True, None):
        given = dict(record) if rejects is None else {**record, "headline_rejects": rejects}
        results = SimpleNamespace(evidence={"sensitivity": [given]}, analyses=[], context={})
        (row,) = _sensitivity_rows(results)
        shown[rejects] = row["breakdown"]
        assert row["robust"] == "0.5: -0.5 to -0.01; 1: empty" and row["usual"] == "-0.44 to -0.08"
    assert shown[True] == shown[None] == "0.18"
    assert shown[False].startswith("0.18 (of the event study's analytic interval;") and clause in shown[False]
