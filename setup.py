"""Build step: copy the shipped templates and example files into the wheel as real files.

Everything else is in pyproject.toml. The files live once in the repository (reports/templates/,
examples/, designs/); evalkit.resources.SHIPPED lists them and evalkit.resources reads them
from the repository in a checkout or from evalkit/_shipped/ in an installed wheel.
"""

import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _shipped() -> list:
    tree = ast.parse((ROOT / "evalkit" / "resources.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SHIPPED" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise RuntimeError("evalkit/resources.py has no SHIPPED list")


class BuildWithShippedFiles(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the repository itself
            return
        target = Path(self.build_lib) / "evalkit" / "_shipped"
        for relative in _shipped():
            source = ROOT / relative
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, destination, dirs_exist_ok=True)
            else:
                shutil.copyfile(source, destination)


setup(cmdclass={"build_py": BuildWithShippedFiles})
