"""Ground truth: what the server received and when it really emitted each chunk.

Clients measure TTFT and throughput from their side; these records let tests and audits check those
measurements against the server's own monotonic clock (CLOCK_MONOTONIC is shared by processes on one host).
Control endpoints (``/sim/*``) are not recorded, so the log is the API traffic only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RequestRecord:
    """One request as received."""

    request_id: int
    method: str
    path: str
    body: Any
    """Parsed JSON body; None when the body was empty or not JSON."""
    body_sha256: str
    arrival_ns: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Recorder:
    """In-memory logs, optionally appended as JSON Lines to ``record_path``.

    A JSONL file gets a ``{"type": "request", ...}`` line on arrival and one ``{"type": "emissions",
    "request_id", "emitted_ns": [...]}`` line when the response ends (per request, not per chunk, to keep
    file writes off the per-token path).
    """

    def __init__(self, record_path: Path | None = None) -> None:
        self._path = record_path
        self.requests: list[RequestRecord] = []
        self.emissions: dict[int, list[int]] = {}
        self._next_id = 1

    def request(self, method: str, path: str, raw_body: bytes, arrival_ns: int) -> RequestRecord:
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = None
        record = RequestRecord(
            request_id=self._next_id,
            method=method,
            path=path,
            body=body,
            body_sha256=hashlib.sha256(raw_body).hexdigest(),
            arrival_ns=arrival_ns,
        )
        self._next_id += 1
        self.requests.append(record)
        self.emissions[record.request_id] = []
        self._append({"type": "request", **record.to_json()})
        return record

    def emitted(self, request_id: int, ns: int) -> None:
        self.emissions.setdefault(request_id, []).append(ns)

    def finished(self, request_id: int) -> None:
        self._append({"type": "emissions", "request_id": request_id, "emitted_ns": self.emissions.get(request_id, [])})

    def reset(self) -> None:
        self.requests.clear()
        self.emissions.clear()

    def _append(self, line: dict[str, Any]) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=True, default=str) + "\n")
