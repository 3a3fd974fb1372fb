"""Chimeraforge reproducibility kit: re-runs the Chimeraforge reports TR108-TR115 in pinned containers."""

__version__ = "0.1.0"
