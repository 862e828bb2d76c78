"""Design diagnosis: power, bias, coverage and the smallest detectable change (docs/diagnosis.md).

``evalkit.diagnose.diagnose(design, sims=..., effect=..., workers=..., backend=..., out=...)``
simulates the design (placebo adoption and planted effects in the user's own data, or a
model), fits every analysis of the plan to each simulated dataset through the methods'
own ``fit`` and measures how each estimate behaves.
"""

from .api import DEFAULT_EFFECTS, DEFAULT_SIMS, Diagnosis, diagnose

__all__ = ["diagnose", "Diagnosis", "DEFAULT_SIMS", "DEFAULT_EFFECTS"]


def _callable_package() -> None:
    """Let ``evalkit.diagnose(design, ...)`` call :func:`diagnose` while ``evalkit.diagnose.api``
    stays the subpackage's module."""
    import sys
    import types

    class _Package(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return diagnose(*args, **kwargs)

    sys.modules[__name__].__class__ = _Package


_callable_package()
