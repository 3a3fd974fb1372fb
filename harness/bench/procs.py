"""The processes a measurement runs on this host: simulated servers and agent processes.

Servers run as ``python -m harness.sim`` subprocesses, never in the bench's own interpreter, so a Python
agent and its server do not share a GIL; their ground truth is read back over ``/sim/*``. Agents run as the
same command lines the containers run (``python -m harness agent …`` or the Rust binaries), records on stdout.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.bench.fidelity import ServerRequest, parse_truth
from harness.errors import BenchError
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord, parse_record

MODEL = "gemma3:latest"
_READY_PREFIX = "chimeraforge-sim (simulated Ollama) listening on "

AnyRecord = CallRecord | AgentRunRecord | MultiRunRecord


@dataclass(frozen=True)
class SimSettings:
    """One benchmark server: real-time pacing (time scale 1), a forced answer length, no load or prefill wait."""

    decode_tps: float
    tokens: int
    num_parallel: int = 1
    seed: int = 1234

    def argv(self, python: str) -> list[str]:
        return [
            python, "-m", "harness.sim", "--host", "127.0.0.1", "--port", "0", "--seed", str(self.seed),
            "--time-scale", "1", "--decode-tps", repr(self.decode_tps), "--tokens", str(self.tokens),
            "--load-ms", "0", "--warm-load-ms", "0", "--prompt-tps", "1e9", "--keep-alive", "-1",
            "--num-parallel", str(self.num_parallel), "--preload", MODEL,
        ]  # fmt: skip


@dataclass
class SimProcess:
    """``with SimProcess(settings, python=…, cwd=…) as sim: sim.url``; SIGTERM on exit, SIGKILL if it lingers."""

    settings: SimSettings
    python: str
    cwd: Path
    start_timeout_s: float = 30.0
    url: str = ""
    _proc: subprocess.Popen[str] | None = field(default=None, repr=False)

    def __enter__(self) -> SimProcess:
        self._proc = subprocess.Popen(
            self.settings.argv(self.python),
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = _read_line(self._proc, self.start_timeout_s)
        if not line.startswith(_READY_PREFIX):
            self.__exit__(None, None, None)
            raise BenchError(f"the simulator did not start: {line.strip() or 'no output'}", hint="run it by hand")
        self.url = line.removeprefix(_READY_PREFIX).strip()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def truth(self) -> tuple[list[ServerRequest], dict[int, list[int]]]:
        """Every request received since the last reset, and the emission times of each."""
        return parse_truth(self._get("/sim/requests"), self._get("/sim/emissions"))

    def reset(self) -> None:
        self._call("POST", "/sim/reset")

    def _get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path)

    def _call(self, method: str, path: str) -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                body = json.load(resp)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise BenchError(f"cannot read {path} from the simulator at {self.url}: {exc}") from None
        return body if isinstance(body, dict) else {}


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sel.select(timeout=0.1):
                return proc.stdout.readline()
            if proc.poll() is not None:
                return proc.stderr.read() if proc.stderr else ""
    return ""


@dataclass(frozen=True)
class ProcessRun:
    """An agent process: its records (stdout, JSON Lines), exit code, stderr tail and wall time."""

    records: list[AnyRecord]
    exit_code: int
    stderr_tail: str
    wall_s: float


def run_agent(argv: Sequence[str], *, cwd: Path, timeout_s: float = 300.0) -> ProcessRun:
    """Run one agent command line to completion and parse what it wrote."""
    start = time.monotonic()
    try:
        done = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise BenchError(f"cannot run {argv[0]}: not found", hint="build the Rust agents (cargo build)") from None
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(argv[:4])} … ran longer than {timeout_s:.0f} s") from None
    wall = time.monotonic() - start
    records = [parse_record(line, where=f"{argv[0]} stdout") for line in done.stdout.splitlines() if line.strip()]
    return ProcessRun(records, done.returncode, done.stderr.strip()[-400:], wall)
