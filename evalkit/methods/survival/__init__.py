"""Time to found (``survival_did``): stratified Cox DiD, restricted-mean DiD, Kaplan-Meier.

Engines (no Design): cox.py (weighted stratified Cox with clustered errors), kaplan_meier.py.
Front end: survival.py.
"""
