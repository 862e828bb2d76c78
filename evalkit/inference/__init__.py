"""Inference shared by several methods: bootstraps, randomization inference, wild cluster bootstrap.

One module per procedure; each takes a numpy Generator seeded from the design.
"""
