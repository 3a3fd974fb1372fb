"""Reads files only (no Docker, no HTTP): originals' records, artifact folders, stats, verdicts, plots, report."""
