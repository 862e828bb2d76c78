"""evalkit: did an interagency intervention for missing children work?

Declare the intervention in a design file, point it at before/after or comparison-area
data, and evalkit fits the declared models and renders an evidence report.
"""

from .version import __version__  # noqa: E402  (pyproject's version; bottom of the layers)

from .design import Design, design_from_dict, design_json_schema, load_design  # noqa: E402
from .errors import DesignError, EvalkitError  # noqa: E402
from .pipeline import run  # noqa: E402
from .report.render import render_report  # noqa: E402
from .results import Check, Estimate, Results, load_results  # noqa: E402
from .synthesis import synthesize  # noqa: E402
from . import diagnose  # noqa: E402  (a callable subpackage: evalkit.diagnose(design, sims=...))

__all__ = [
    "Design", "DesignError", "EvalkitError", "Check", "Estimate", "Results",
    "load_design", "design_from_dict", "load_results", "run", "render_report", "design_json_schema", "synthesize", "diagnose", "__version__",
]
