"""The wheel carries the templates and shipped example files as real files (issue 14), and an
installed evalkit reads them from there: rendering a report and writing an example work from
the unpacked wheel alone, with the repository out of reach."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_the_wheel_ships_real_files_and_uses_them(tmp_path):
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # a stale build/lib would leak old files into the wheel
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("evalkit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        links = [i.filename for i in archive.infolist() if (i.external_attr >> 16) & 0o170000 == 0o120000]
        archive.extractall(tmp_path / "site")
    assert not links
    assert "evalkit/py.typed" in names  # type information ships (PEP 561)
    for relative in ("reports/templates/report.html.j2", "reports/templates/report.css",
                     "reports/templates/synthesis.html.j2", "examples/sicily/sicily.csv",
                     "designs/sicily_smoking_ban.yaml", "examples/geography/la_to_pfa.csv"):
        assert f"evalkit/_shipped/{relative}" in names, relative
    # run from the unpacked wheel, in a folder far from the repository
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    work = tmp_path / "work"
    work.mkdir()
    code = ("import evalkit, evalkit.resources as r; "
            "assert str(r.templates_dir()).startswith(%r), r.templates_dir(); print(evalkit.__file__)"
            % str(tmp_path / "site"))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=work, capture_output=True, text=True)
    assert out.returncode == 0 and str(tmp_path / "site") in out.stdout, out.stderr
    example = subprocess.run([sys.executable, "-m", "evalkit.cli", "example", "sicily-smoking-ban", "--out", "ex"],
                             env=env, cwd=work, capture_output=True, text=True)
    assert example.returncode == 0, example.stderr
    design = next((work / "ex").glob("*.yaml"))
    run = subprocess.run([sys.executable, "-m", "evalkit.cli", "run", str(design), "--out", "out"], env=env, cwd=work,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (work / "out" / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_no_symlink_in_the_package():
    links = [p for p in (ROOT / "evalkit").rglob("*") if p.is_symlink()]
    assert not links, links
