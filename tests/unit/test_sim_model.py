"""Pure parts of the simulator: catalog, performance model, text plan, faults, keep-alive parsing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from harness.sim.catalog import CATALOG, ModelStore, lookup, normalize_name, synthetic_digest
from harness.sim.config import SimConfig
from harness.sim.faults import FaultPlan, parse_fault, parse_queued
from harness.sim.runners import parse_keep_alive
from harness.sim.text import (
    TokenStream,
    content_key,
    count_prompt_tokens,
    natural_length,
    plan_length,
)
from harness.sim.timing import PerfModel, gpu_layers

GEMMA = CATALOG["gemma3:latest"]


def test_catalog_has_the_reports_models_with_synthetic_digests() -> None:
    for name in (
        "gemma3:latest",
        "gemma3:270m",
        "gemma3:1b-it-qat",
        "llama3.1:8b-instruct-q4_0",
        "llama3.1:8b-instruct-q5_K_M",
        "llama3.1:8b-instruct-q8_0",
    ):
        spec = CATALOG[name]
        assert spec.digest == hashlib.sha256(f"chimeraforge-sim:{name}".encode()).hexdigest()
    assert GEMMA.layers == 34
    assert 3.2e9 < GEMMA.size_bytes < 3.4e9
    assert normalize_name("gemma3") == "gemma3:latest"
    assert lookup("gemma3") is GEMMA
    assert synthetic_digest("x") != synthetic_digest("y")


def test_model_store_persists_manifests(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.add("gemma3:270m")
    again = ModelStore(tmp_path)
    assert again.has("gemma3:270m")
    assert again.remove("gemma3:270m")
    assert not ModelStore(tmp_path).has("gemma3:270m")


def test_decode_rate_near_the_reports_and_responds_to_offload_and_context() -> None:
    perf = PerfModel()
    full = perf.decode_tps_for(GEMMA, 4096, None)
    assert 100 <= full <= 115
    assert perf.decode_tps_for(GEMMA, 4096, 999) == full  # num_gpu ≥ layers: full offload
    partial = perf.decode_tps_for(GEMMA, 4096, 17)
    assert partial < full / 2
    assert perf.decode_tps_for(GEMMA, 4096, 0) < partial
    assert perf.decode_tps_for(GEMMA, 32768, None) < full < perf.decode_tps_for(GEMMA, 512, None)
    assert perf.decode_tps_for(GEMMA, 2048, None) / full < 1.02  # mild
    assert gpu_layers(GEMMA, -1) == 34
    # uncalibrated models use the bandwidth roofline: smaller models decode faster
    assert perf.gpu_decode_tps(CATALOG["gemma3:270m"]) > perf.gpu_decode_tps(CATALOG["gemma3:1b-it-qat"]) > full


def test_prompt_rate_overrides_and_flash_attention() -> None:
    perf = PerfModel(decode_tps=1000.0, prompt_tps=5000.0, load_ms=7.0)
    assert perf.decode_tps_for(GEMMA, 4096, None) == 1000.0
    assert perf.prompt_tps_for(GEMMA, None) == 5000.0
    assert perf.prompt_tps_for(GEMMA, None, flash_attention=True) > 5000.0
    assert perf.cold_load_s(GEMMA) == pytest.approx(0.007)
    assert PerfModel().cold_load_s(GEMMA) > 1.0


def test_shared_device_rule() -> None:
    perf = PerfModel()
    assert perf.shared_tps(110.0, 1) == 110.0
    each = perf.shared_tps(110.0, 2)
    assert each == pytest.approx(110.0 * 0.7 / 2)
    assert 35 < each < 45 and 70 < 2 * each < 85  # the reports' ≈42 each, ≈78 combined


def test_text_is_deterministic_and_lengths_follow_the_documented_distribution() -> None:
    key = content_key(1, "gemma3:latest", "p", {"temperature": 0.8, "num_ctx": 512})
    assert key == content_key(1, "gemma3:latest", "p", {"temperature": 0.8, "num_ctx": 4096})
    assert key != content_key(2, "gemma3:latest", "p", {"temperature": 0.8})
    a, b = TokenStream(key), TokenStream(key)
    assert [a.next() for _ in range(50)] == [b.next() for _ in range(50)]
    lengths = [natural_length(content_key(s, "m", "long", {}), 2000) for s in range(400)]
    normal = [n for n in lengths if n <= 1200]
    assert min(normal) >= 900
    long = [n for n in lengths if n > 1200]
    assert 0 < len(long) < 80 and all(2700 <= n <= 4800 for n in long)
    assert count_prompt_tokens("Hello, world!") == 5


def test_plan_caps() -> None:
    key = content_key(1, "m", "x", {})
    assert plan_length(key, 10, num_predict=3, num_ctx=4096, forced_tokens=None).done_reason == "length"
    assert plan_length(key, 10, num_predict=-1, num_ctx=4096, forced_tokens=7).eval_count == 7
    assert plan_length(key, 10, num_predict=-2, num_ctx=20, forced_tokens=None).eval_count == 10
    plan = plan_length(key, 10, num_predict=None, num_ctx=4096, forced_tokens=12)
    assert (plan.eval_count, plan.done_reason) == (12, "stop")


def test_faults_parse_and_draw_deterministically() -> None:
    assert parse_fault("stall:0.25").probability == 0.25
    with pytest.raises(ValueError, match="unknown fault kind"):
        parse_fault("explode")
    with pytest.raises(ValueError):
        parse_fault("drop:2")
    standing = [parse_fault("drop:0.3"), parse_fault("slow-start:0.5")]
    draws = [FaultPlan(7, standing) for _ in range(2)]
    seq = [[sorted(p.draw()) for _ in range(50)] for p in draws]
    assert seq[0] == seq[1]
    assert any(seq[0]) and not all(seq[0])
    plan = FaultPlan(7)
    plan.queue(parse_queued(["error500", {"kind": "stall", "count": 2, "delay_ms": 5}, {"kind": "none"}]))
    assert list(plan.draw()) == ["error500"]
    assert plan.draw()["stall"].delay_s() == pytest.approx(0.005)
    assert list(plan.draw()) == ["stall"]
    assert plan.draw() == {}
    with pytest.raises(ValueError):
        parse_queued({"kind": "drop"})


def test_keep_alive_parsing() -> None:
    assert parse_keep_alive("5m") == 300 * 10**9
    assert parse_keep_alive("1h30m") == 5400 * 10**9
    assert parse_keep_alive("250ms") == 250 * 10**6
    assert parse_keep_alive(0) == 0
    assert parse_keep_alive("-1") < 0
    assert parse_keep_alive(1.5) == 1_500_000_000
    for bad in ("soon", "5x", True, None):
        with pytest.raises(ValueError):
            parse_keep_alive(bad)


def test_config_validation() -> None:
    assert SimConfig(preload=("gemma3",)).preload == ("gemma3:latest",)
    with pytest.raises(ValueError, match="unknown model"):
        SimConfig(preload=("gpt-5",))
    with pytest.raises(ValueError, match="shared device needs"):
        SimConfig(shared_device="g")
    with pytest.raises(ValueError):
        SimConfig(keep_alive="forever")
