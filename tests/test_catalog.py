"""The catalogue of methods agrees with everything it describes (issue 14).

One record per method (evalkit/catalog.py): the design's option models, the fit functions,
the checks each method's code can emit, and the words the report shows must all match it,
so a method cannot be half-added or drift (as staggered_did's `overlap` check once had no
meaning in the report).
"""

from __future__ import annotations

import importlib
import re
import typing

from evalkit import catalog, design
from evalkit.methods import REGISTRY, get_method
from evalkit.report import render, words
from tests.conftest import ROOT

#: helper modules whose checks belong to a method
HELPERS = {"did": ["did.checks"], "staggered_did": ["staggered.pretrend"]}


def _option_models() -> dict:
    union = typing.get_args(typing.get_args(design.AnalysisSpec)[0])
    return {typing.get_args(model.model_fields["method"].annotation)[0]: model for model in union}


def test_every_method_has_one_record_an_options_model_and_a_fit():
    models = _option_models()
    assert set(models) == set(catalog.METHODS) == set(REGISTRY)
    for name, record in catalog.METHODS.items():
        assert models[name].__name__ == record.options, name
        assert callable(get_method(name)), name


def _emitted_checks(module: str) -> set[str]:
    source = (ROOT / "evalkit" / "methods" / f"{module.replace('.', '/')}.py").read_text(encoding="utf-8")
    return set(re.findall(r'Check\(\s*"([a-z_0-9]+)"', source))


def test_the_checks_a_method_can_emit_are_in_its_record_and_have_meanings():
    for name, record in catalog.METHODS.items():
        emitted = _emitted_checks(record.module)
        for helper in HELPERS.get(name, []):
            emitted |= _emitted_checks(helper)
        assert emitted <= set(record.checks), (name, emitted - set(record.checks))
        for check in record.checks:
            assert check in catalog.CHECKS, (name, check)
            assert check in words.CHECK_PLAIN, (name, check)   # the commissioner's plain sentence


def test_the_pipelines_and_data_checks_have_meanings():
    for path in ("pipeline.py", "data/prepare.py", "data/ssda903.py", "data/dfe_published.py"):
        source = (ROOT / "evalkit" / path).read_text(encoding="utf-8")
        for check in re.findall(r'Check\(\s*"([a-z_0-9]+)"', source):
            assert check in catalog.CHECKS, (path, check)
    from evalkit.data.ssda903 import RULES

    for rule in RULES:  # the rules' checks are named by an f-string the pattern above cannot see
        assert f"dfe_rule_{rule}" in catalog.CHECKS, rule


def test_evidence_and_report_read_the_catalogue():
    from evalkit import evidence

    for name, record in catalog.METHODS.items():
        assert evidence.METHOD_LEVEL[name] == (record.level, record.level_label)
        assert evidence.HEADLINE_ESTIMAND[name] == record.headline_estimand
        assert render.METHOD_NAMES[name] == record.display_name
        assert render.REFERENCES[name] == list(record.references)
        assert words.METHOD_DOES[name] == record.does
        assert record.headline_estimand in render.ESTIMAND_WORDS, name
        importlib.import_module(f"evalkit.methods.{record.module}")
    assert render.CHECK_MEANING is catalog.CHECKS
