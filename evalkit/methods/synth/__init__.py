"""Synthetic control (``synthetic_control``): nested V weights and in-space placebos.

Engine (no Design): core.py (predictor standardisation and simplex weights). Front end: synth.py.
"""
