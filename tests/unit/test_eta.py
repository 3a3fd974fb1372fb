"""The plan's ETA: built from the spec and the simulator's own models, refined by observed run times."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.protocol.plan import expand
from harness.protocol.spec import load_spec
from harness.run import eta
from harness.sim.text import expected_length, natural_length

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("prompt_tokens", [50, 250, 600])
def test_expected_length_is_the_mean_of_the_length_model(prompt_tokens: int) -> None:
    draws = [natural_length(i.to_bytes(4, "big"), prompt_tokens) for i in range(20_000)]
    assert sum(draws) / len(draws) == pytest.approx(expected_length(prompt_tokens), rel=0.02)


def test_estimate_scales_with_time_scale_and_skips_completed_runs() -> None:
    spec = load_spec(ROOT / "experiments" / "tr114.toml")
    plan = expand(spec)
    real = eta.estimate(plan, spec, executor="docker", time_scale=1.0)
    fast = eta.estimate(plan, spec, executor="docker", time_scale=0.01)
    assert real.total_s > 10 * fast.total_s
    # a fresh stack per run costs the same at any time scale: the floor of a rehearsal
    assert fast.per_run_s >= eta.STACK_S[("docker", 2)]
    half = frozenset(r.run_id for r in plan.runs[: len(plan.runs) // 2])
    resumed = eta.estimate(plan, spec, executor="docker", time_scale=1.0, skip=half)
    assert resumed.total_s < real.total_s and str(len(plan.runs) - len(half)) in resumed.basis
    done = eta.estimate(plan, spec, executor="docker", time_scale=1.0, skip=frozenset(r.run_id for r in plan.runs))
    assert done.total_s == 0 and done.basis == "nothing left to run"


def test_observed_runs_replace_the_estimate() -> None:
    assert eta.remaining_s(10.0, [], 5) == 50.0
    assert eta.remaining_s(10.0, [2.0, 4.0], 5) == 15.0


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (65.4, "1:05"), (3723, "1:02:03"), (-1, "unknown"), (float("inf"), "unknown")]
)
def test_clock(seconds: float, text: str) -> None:
    assert eta.clock(seconds) == text
