"""HTTP clients for the inference engines the agents and the driver talk to."""
