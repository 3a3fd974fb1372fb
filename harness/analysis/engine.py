"""Which engine measured an artifact folder, in the words a report shows: the kit's backends are not one engine.

Ollama runs are what the reports measured; the simulator's are a rehearsal (the SIMULATED banner); llama.cpp
runs are real measurements of another engine, here on a CPU, so absolute claims about the original GPU numbers
cannot be judged from them (they are marked not comparable, as with no GPU), while ratios still can.
"""

from __future__ import annotations

LLAMACPP_NOTE = (
    "Measured on llama.cpp (llama-server, CPU build) with real tokens and the engine's own timings, not on Ollama: "
    "absolute figures are not comparable with the reports' GPU numbers, and hardware-bound claims are marked not "
    "comparable."
)


ENGINE_NAMES = {"llamacpp": "llama.cpp"}
"""Backends that are another engine than the reports' (Ollama), by the name a report gives them."""


def other_engine(backend: str | None) -> str | None:
    """The engine's name when ``backend`` is not the reports' engine (nor its simulator); None otherwise."""
    return ENGINE_NAMES.get(backend or "")


def engine_note(backend: str | None) -> str | None:
    """The paragraph a report's verdicts section shows for this backend; None for Ollama and the simulator."""
    return LLAMACPP_NOTE if backend == "llamacpp" else None
