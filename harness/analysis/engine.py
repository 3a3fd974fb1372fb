"""Which engine measured an artifact folder, in the words a report shows: the kit's backends are not one engine.

Ollama runs are what the reports measured; the simulator's are a rehearsal (the SIMULATED banner); llama.cpp
runs are real measurements of another engine, on a CPU or (the CUDA image) a GPU, so absolute claims about the
original Ollama numbers cannot be judged from them (they are marked not comparable), while ratios still can.
"""

from __future__ import annotations

LLAMACPP_NOTE = (
    "Measured on llama.cpp (llama-server, {build}) with real tokens and the engine's own timings, not on Ollama: "
    "absolute figures are not comparable with the reports' numbers, and hardware-bound claims are marked not "
    "comparable."
)
BUILDS = {"cpu": "CPU build", "cuda": "CUDA build, on the GPU"}
"""``engine.json`` ``device`` → how the note names the build; a folder without it predates the CUDA image (CPU)."""


ENGINE_NAMES = {"llamacpp": "llama.cpp"}
"""Backends that are another engine than the reports' (Ollama), by the name a report gives them."""


def other_engine(backend: str | None) -> str | None:
    """The engine's name when ``backend`` is not the reports' engine (nor its simulator); None otherwise."""
    return ENGINE_NAMES.get(backend or "")


def engine_note(backend: str | None, device: str | None = None) -> str | None:
    """The paragraph a report's verdicts section shows for this backend; None for Ollama and the simulator."""
    if backend != "llamacpp":
        return None
    return LLAMACPP_NOTE.format(build=BUILDS.get(device or "cpu", f"{device} build"))
