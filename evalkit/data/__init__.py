"""Data: sources, episode and panel validation, derived outcomes, the synthetic generator."""

from .prepare import AnalysisData, load_data

__all__ = ["AnalysisData", "load_data"]
