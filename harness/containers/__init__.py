"""Compose files to Docker: typed service specs, the engine, the per-run stack runtime, images."""
