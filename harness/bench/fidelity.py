"""The bench's error arithmetic: client records against the simulator's ground truth. Pure, no I/O.

Definitions (docs/bench.md repeats them):

- true TTFT = the simulator's first-chunk emission − the request's arrival (its first bytes read);
  client TTFT = ``first_chunk_ns − start_ns``; TTFT error = client − true. Both clocks are CLOCK_MONOTONIC of
  one host, so the difference is the time the client spent outside the server: writing the request, the
  loopback, reading and parsing the first chunk.
- emitted rate = (n − 1) / (emission of chunk n − emission of chunk 1) over the chunks the client counted;
  client rate = the same over the client's arrival times (:func:`harness.metrics.client_tps`); throughput
  error = client / emitted − 1, and the simulator's pacing error = emitted / nominal − 1 (in %).
- multi-agent efficiency error = measured − true, in percentage points, for the originals' formula and for the
  kit's true efficiency; the true values of the two set-ups are :func:`ideal_efficiency`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness import metrics
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord

NS_PER_MS = 1_000_000
Setup = Literal["two_servers", "one_server"]


class TruthError(ValueError):
    """A client record and the simulator's logs do not line up (a bench bug or a foreign request)."""


@dataclass(frozen=True)
class ServerRequest:
    """One request as the simulator logged it (``GET /sim/requests``)."""

    request_id: int
    path: str
    body_sha256: str
    arrival_ns: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServerRequest:
        return cls(int(data["request_id"]), str(data["path"]), str(data["body_sha256"]), int(data["arrival_ns"]))


def parse_truth(
    requests: Mapping[str, Any], emissions: Mapping[str, Any]
) -> tuple[list[ServerRequest], dict[int, list[int]]]:
    """The JSON of ``/sim/requests`` and ``/sim/emissions`` as typed values."""
    reqs = [ServerRequest.from_json(r) for r in requests.get("requests", [])]
    emitted = {int(k): [int(t) for t in v] for k, v in emissions.get("emissions", {}).items()}
    return reqs, emitted


def match_calls(
    calls: Sequence[CallRecord], requests: Sequence[ServerRequest]
) -> list[tuple[CallRecord, ServerRequest]]:
    """Pair each call with the one request that has its body hash and arrived while the call was open."""
    out: list[tuple[CallRecord, ServerRequest]] = []
    taken: set[int] = set()
    for call in calls:
        found = [
            r
            for r in requests
            if r.body_sha256 == call.request_sha256
            and call.start_ns <= r.arrival_ns <= call.end_ns
            and r.request_id not in taken
        ]
        if len(found) != 1:
            raise TruthError(
                f"call {call.call_index} of {call.role} (start {call.start_ns}) matches {len(found)} server requests"
            )
        taken.add(found[0].request_id)
        out.append((call, found[0]))
    return out


def emitted_tps(emitted_ns: Sequence[int], chunks: int) -> float | None:
    """The rate the server really emitted the first ``chunks`` chunks at (None below two, or no span)."""
    if chunks < 2 or len(emitted_ns) < chunks:
        return None
    span = emitted_ns[chunks - 1] - emitted_ns[0]
    return (chunks - 1) / (span / 1e9) if span > 0 else None


def pct_error(measured: float | None, truth: float | None) -> float | None:
    if measured is None or truth is None or truth == 0:
        return None
    return (measured / truth - 1) * 100


@dataclass(frozen=True)
class CallError:
    """One streamed call against its ground truth."""

    client_ttft_ms: float
    true_ttft_ms: float
    ttft_error_ms: float
    throughput_error_pct: float | None
    pacing_error_pct: float | None
    chunks: int


def call_error(call: CallRecord, request: ServerRequest, emitted_ns: Sequence[int], nominal_tps: float) -> CallError:
    """TTFT and throughput error of one of our agents' calls."""
    if call.first_chunk_ns is None or not emitted_ns:
        raise TruthError(f"call {call.call_index} of {call.role} has no first chunk to compare")
    if len(emitted_ns) < call.chunk_count:
        raise TruthError(f"the client counted {call.chunk_count} chunks, the server emitted {len(emitted_ns)}")
    true_ttft = (emitted_ns[0] - request.arrival_ns) / NS_PER_MS
    client_ttft = (call.first_chunk_ns - call.start_ns) / NS_PER_MS
    truth_tps = emitted_tps(emitted_ns, call.chunk_count)
    return CallError(
        client_ttft_ms=client_ttft,
        true_ttft_ms=true_ttft,
        ttft_error_ms=client_ttft - true_ttft,
        throughput_error_pct=pct_error(metrics.client_tps(call), truth_tps),
        pacing_error_pct=pct_error(truth_tps, nominal_tps),
        chunks=call.chunk_count,
    )


def peer_call_error(
    client_ttft_ms: float,
    client_tps: float | None,
    tokens: int,
    request: ServerRequest,
    emitted_ns: Sequence[int],
    nominal_tps: float,
) -> CallError:
    """The same figures for a peer tool that reports its own TTFT and per-request token rate."""
    if not emitted_ns:
        raise TruthError(f"request {request.request_id} emitted nothing")
    true_ttft = (emitted_ns[0] - request.arrival_ns) / NS_PER_MS
    truth_tps = emitted_tps(emitted_ns, tokens)
    return CallError(
        client_ttft_ms=client_ttft_ms,
        true_ttft_ms=true_ttft,
        ttft_error_ms=client_ttft_ms - true_ttft,
        throughput_error_pct=pct_error(client_tps, truth_tps),
        pacing_error_pct=pct_error(truth_tps, nominal_tps),
        chunks=tokens,
    )


def ideal_efficiency(setup: Setup, calls_per_agent: int) -> tuple[float, float]:
    """True (original formula, kit's true efficiency) in % for two identical agents of equal-length calls.

    Two independent servers: both agents run side by side, 100 and 100. One server with NUM_PARALLEL=1 and a
    FIFO queue: the calls alternate, so the agent served first ends after ``2k − 1`` call lengths and the other
    after ``2k``, with both agents' clocks started together: original ``(4k − 1) / 4k``, true 50.
    """
    if calls_per_agent < 1:
        raise ValueError("an agent makes at least one call")
    if setup == "two_servers":
        return 100.0, 100.0
    k = calls_per_agent
    return (4 * k - 1) / (4 * k) * 100, 50.0


@dataclass(frozen=True)
class MeasuredEfficiency:
    original_pct: float
    true_pct: float | None


def measured_efficiency(
    multi: MultiRunRecord,
    runs: Sequence[AgentRunRecord],
    isolated_s: tuple[float, float] | None,
) -> MeasuredEfficiency:
    """The kit's two efficiencies of one multi-agent run, from its records (and isolated durations)."""
    by_role = {r.role: r for r in runs}
    if set(by_role) != {"collector", "insight"}:
        raise TruthError(f"a multi-agent run needs a collector and an insight record, got {sorted(by_role)}")
    wall_s = (multi.end_ns - multi.start_ns) / 1e9
    exec_a, exec_b = ((by_role[r].end_ns - by_role[r].start_ns) / 1e9 for r in ("collector", "insight"))
    original = metrics.original_efficiency(exec_a, exec_b, wall_s).efficiency_pct
    true = metrics.true_efficiency_pct(isolated_s[0], isolated_s[1], wall_s) if isolated_s else None
    return MeasuredEfficiency(original, true)
