"""A simulated Ollama server: the kit's GPU-free backend for rehearsals, tests and benchmarks.

It serves Ollama 0.12.10's HTTP API with seeded, deterministic answers and a documented performance model
(see ``docs/simulator.md``); every response is marked simulated, and it never stands in for a measurement.
"""

from harness.sim.catalog import CATALOG, ModelSpec, synthetic_digest
from harness.sim.config import SimConfig
from harness.sim.faults import Fault, parse_fault
from harness.sim.server import OLLAMA_VERSION, SIM_HEADER, SimServer
from harness.sim.thread import BackgroundSimServer

__all__ = [
    "CATALOG",
    "OLLAMA_VERSION",
    "SIM_HEADER",
    "BackgroundSimServer",
    "Fault",
    "ModelSpec",
    "SimConfig",
    "SimServer",
    "parse_fault",
    "synthetic_digest",
]
