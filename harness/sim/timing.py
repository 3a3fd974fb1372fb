"""The simulator's performance model: pure functions of a model, the request options and the device load.

All rates are in *simulated* time; the server multiplies every resulting delay by the time scale.

Decode (tokens/s) with ``g = min(num_gpu, L)`` of the model's ``L`` layers on the GPU::

    gpu_tps     = --decode-tps, else the model's calibrated rate (reports, num_ctx 4096), else the roofline
                  1 / (weights_bytes_per_token / (bandwidth × roofline_efficiency) + per_token_overhead)
    cpu_tps     = gpu_tps × cpu_decode_ratio                     (CPU memory bandwidth / GPU bandwidth)
    offload_tps = 1 / ((g/L)/gpu_tps + ((L−g)/L)/cpu_tps)        (each layer costs its device's time share)
    decode_tps  = offload_tps × ctx_factor(num_ctx)
    ctx_factor  = 1 / (1 + ctx_slowdown × (num_ctx − 4096) / 4096), floored at 0.25   (mild; KV reads grow)

``num_gpu`` unset or negative means "as many as fit": full offload (the catalog models fit the 12 GB GPU).

Prompt eval (tokens/s)::

    gpu_prompt_tps = --prompt-tps, else gpu_tps × prompt_batch_factor (batched prefill is compute-bound)
    prompt_tps     = the same per-layer mix with cpu_prompt_ratio, × flash_attention_speedup when enabled

Shared device: while ``k`` sequences decode on one (simulated) GPU, each gets
``decode_tps × efficiency(k) / k`` with ``efficiency(1) = 1`` and ``efficiency(k ≥ 2) = shared_efficiency``
(default 0.7: the reports saw ≈42 tok/s each, ≈78 combined, against ≈110 alone).

Load: a cold load costs ``--load-ms``, else ``load_fixed_ms + size_bytes / load_bytes_per_s``; a warm request
still reports ``warm_load_ms`` (real Ollama reports tens to hundreds of ms for a loaded model).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.sim.catalog import ModelSpec

REFERENCE_NUM_CTX = 4096


@dataclass(frozen=True)
class PerfModel:
    """Device constants of the reports' GPU (RTX 4080 Laptop, 432 GB/s) plus benchmark overrides."""

    bandwidth_bytes_per_s: float = 432e9
    roofline_efficiency: float = 0.62
    per_token_overhead_s: float = 0.0015
    cpu_decode_ratio: float = 0.14
    cpu_prompt_ratio: float = 0.04
    prompt_batch_factor: float = 25.0
    ctx_slowdown: float = 0.01
    flash_attention_speedup: float = 1.1
    shared_efficiency: float = 0.7
    load_fixed_ms: float = 600.0
    load_bytes_per_s: float = 2.0e9
    warm_load_ms: float = 40.0
    decode_tps: float | None = None
    prompt_tps: float | None = None
    load_ms: float | None = None

    def gpu_decode_tps(self, model: ModelSpec) -> float:
        if self.decode_tps is not None:
            return self.decode_tps
        if model.calibrated_decode_tps is not None:
            return model.calibrated_decode_tps
        per_token_s = model.weights_bytes_per_token / (self.bandwidth_bytes_per_s * self.roofline_efficiency)
        return 1.0 / (per_token_s + self.per_token_overhead_s)

    def decode_tps_for(self, model: ModelSpec, num_ctx: int, num_gpu: int | None) -> float:
        """Decode rate of one sequence alone on the device."""
        gpu = self.gpu_decode_tps(model)
        mixed = _layer_mix(gpu, gpu * self.cpu_decode_ratio, gpu_layers(model, num_gpu), model.layers)
        return mixed * ctx_factor(num_ctx, self.ctx_slowdown)

    def prompt_tps_for(self, model: ModelSpec, num_gpu: int | None, *, flash_attention: bool = False) -> float:
        gpu = self.prompt_tps if self.prompt_tps is not None else self.gpu_decode_tps(model) * self.prompt_batch_factor
        rate = _layer_mix(gpu, gpu * self.cpu_prompt_ratio, gpu_layers(model, num_gpu), model.layers)
        return rate * (self.flash_attention_speedup if flash_attention else 1.0)

    def cold_load_s(self, model: ModelSpec) -> float:
        if self.load_ms is not None:
            return self.load_ms / 1000.0
        return self.load_fixed_ms / 1000.0 + model.size_bytes / self.load_bytes_per_s

    def warm_load_s(self) -> float:
        return self.warm_load_ms / 1000.0

    def efficiency(self, k: int) -> float:
        return shared_efficiency(k, self.shared_efficiency)

    def shared_tps(self, alone_tps: float, k: int) -> float:
        """Rate of one of ``k`` sequences time-slicing the device."""
        k = max(k, 1)
        return alone_tps * self.efficiency(k) / k


def gpu_layers(model: ModelSpec, num_gpu: int | None) -> int:
    """Layers offloaded: unset or negative → all (Ollama's auto-fit), else ``min(num_gpu, layers)``."""
    if num_gpu is None or num_gpu < 0:
        return model.layers
    return min(num_gpu, model.layers)


def ctx_factor(num_ctx: int, slowdown: float) -> float:
    return max(0.25, 1.0 / (1.0 + slowdown * (num_ctx - REFERENCE_NUM_CTX) / REFERENCE_NUM_CTX))


def shared_efficiency(k: int, efficiency_k2plus: float) -> float:
    return 1.0 if k <= 1 else efficiency_k2plus


def _layer_mix(gpu_tps: float, cpu_tps: float, on_gpu: int, layers: int) -> float:
    frac_gpu = on_gpu / layers
    return 1.0 / (frac_gpu / gpu_tps + (1.0 - frac_gpu) / cpu_tps)
