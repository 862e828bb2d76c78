"""ruff's pyflakes, bugbear and complexity rules pass on the package and the tests (issue 14).

The rules and their few stated exceptions are in pyproject.toml ([tool.ruff]); this test
puts them in the README's test command, so CI runs them.
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
