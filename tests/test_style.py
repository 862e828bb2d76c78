"""ruff's pyflakes, bugbear and complexity rules, and mypy (check_untyped_defs), pass on the
package (issue 14).

The rules and their few stated exceptions are in pyproject.toml ([tool.ruff], [tool.mypy]);
this test puts them in the README's test command, so CI runs them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.conftest import ROOT


def test_ruff_passes():
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    result = subprocess.run(command + ["check", "--no-cache", "evalkit", "tests", "benchmarks"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


def test_mypy_passes(tmp_path):
    # the configuration (check_untyped_defs, the untyped third-party packages) is pyproject.toml's;
    # the cache goes to a temporary folder so the test writes nothing into the checkout
    result = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy_cache"), "evalkit"],
                            cwd=ROOT, capture_output=True, text=True)
    summary = result.stdout.strip().splitlines()[-1:] or [""]
    assert result.returncode == 0, result.stdout[:8000] + "\n" + summary[0] + "\n" + result.stderr[-2000:]
