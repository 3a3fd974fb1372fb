"""Seeded fault injection for generation requests, so clients' error paths can be rehearsed reproducibly.

Kinds: ``drop`` (close the connection halfway through the answer), ``stall`` (pause halfway for ``stall_ms``),
``error500`` (HTTP 500 with an Ollama-style ``{"error": ...}`` body, before any work), ``slow-start`` (wait
``delay_ms`` before the first byte), ``error-midstream`` (halfway, one NDJSON ``{"error": ...}`` line, then the
body ends cleanly, as Ollama reports a failure after output started). Probabilistic faults (``--fault
KIND[:P]``) are drawn per generation request from ``sha256(seed, request sequence number, kind)``, so a seed
gives the same faults for the same request order. Queued faults (``POST /sim/faults``) apply to the next
requests in order and win over the probabilistic ones.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["drop", "stall", "error500", "slow-start", "error-midstream"]
FAULT_KINDS: tuple[FaultKind, ...] = ("drop", "stall", "error500", "slow-start", "error-midstream")

DEFAULT_STALL_MS = 2000.0
DEFAULT_SLOW_START_MS = 3000.0


@dataclass(frozen=True)
class Fault:
    """One fault; ``delay_ms`` is the stall or slow-start length in simulated time (unused otherwise)."""

    kind: FaultKind
    probability: float = 1.0
    delay_ms: float | None = None

    def delay_s(self, stall_ms: float = DEFAULT_STALL_MS, slow_start_ms: float = DEFAULT_SLOW_START_MS) -> float:
        if self.delay_ms is not None:
            return self.delay_ms / 1000.0
        return (stall_ms if self.kind == "stall" else slow_start_ms) / 1000.0


def parse_fault(text: str) -> Fault:
    """``KIND[:PROBABILITY]`` as the ``--fault`` flag takes it; raises ``ValueError`` with what is allowed."""
    kind, _, prob_text = text.partition(":")
    kind = kind.strip()
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")
    probability = 1.0
    if prob_text:
        try:
            probability = float(prob_text)
        except ValueError:
            raise ValueError(f"fault probability {prob_text!r} is not a number") from None
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"fault probability {probability} is not between 0 and 1")
    return Fault(kind, probability)


def parse_queued(body: object) -> list[Fault]:
    """The ``POST /sim/faults`` body: a JSON list of ``"KIND"`` or ``{"kind", "count"?, "delay_ms"?}``.

    Each entry (repeated ``count`` times, default 1) is the fault of one upcoming generation request;
    ``{"kind": "none"}`` leaves a request untouched.
    """
    if not isinstance(body, list):
        raise ValueError("expected a JSON list of faults")
    result: list[Fault] = []
    for entry in body:
        if isinstance(entry, str):
            entry = {"kind": entry}
        if not isinstance(entry, dict):
            raise ValueError(f"fault entry {entry!r} is neither a string nor an object")
        kind = entry.get("kind")
        count = entry.get("count", 1)
        delay = entry.get("delay_ms")
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"fault count {count!r} is not a non-negative integer")
        if delay is not None and not isinstance(delay, int | float):
            raise ValueError(f"fault delay_ms {delay!r} is not a number")
        if kind == "none":
            fault = Fault("drop", probability=0.0)
        else:
            fault = Fault(parse_fault(str(kind)).kind, 1.0, float(delay) if delay is not None else None)
        result.extend([fault] * count)
    return result


class FaultPlan:
    """Decides the faults of each generation request, in arrival order."""

    def __init__(self, seed: int, faults: Iterable[Fault] = ()) -> None:
        self._seed = seed
        self._standing = tuple(faults)
        self._queued: deque[Fault] = deque()
        self._sequence = 0

    def queue(self, faults: Iterable[Fault]) -> int:
        self._queued.extend(faults)
        return len(self._queued)

    def reset(self) -> None:
        self._queued.clear()
        self._sequence = 0

    @property
    def queued(self) -> int:
        return len(self._queued)

    def draw(self) -> dict[FaultKind, Fault]:
        """Faults for the next generation request (at most one per kind)."""
        self._sequence += 1
        if self._queued:
            fault = self._queued.popleft()
            return {fault.kind: fault} if fault.probability > 0 else {}
        chosen: dict[FaultKind, Fault] = {}
        for fault in self._standing:
            if fault.kind not in chosen and _uniform(self._seed, self._sequence, fault.kind) < fault.probability:
                chosen[fault.kind] = fault
        return chosen


def _uniform(seed: int, sequence: int, kind: str) -> float:
    digest = hashlib.sha256(f"{seed}:{sequence}:{kind}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
