"""``python -m harness.sim``: serve the simulated Ollama API until interrupted.

The only place the simulator reads the environment: Ollama's own ``OLLAMA_*`` knobs via
:func:`harness.settings.load_server_settings`; flags win. ``OLLAMA_HOST`` is deliberately ignored: containers
set it for clients, and ``--host/--port`` say where this server listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from harness.errors import HarnessError, SettingsError
from harness.settings import load_server_settings
from harness.sim.catalog import CATALOG
from harness.sim.config import SimConfig
from harness.sim.faults import FAULT_KINDS, parse_fault
from harness.sim.server import SimServer
from harness.sim.serverlog import ServerLog


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m harness.sim",
        description="Simulated Ollama 0.12.10 server (every response is marked simulated). "
        "Server knobs also come from OLLAMA_NUM_PARALLEL, OLLAMA_KEEP_ALIVE, OLLAMA_CONTEXT_LENGTH, "
        "OLLAMA_FLASH_ATTENTION and OLLAMA_MODELS; flags win. See docs/simulator.md.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: Ollama has no auth)")
    p.add_argument("--port", type=int, default=11434, help="port; 0 picks a free one (default 11434)")
    p.add_argument("--seed", type=int, default=None, help="seed for tokens, lengths and faults (default 1234)")
    p.add_argument("--time-scale", type=float, default=None, help="multiply every simulated delay (default 1)")
    p.add_argument("--num-parallel", type=int, default=None, help="overrides OLLAMA_NUM_PARALLEL")
    p.add_argument("--keep-alive", default=None, help="overrides OLLAMA_KEEP_ALIVE (Go duration)")
    p.add_argument("--context-length", type=int, default=None, help="overrides OLLAMA_CONTEXT_LENGTH")
    p.add_argument("--models-dir", type=Path, default=None, help="overrides OLLAMA_MODELS (pulled manifests)")
    p.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="MODEL",
        help=f"available without a pull: {', '.join(CATALOG)}",
    )
    p.add_argument("--tokens", type=int, default=None, help="force every answer to N tokens (benchmarks)")
    p.add_argument("--decode-tps", type=float, default=None, help="full-offload decode rate, tokens/s")
    p.add_argument("--prompt-tps", type=float, default=None, help="full-offload prompt-eval rate, tokens/s")
    p.add_argument("--load-ms", type=float, default=None, help="cold model-load time, ms")
    p.add_argument("--warm-load-ms", type=float, default=None, help="load_duration of a warm request, ms")
    p.add_argument("--shared-device", metavar="GROUP", default=None, help="time-slice one simulated GPU with GROUP")
    p.add_argument(
        "--device-dir", type=Path, default=None, help="shared-device dir (default <models>/.sim-device/GROUP)"
    )
    p.add_argument("--shared-efficiency", type=float, default=None, help="device efficiency with ≥2 sequences (0.7)")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:P]",
        help=f"inject a fault with probability P (default 1); KIND in {', '.join(FAULT_KINDS)}; repeatable",
    )
    p.add_argument("--stall-ms", type=float, default=None, help="length of a stall fault (default 2000)")
    p.add_argument("--slow-start-ms", type=float, default=None, help="delay of a slow-start fault (default 3000)")
    p.add_argument("--record", type=Path, default=None, metavar="PATH", help="append ground truth as JSON Lines")
    p.add_argument(
        "--registry",
        choices=("reachable", "unreachable"),
        default=None,
        help="unreachable: /api/pull fails as on an offline host (default reachable)",
    )
    p.add_argument("--unload-delay-ms", type=float, default=None, help="how long a keep_alive: 0 unload takes (150)")
    p.add_argument("--gpu-id", default=None, help="the GPU this server says it runs on (its load log lines)")
    return p


def config_from_args(argv: Sequence[str] | None = None) -> SimConfig:
    args = build_parser().parse_args(argv)
    try:
        faults = tuple(parse_fault(f) for f in args.fault)
        return SimConfig.from_server_settings(
            load_server_settings(),
            host=args.host,
            port=args.port,
            seed=args.seed,
            time_scale=args.time_scale,
            num_parallel=args.num_parallel,
            keep_alive=args.keep_alive,
            context_length=args.context_length,
            models_dir=args.models_dir,
            preload=tuple(args.preload),
            tokens=args.tokens,
            decode_tps=args.decode_tps,
            prompt_tps=args.prompt_tps,
            load_ms=args.load_ms,
            warm_load_ms=args.warm_load_ms,
            shared_device=args.shared_device,
            device_dir=args.device_dir,
            shared_efficiency=args.shared_efficiency,
            faults=faults,
            stall_ms=args.stall_ms,
            slow_start_ms=args.slow_start_ms,
            record_path=args.record,
            registry_reachable=None if args.registry is None else args.registry == "reachable",
            unload_delay_ms=args.unload_delay_ms,
            gpu_id=args.gpu_id,
        )
    except (ValueError, ValidationError) as exc:
        raise SettingsError(f"invalid simulator option: {exc}", hint="see python -m harness.sim --help") from None


async def serve(config: SimConfig) -> None:
    """Serve until SIGINT/SIGTERM, then clean up (shared-device files included)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with SimServer(config, log=ServerLog.to_stderr()) as sim:
        print(f"chimeraforge-sim (simulated Ollama) listening on {sim.base_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = config_from_args(argv)
        asyncio.run(serve(config))
    except HarnessError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"Error: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
