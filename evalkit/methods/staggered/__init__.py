"""Staggered adoption (``staggered_did``): Callaway & Sant'Anna.

Engines (no Design): att_gt.py (group-time ATTs and influence functions), aggte.py
(aggregations), pretrend.py (the calibrated pooled pre-trend test). Front end: staggered.py.
"""
