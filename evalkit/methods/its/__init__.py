"""Interrupted time series: ``its`` (one series) and ``controlled_its`` (with comparison areas).

segmented.py is the engine (segmented GLM design, Newey-West, Prais-Winsten, Breusch-Godfrey);
it never sees a Design. its.py and controlled_its.py are the front ends that read the design.
"""
