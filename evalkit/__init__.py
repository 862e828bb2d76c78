"""evalkit: did an interagency intervention for missing children work?

Declare the intervention in a design file, point it at before/after or comparison-area
data, and evalkit fits the declared models and renders an evidence report.
"""

__version__ = "0.1.0"

from .design import Design, design_json_schema, load_design  # noqa: E402
from .errors import DesignError, EvalkitError  # noqa: E402
from .pipeline import run  # noqa: E402
from .report.render import render_report  # noqa: E402
from .results import Check, Estimate, Results, load_results  # noqa: E402

__all__ = [
    "Design", "DesignError", "EvalkitError", "Check", "Estimate", "Results",
    "load_design", "load_results", "run", "render_report", "design_json_schema", "__version__",
]
