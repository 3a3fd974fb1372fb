"""Python agents: the workloads of the reports, run against one or two Ollama servers (see workflow.py)."""
