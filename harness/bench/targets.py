"""The issue's targets, judged from a results file. Pure: the same results always give the same verdicts.

Rows of the deliberately flawed runtimes (smol-1kb, async-std-mutex) and rows that failed to run are shown
but not judged here; a failed row makes its agent's verdict "not measured" (None), never "met".
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.bench.results import BenchResults, ClientRow, EfficiencyRow, Verdict

TTFT_P99_MS = 0.5
THROUGHPUT_PCT = 0.5
JUDGED_UP_TO_TPS = 2000.0
EFFICIENCY_PP = 0.3
STACK_S = 1.5
BENCH_S = 15 * 60


def _agents(rows: Sequence[ClientRow | EfficiencyRow]) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r.flaw is None and r.agent not in seen:
            seen.append(r.agent)
    return seen


def _fmt(value: float | None, unit: str, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}"


def _worst(rows: Sequence[ClientRow], pick: str) -> tuple[float | None, ClientRow | None]:
    worst: tuple[float | None, ClientRow | None] = (None, None)
    for r in rows:
        value = r.ttft_error_ms.p99 if pick == "ttft" else r.throughput_error_pct.abs_p99
        if value is not None and (worst[0] is None or value > worst[0]):
            worst = (value, r)
    return worst


def judge_clients(rows: Sequence[ClientRow]) -> list[Verdict]:
    out = []
    for agent in _agents(rows):
        mine = [r for r in rows if r.agent == agent and r.rate_tps <= JUDGED_UP_TO_TPS]
        failed = any(r.error for r in mine) or not mine
        for pick, target, limit, unit in (
            ("ttft", f"TTFT error p99 ≤ {TTFT_P99_MS} ms", TTFT_P99_MS, "ms"),
            ("tps", f"throughput error ≤ {THROUGHPUT_PCT} %", THROUGHPUT_PCT, "%"),
        ):
            value, row = _worst(mine, pick)
            where = f" at {row.rate_tps:g} tok/s" if row else ""
            rule = "p99 of the TTFT error" if pick == "ttft" else "p99 of |client tok/s ÷ emitted tok/s − 1|"
            out.append(
                Verdict(
                    target=f"{agent}: {target}",
                    rule=f"{rule}, worst rate up to {JUDGED_UP_TO_TPS:g} tok/s",
                    measured=_fmt(value, unit) + where,
                    met=None if failed or value is None else value <= limit,
                )
            )
    return out


def judge_efficiency(rows: Sequence[EfficiencyRow]) -> list[Verdict]:
    out = []
    for agent in _agents(rows):
        mine = [r for r in rows if r.agent == agent]
        failed = any(r.error for r in mine) or not mine
        errors = [(abs(r.error_pp.median), r) for r in mine if r.error_pp.median is not None]
        worst = max(errors, key=lambda e: e[0], default=None)
        measured = "n/a" if worst is None else f"{worst[0]:.2f} pp ({worst[1].setup}, {worst[1].formula} formula)"
        out.append(
            Verdict(
                target=f"{agent}: efficiency error ≤ {EFFICIENCY_PP} pp",
                rule="|median of measured − true| over the runs, worst of both set-ups and both formulas",
                measured=measured,
                met=None if failed or worst is None else worst[0] <= EFFICIENCY_PP,
            )
        )
    return out


def judge_peer(clients: Sequence[ClientRow], peer: Sequence[ClientRow]) -> list[Verdict]:
    """Ours no worse than the peer's, at every rate both measured: the median TTFT error and the median |throughput
    error| (medians: with tens of calls per rate on a shared machine, a p99 is one scheduling hiccup)."""
    out = []
    theirs = {r.rate_tps: r for r in peer if r.error is None}
    for agent in _agents(clients):
        mine = [r for r in clients if r.agent == agent and r.rate_tps in theirs and r.error is None]
        worse = []
        for r in mine:
            t = theirs[r.rate_tps]
            if (r.ttft_error_ms.median or 0) > (t.ttft_error_ms.median or 0):
                worse.append(f"TTFT at {r.rate_tps:g}")
            if (r.throughput_error_pct.abs_median or 0) > (t.throughput_error_pct.abs_median or 0):
                worse.append(f"tok/s at {r.rate_tps:g}")
        out.append(
            Verdict(
                target=f"{agent}: error no larger than the peer's",
                rule="median TTFT error and median |throughput error| ≤ the peer's, every rate both measured",
                measured="larger: " + ", ".join(worse) if worse else f"no larger at {len(mine)} rate(s)",
                met=None if not mine else not worse,
            )
        )
    return out


def judge(results: BenchResults) -> list[Verdict]:
    out = judge_clients(results.clients) + judge_efficiency(results.efficiency)
    if results.stack is not None:
        median = results.stack.total_s.median
        out.append(
            Verdict(
                target=f"stack overhead ≤ {STACK_S} s per run",
                rule="median of create → ready → removed over the repetitions",
                measured=_fmt(median, "s", 2),
                met=None if median is None else median <= STACK_S,
            )
        )
    if results.peer is not None and results.peer.rows:
        out += judge_peer(results.clients, results.peer.rows)
    if not results.quick and not results.only:
        out.append(
            Verdict(
                target="invoke bench runs in under 15 minutes",
                rule="wall time of the whole bench",
                measured=f"{results.duration_s / 60:.1f} min",
                met=results.duration_s <= BENCH_S,
            )
        )
    return out
