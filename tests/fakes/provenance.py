"""A provenance document as ``collect()`` builds it, from fakes only (NVML, host files, git, clock).

Readers of provenance.json (the report) are tested against what the kit really writes, not a hand-made dict
that happens to carry the keys they look for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from harness.evidence.provenance import HostFiles, collect
from harness.evidence.telemetry import Nvml, load_nvml
from harness.facts import absent
from harness.schemas import Provenance
from harness.settings import Settings
from tests.fakes.nvml import FakeGpu, FakeNvml

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CAPTURED_AT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _git(args: Sequence[str], cwd: Path) -> str:
    """A clean checkout at :data:`COMMIT` (no subprocess, no repository needed)."""
    return COMMIT + "\n" if args[0] == "rev-parse" else ""


def collected_provenance(work: Path, gpus: list[FakeGpu] | None = None) -> Provenance:
    """``collect()`` over a fake NVML (default: one H100 SXM, 3352.3 GB/s), no Docker, no Ollama server."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "os-release").write_text('PRETTY_NAME="Ubuntu 22.04.4 LTS"\n')
    (work / "cpuinfo").write_text("model name\t: AMD Ryzen 9 7950X\nphysical id\t: 0\ncore id\t: 0\n\n")
    (work / "meminfo").write_text("MemTotal:       65536000 kB\n")
    nvml = load_nvml(FakeNvml(gpus))
    try:
        return collect(
            nvml=nvml,
            docker=absent("local executor: no Docker"),
            images={},
            ollama=absent("the server was not reached"),
            settings=Settings(experiments_dir=work / "experiments", artifacts_dir=work / "artifacts"),
            command=["harness", "reproduce", "--report", "tr115"],
            repo_root=work,
            host_files=HostFiles(work / "os-release", work / "cpuinfo", work / "meminfo"),
            git=_git,
            clock=lambda: CAPTURED_AT,
        )
    finally:
        if isinstance(nvml, Nvml):
            nvml.shutdown()
