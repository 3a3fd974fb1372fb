"""Parity: for the same config the Python and Rust agents send identical request bodies to the simulator.

Compared from the simulator's own request log (body sha256), for the single agent and every multi-agent
scenario. The Rust binaries are built by `cargo build` in harness/rust (CI runs `cargo test` first, so this is
an up-to-date check, not a fresh compile).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.agents.runner import SingleAgent, run_multi, run_single
from harness.agents.workflow import Workload
from harness.sim.config import SimConfig
from harness.sim.server import SimServer

ROOT = Path(__file__).resolve().parents[2]
RUST = ROOT / "harness" / "rust"
MODEL = "gemma3:latest"
CHIMERA = {"num_gpu": 80, "num_ctx": 512, "temperature": 0.8}
CHIMERA2 = {"num_gpu": 100, "num_ctx": 1024, "temperature": 0.6}


@pytest.fixture(scope="module")
def rust_bin() -> Path:
    if shutil.which("cargo") is None:
        pytest.fail("cargo is required for the parity test (the kit's Rust agents are part of every machine)")
    subprocess.run(["cargo", "build", "--locked", "--bins", "--quiet"], cwd=RUST, check=True, timeout=900)
    return RUST / "target" / "debug"


def _sim() -> SimServer:
    return SimServer(SimConfig(preload=(MODEL,), tokens=20, decode_tps=2000.0, load_ms=5.0, seed=3))


def _workload() -> Workload:
    return Workload.load(
        model=MODEL, workflow="two_call", streaming=True,
        prompts_dir=ROOT / "experiments" / "prompts", corpus_dir=ROOT / "experiments" / "corpus",
    )  # fmt: skip


def _flags(prefix: str, options: dict[str, float | int]) -> list[str]:
    return [x for k, v in options.items() for x in (f"--{prefix}-{k.replace('_', '-')}", str(v))]


async def _rust(cmd: list[str], tmp: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *cmd, "--prompts", str(ROOT / "experiments/prompts"), "--corpus", str(ROOT / "experiments/corpus"),
        "--output-dir", str(tmp), "--model", MODEL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


def _bodies(server: SimServer) -> list[tuple[str, str]]:
    return sorted((r.path, r.body_sha256) for r in server.requests if r.path == "/api/generate")


async def test_single_agent_bodies_are_identical(rust_bin: Path, tmp_path: Path) -> None:
    async with _sim() as py_sim, _sim() as rs_sim:
        agents = [SingleAgent("baseline", None), SingleAgent("chimera", CHIMERA)]
        await run_single(py_sim.base_url, _workload(), agents, pause_s=0)
        await _rust(
            [str(rust_bin / "chimeraforge-agent"), "--base-url", rs_sim.base_url, "--agents", "baseline,chimera",
             "--pause-s", "0", *_flags("chimera", CHIMERA)],
            tmp_path,
        )  # fmt: skip
        assert len(_bodies(py_sim)) == 4
        assert _bodies(py_sim) == _bodies(rs_sim)


@pytest.mark.parametrize(
    ("scenario", "a", "b"),
    [("baseline_vs_chimera", None, CHIMERA), ("chimera_hetero", CHIMERA, CHIMERA2), ("chimera_homo", CHIMERA, CHIMERA)],
)
async def test_multi_agent_bodies_are_identical(
    rust_bin: Path, tmp_path: Path, scenario: str, a: dict | None, b: dict
) -> None:
    async with _sim() as py_a, _sim() as py_b, _sim() as rs_a, _sim() as rs_b:
        await run_multi(py_a.base_url, py_b.base_url, _workload(), scenario, a, b)  # type: ignore[arg-type]
        flags = _flags("chimera", a or b) + (_flags("chimera2", b) if scenario == "chimera_hetero" else [])
        await _rust(
            [str(rust_bin / "chimeraforge-multi"), "--collector-ollama-url", rs_a.base_url,
             "--insight-ollama-url", rs_b.base_url, "--scenario", scenario, "--runtime", "smol", *flags],
            tmp_path,
        )  # fmt: skip
        assert len(_bodies(py_a)) == len(_bodies(py_b)) == 2
        assert _bodies(py_a) == _bodies(rs_a)
        assert _bodies(py_b) == _bodies(rs_b)


async def test_isolated_side_bodies_are_identical(rust_bin: Path, tmp_path: Path) -> None:
    """An isolated baseline run is one multi-agent side alone: role collector/insight with that side's options."""
    async with _sim() as py_sim, _sim() as rs_sim:
        await run_single(py_sim.base_url, _workload(), [SingleAgent("insight", CHIMERA2)], pause_s=0)
        await _rust(
            [str(rust_bin / "chimeraforge-agent"), "--base-url", rs_sim.base_url, "--agents", "insight",
             "--pause-s", "0", *_flags("chimera", CHIMERA2)],
            tmp_path,
        )  # fmt: skip
        assert len(_bodies(py_sim)) == 2
        assert _bodies(py_sim) == _bodies(rs_sim)
    roles = {line.split('"role":"')[1].split('"')[0] for line in (tmp_path / "records.jsonl").read_text().splitlines()}
    assert roles == {"insight"}


@pytest.mark.parametrize("report", ["tr110", "tr115"])
async def test_the_orchestrators_agent_commands_run_in_both_languages(rust_bin: Path, report: str) -> None:
    """Every kind of run the container executor launches (protocol, isolated, diagnostic) is a command line the
    agent of its language accepts and completes: a flag one side lacks fails here, not in a container."""
    from harness.agents.runner import Timeouts
    from harness.protocol.plan import expand
    from harness.protocol.spec import load_spec, spec_path
    from harness.records import parse_record
    from harness.run.agent_line import agent_command

    spec = load_spec(spec_path(ROOT / "experiments", report))
    plan = expand(spec, runs_per_config=1, config_ids={spec.configs[0].id})
    kinds = {(r.kind, r.language, r.runtime): r for r in plan.runs}
    assert {k for k, _, _ in kinds} >= {"protocol", "isolated"}
    async with _sim() as first, _sim() as second:
        for run in kinds.values():
            cmd = agent_command(run, spec, [first.base_url, second.base_url], 0.0, timeouts=Timeouts(30.0, 5.0))
            if run.language == "rust":
                cmd[0] = str(rust_bin / cmd[0])
            else:
                cmd[:3] = [sys.executable, "-m", "harness"]
            proc = await asyncio.create_subprocess_exec(
                *cmd, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            out, err = await proc.communicate()
            assert proc.returncode == 0, f"{run.kind} {run.runtime}: {err.decode()[-400:]}"
            records = [parse_record(line) for line in out.decode().splitlines() if line.strip()]
            assert records and all(r.runtime == run.runtime for r in records)


async def test_every_spec_option_gives_identical_bodies(rust_bin: Path, tmp_path: Path) -> None:
    """Every field of the spec's Options (num_predict and seed included) is a flag both agents take and send."""
    from harness.protocol.flags import OPTION_NAMES, option_flags

    every = {"num_gpu": 80, "num_ctx": 512, "temperature": 0.8, "top_p": 0.9, "top_k": 40}
    every |= {"repeat_penalty": 1.1, "num_predict": 16, "seed": 7}
    assert tuple(every) == OPTION_NAMES
    async with _sim() as py_sim, _sim() as rs_sim:
        await run_single(py_sim.base_url, _workload(), [SingleAgent("chimera", every)], pause_s=0)
        await _rust(
            [str(rust_bin / "chimeraforge-agent"), "--base-url", rs_sim.base_url, "--agents", "chimera",
             "--pause-s", "0", *option_flags("chimera", every)],
            tmp_path,
        )  # fmt: skip
        assert len(_bodies(py_sim)) == 2
        assert _bodies(py_sim) == _bodies(rs_sim)


def _waited_for_unloads(server: SimServer, delay_ns: int) -> int:
    """How many unloads the agent waited out: /api/ps asked, and the next generate only after the runner left."""
    requests = list(server.requests)

    def is_unload(r: object) -> bool:
        return getattr(r, "path", "") == "/api/generate" and getattr(r, "body", {}).get("keep_alive") == 0

    # an unload with nothing loaded yet (the first run's) has nothing to wait for
    unloads = [i for i, r in enumerate(requests) if is_unload(r) and any(not is_unload(p) for p in requests[:i])]
    for i in unloads:
        after = requests[i + 1 :]
        following = next((r for r in after if r.path == "/api/generate"), None)
        assert following is not None
        polled = [r for r in after if r.path == "/api/ps" and r.arrival_ns < following.arrival_ns]
        assert polled and following.arrival_ns - requests[i].arrival_ns >= delay_ns
    return len(unloads)


async def test_both_agents_wait_for_the_unload(rust_bin: Path, tmp_path: Path) -> None:
    delay_ms = 200.0

    def sim() -> SimServer:
        config = SimConfig(preload=(MODEL,), tokens=5, decode_tps=2000.0, load_ms=5.0, unload_delay_ms=delay_ms)
        return SimServer(config)

    async with sim() as py_sim, sim() as rs_sim:
        agents = [SingleAgent("baseline", None), SingleAgent("chimera", CHIMERA)]
        await run_single(py_sim.base_url, _workload(), agents, runs=2, pause_s=0, unload_between_runs=True)
        await _rust(
            [str(rust_bin / "chimeraforge-agent"), "--base-url", rs_sim.base_url, "--agents", "baseline,chimera",
             "--runs", "2", "--pause-s", "0", "--unload-between-runs", *_flags("chimera", CHIMERA)],
            tmp_path,
        )  # fmt: skip
        assert _waited_for_unloads(py_sim, int(delay_ms * 1e6)) == 1
        assert _waited_for_unloads(rs_sim, int(delay_ms * 1e6)) == 1
