"""What a server ran with, read back from its log: the simulator's lines and the shapes a real server writes."""

from __future__ import annotations

from harness.engines.ollama_log import parse_server_config, runtime_facts
from harness.facts import Absent
from harness.sim.catalog import CATALOG
from harness.sim.serverlog import ServerLog

# A "server config" line in the shape of 0.12.10's slog text output (Go prints the map sorted, `KEY:value`).
REAL_CONFIG = (
    'time=2025-11-06T10:14:58.123Z level=INFO source=routes.go:1331 msg="server config" '
    'env="map[CUDA_VISIBLE_DEVICES: OLLAMA_CONTEXT_LENGTH:4096 OLLAMA_DEBUG:INFO OLLAMA_FLASH_ATTENTION:false '
    "OLLAMA_HOST:http://0.0.0.0:11434 OLLAMA_KEEP_ALIVE:5m0s OLLAMA_KV_CACHE_TYPE: OLLAMA_NUM_PARALLEL:1 "
    'OLLAMA_ORIGINS:[http://localhost https://localhost] OLLAMA_SCHED_SPREAD:false]"'
)
LLAMA_CPP_LOAD = """\
llama_context: n_ctx         = 4096
llama_context: flash_attn    = 1
llama_kv_cache_unified: size = 136.00 MiB (4096 cells, 34 layers), type_k = 'f16', type_v = 'f16'
load_tensors: offloaded 35/35 layers to GPU
"""
PS = {"models": [{"name": "gemma3:latest", "model": "gemma3:latest", "size": 6169209856, "size_vram": 6169209856,
                  "context_length": 4096}]}  # fmt: skip


def test_the_server_config_line_keeps_every_setting() -> None:
    config = parse_server_config(REAL_CONFIG)
    assert config is not None
    assert config["OLLAMA_FLASH_ATTENTION"] == "false" and config["OLLAMA_KEEP_ALIVE"] == "5m0s"
    assert config["OLLAMA_KV_CACHE_TYPE"] == "" and config["OLLAMA_ORIGINS"] == "[http://localhost https://localhost]"
    assert config["OLLAMA_SCHED_SPREAD"] == "false"
    assert parse_server_config("no such line") is None


def test_a_real_servers_load_lines_give_the_decision_cache_type_and_offload() -> None:
    facts = runtime_facts(PS, "gemma3", REAL_CONFIG + "\n" + LLAMA_CPP_LOAD)
    assert facts.flash_attention is True and facts.kv_cache_type == "f16"
    assert (facts.layers_on_gpu, facts.layers_total) == (35, 35)
    assert not isinstance(facts.loaded, Absent) and facts.loaded.size_vram_bytes == 6169209856


def test_the_latest_load_wins_and_missing_facts_say_why() -> None:
    later_off = LLAMA_CPP_LOAD + "llama_context: flash_attn    = 0\n"
    assert runtime_facts(PS, "gemma3", later_off).flash_attention is False
    bare = runtime_facts({"models": []}, "gemma3", REAL_CONFIG)  # the originals' logs: no load lines at all
    assert isinstance(bare.flash_attention, Absent) and "no model-load line" in bare.flash_attention.reason
    assert isinstance(bare.loaded, Absent) and "did not list gemma3" in bare.loaded.reason
    unread = runtime_facts(PS, "gemma3", None)
    assert isinstance(unread.server_config, Absent) and "could not be read" in unread.server_config.reason


def test_the_simulators_lines_read_back() -> None:
    log = ServerLog()
    log.server_config({"OLLAMA_FLASH_ATTENTION": "false", "OLLAMA_NUM_PARALLEL": "1"})
    log.runner_loaded(CATALOG["gemma3:latest"], flash_attention=True, kv_cache_type="f16", layers_on_gpu=20,
                      gpu_id="0")  # fmt: skip
    facts = runtime_facts(PS, "gemma3:latest", log.text())
    assert facts.server_config == {"OLLAMA_FLASH_ATTENTION": "false", "OLLAMA_NUM_PARALLEL": "1"}
    assert facts.flash_attention is True and facts.kv_cache_type == "f16"
    assert (facts.layers_on_gpu, facts.layers_total) == (20, 35)
    assert all(line.endswith("simulated=true") for line in log.text().splitlines())
