"""The driver: the reproduce pipeline, the orchestrator and its executors, the artifact folder."""
