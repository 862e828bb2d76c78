"""docs/notebook.md's code blocks run, in order, from the repository root (a page that cannot drift)."""

from __future__ import annotations

import os
import re

from tests.conftest import ROOT


def test_the_notebook_walkthrough_runs_and_reproduces_the_published_numbers():
    text = (ROOT / "docs" / "notebook.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        for block in blocks:
            exec(compile(block, "docs/notebook.md", "exec"), namespace)  # noqa: S102 - our own documentation
    finally:
        os.chdir(here)
    assert abs(namespace["level"]["estimate"] - 0.885072) < 1e-6


def test_the_readme_notebook_example_runs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "design_from_dict" in b)
    namespace: dict = {}
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile("import evalkit\n" + block, "README.md", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(here)
    assert abs(namespace["results"].estimate("level_change").estimate - 0.885072) < 1e-6
