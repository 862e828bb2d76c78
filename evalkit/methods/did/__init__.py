"""Difference-in-differences (``did``): two-way fixed effects, linear or Poisson.

Engines (no Design): twfe.py (fixed-effects projections and fits), bacon.py (Goodman-Bacon
decomposition), estimate.py (TWFE and extended TWFE estimates). Front end: did.py; the checks
it emits are built in checks.py.
"""
