"""What to run: the spec, its expansion into a plan, and the shared corpus (pure, no I/O but reading inputs)."""
