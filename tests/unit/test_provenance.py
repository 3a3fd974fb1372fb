"""provenance.json: every section from injected sources, absences with reasons, and the fingerprint's coverage."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.artifacts import ArtifactDir, canonical_json
from harness.engines.ollama import ModelDetails, OllamaFacts, server_facts
from harness.evidence.provenance import (
    FINGERPRINT_PATTERNS,
    HostFiles,
    Provenance,
    collect,
    expand_keys,
    fingerprint,
    git_facts,
    host_facts,
    load_provenance,
    lookup,
    write_provenance,
)
from harness.evidence.telemetry import Nvml, load_nvml
from harness.facts import Absent
from harness.protocol.corpus import corpus_sha256
from harness.settings import OllamaServerSettings, Settings
from harness.sim import SimConfig, SimServer
from harness.sim.catalog import synthetic_digest
from tests.fakes.nvml import NVML_ERROR_LIBRARY_NOT_FOUND, NVML_ERROR_NOT_SUPPORTED, FakeGpu, FakeNvml

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

OS_RELEASE = 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
CPUINFO = "".join(
    f"processor\t: {i}\nmodel name\t: AMD Ryzen 9 7950X 16-Core Processor\nphysical id\t: 0\ncore id\t\t: {i // 2}\n\n"
    for i in range(8)
)
MEMINFO = "MemTotal:       65536000 kB\nMemFree:        1000 kB\n"


@pytest.fixture
def host_files(tmp_path: Path) -> HostFiles:
    (tmp_path / "os-release").write_text(OS_RELEASE)
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    (tmp_path / "meminfo").write_text(MEMINFO)
    return HostFiles(tmp_path / "os-release", tmp_path / "cpuinfo", tmp_path / "meminfo")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A minimal kit checkout: the lock files, a corpus, and a git history with one commit."""
    root = tmp_path / "kit"
    for rel, text in {
        "requirements.lock": "pydantic==2.7\n",
        "requirements-dev.lock": "pytest==8.2\n",
        "harness/rust/Cargo.lock": "version = 3\n",
        "docker/pins.toml": "schema_version = 1\n",
        "docker/images.lock.json": json.dumps(
            {
                "schema_version": 1,
                "pins_sha256": "x",
                "images": {"ollama": {"reference": "ollama/ollama:0.12.10", "digest": None, "reason": "offline"}},
            }
        ),
        "experiments/corpus/a.csv": "x,y\n1,2\n",
        "experiments/corpus/b/c.md": "# c\n",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*git, "-C", str(root), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(root), "commit", "-qm", "init"], check=True)
    return root


def ollama_facts(**overrides: Any) -> OllamaFacts:
    values: dict[str, Any] = {
        "base_url": "http://ollama:11434",
        "version": "0.12.10",
        "simulated": False,
        "model": "gemma3:latest",
        "model_digest": "a2af6cc3eb7fa8be8504abaf9b04e88f17a119ec3f04a3addf55f92841195f5a",
        "model_digest_synthetic": False,
        "model_size_bytes": 3_338_801_804,
        "model_details": ModelDetails(family="gemma3", parameter_size="4.3B", quantization_level="Q4_K_M"),
        "model_parameter_count": 4_300_079_472,
        "model_context_length": 131_072,
        "model_capabilities": ["completion", "vision"],
    }
    values.update(overrides)
    return OllamaFacts(**values)


def make(
    repo: Path,
    host_files: HostFiles,
    *,
    module: FakeNvml | None = None,
    ollama: OllamaFacts | Absent | None = None,
    spec_bytes: bytes = b"id = 'tr114'\n",
    command: Sequence[str] = ("harness", "reproduce", "--report", "tr114"),
    now: dt.datetime = NOW,
) -> Provenance:
    nvml = load_nvml(module if module is not None else FakeNvml())
    try:
        return collect(
            nvml=nvml,
            docker=Absent(reason="local executor: no Docker"),
            images={},
            ollama=ollama if ollama is not None else ollama_facts(),
            settings=Settings(experiments_dir=repo / "experiments"),
            command=list(command),
            server_settings=OllamaServerSettings(),
            spec_path=Path("experiments/tr114.toml"),
            spec_bytes=spec_bytes,
            repo_root=repo,
            host_files=host_files,
            clock=lambda: now,
        )
    finally:
        if isinstance(nvml, Nvml):
            nvml.shutdown()


# ---------------------------------------------------------------------------------------------- sections


def test_collect_every_section(repo: Path, host_files: HostFiles) -> None:
    prov = make(repo, host_files)
    doc = prov.model_dump(mode="json")
    assert doc["schema_version"] == 1 and doc["captured_at"] == "2026-01-02T03:04:05+00:00"
    assert doc["simulated"] is False
    assert doc["system"] == {
        "accelerator_model_name": "NVIDIA H100 80GB HBM3",
        "accelerator_memory_capacity": "79.6 GiB",
        "accelerators_per_node": 1,
        "host_processor_model_name": "AMD Ryzen 9 7950X 16-Core Processor",
        "host_processor_core_count": 4,
        "host_memory_capacity": "62.5 GiB",
        "operating_system": "Ubuntu 22.04.4 LTS",
        "framework": "Ollama 0.12.10",
        "other_software_stack": doc["system"]["other_software_stack"],
    }
    assert "NVIDIA driver 550.54.15" in doc["system"]["other_software_stack"]
    assert "CUDA 12.4" in doc["system"]["other_software_stack"]
    assert doc["gpu"]["gpu_name"] == "NVIDIA H100 80GB HBM3" and doc["gpu"]["memory_bandwidth_gbps"] == 3352.3
    assert doc["docker"] == {"present": False, "reason": "local executor: no Docker"}
    assert doc["ollama"]["model_digest"].startswith("a2af6cc3")
    host = doc["host"]
    assert (host["operating_system"], host["cpu_model"], host["cpu_physical_core_count"]) == (
        "Ubuntu 22.04.4 LTS",
        "AMD Ryzen 9 7950X 16-Core Processor",
        4,
    )
    assert host["memory_total_bytes"] == 65_536_000 * 1024 and host["kernel"]
    git = doc["kit"]["git"]
    assert len(git["commit"]) == 40 and git["dirty"] is False and git["untracked_files"] == 0
    inputs = doc["inputs"]
    assert inputs["spec"] == {
        "path": "experiments/tr114.toml",
        "sha256": hashlib.sha256(b"id = 'tr114'\n").hexdigest(),
        "size_bytes": 13,
    }
    assert inputs["requirements_lock"]["sha256"] == hashlib.sha256(b"pydantic==2.7\n").hexdigest()
    assert inputs["cargo_lock"]["path"] == "harness/rust/Cargo.lock"
    files = {"a.csv": b"x,y\n1,2\n", "b/c.md": b"# c\n"}
    assert inputs["corpus"]["sha256"] == corpus_sha256(files) and inputs["corpus"]["file_count"] == 2
    assert doc["run"]["command"] == ["harness", "reproduce", "--report", "tr114"]
    assert doc["run"]["settings"]["backend"] == "auto"
    assert doc["run"]["server_settings"] == {
        "num_parallel": 1,
        "keep_alive": "5m",
        "context_length": 4096,
        "flash_attention": None,
        "models": None,
        "gpus": ["0"],
    }


def test_absent_parts_are_recorded_with_reasons(tmp_path: Path, host_files: HostFiles) -> None:
    empty = tmp_path / "not-a-checkout"
    empty.mkdir()
    prov = make(
        empty,
        HostFiles(tmp_path / "no-os-release", host_files.cpuinfo, tmp_path / "no-meminfo"),
        module=FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND),
        ollama=Absent(reason="cannot reach Ollama at http://127.0.0.1:1"),
    )
    doc = prov.model_dump(mode="json")
    assert doc["gpu"]["present"] is False and "libnvidia-ml.so.1" in doc["gpu"]["reason"]
    assert doc["system"]["accelerators_per_node"] == 0
    assert doc["system"]["accelerator_model_name"] == doc["gpu"]
    assert doc["ollama"] == {"present": False, "reason": "cannot reach Ollama at http://127.0.0.1:1"}
    assert doc["simulated"] is None
    assert doc["kit"]["git"]["present"] is False and "not a git checkout" in doc["kit"]["git"]["reason"]
    assert doc["inputs"]["requirements_lock"]["present"] is False
    assert doc["inputs"]["corpus"]["present"] is False
    assert doc["host"]["operating_system"]["present"] is False
    assert doc["host"]["memory_total_bytes"]["present"] is False
    assert "gpu_name" not in json.dumps(doc)  # the report then says "unknown GPU" instead of guessing one


def test_git_facts_dirty_and_untracked(repo: Path) -> None:
    (repo / "requirements.lock").write_text("pydantic==2.8\n")
    (repo / "scratch.txt").write_text("x")
    git = git_facts(repo)
    assert not isinstance(git, Absent) and git.dirty is True and git.untracked_files == 1


def test_git_missing_is_absent(repo: Path) -> None:
    def no_git(args: Sequence[str], cwd: Path) -> str:
        raise FileNotFoundError("git")

    assert git_facts(repo, no_git) == Absent(reason="git is not installed")


def test_host_facts_of_this_machine_are_complete() -> None:
    host = host_facts()
    assert host.kernel and host.architecture and host.cpu_logical_count >= 1
    assert isinstance(host.memory_total_bytes, int) and host.memory_total_bytes > 0


def test_write_and_load_round_trip(repo: Path, host_files: HostFiles, tmp_path: Path) -> None:
    module = FakeNvml([FakeGpu(errors={"nvmlDeviceGetMemoryBusWidth": NVML_ERROR_NOT_SUPPORTED})])
    prov = make(repo, host_files, module=module)
    out = ArtifactDir(tmp_path / "artifact")
    path = write_provenance(out, prov)
    text = path.read_text()
    assert path.name == "provenance.json" and text == canonical_json(json.loads(text)) + "\n"
    again = load_provenance(path)
    assert again == prov
    assert isinstance(again.gpu, type(prov.gpu)) and isinstance(again.ollama, OllamaFacts)
    assert fingerprint(json.loads(text))[0] == prov.fingerprint_sha256


def test_report_reads_gpu_name_and_bandwidth_from_the_typed_document(
    tmp_path: Path, repo: Path, host_files: HostFiles
) -> None:
    from harness.analysis.report import _gpu_facts, read_provenance

    out = ArtifactDir(tmp_path / "artifact")
    write_provenance(out, make(repo, host_files))
    read = read_provenance(out.root)
    assert read.warning is None and read.model is not None
    assert _gpu_facts(read.model) == ("NVIDIA H100 80GB HBM3", 3352.3)
    assert _gpu_facts(make(repo, host_files, module=FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND))) == (None, None)


# ---------------------------------------------------------------------------------------------- fingerprint


def test_fingerprint_stable_for_same_inputs(repo: Path, host_files: HostFiles) -> None:
    a = make(repo, host_files)
    b = make(repo, host_files, now=NOW + dt.timedelta(hours=5))
    assert a.captured_at != b.captured_at
    assert a.fingerprint_sha256 == b.fingerprint_sha256 and len(a.fingerprint_sha256) == 64


def test_fingerprint_ignores_moving_state(repo: Path, host_files: HostFiles) -> None:
    base = make(repo, host_files)
    busy = FakeGpu(
        sm_clock_mhz=1980,
        memory_used=40 << 30,
        clock_event_reasons=0x4,
        compute_processes=[(1234, 8 << 30)],
        temperature_c=80,
    )
    moved = make(
        repo,
        host_files,
        module=FakeNvml([busy]),
        ollama=ollama_facts(base_url="http://127.0.0.1:49152"),
        command=["harness", "reproduce", "--report", "tr114", "--out", "elsewhere"],
    )
    assert moved.model_dump()["gpu"] != base.model_dump()["gpu"]
    assert moved.fingerprint_sha256 == base.fingerprint_sha256


@pytest.mark.parametrize(
    ("what", "kwargs"),
    [
        ("driver", {"module": FakeNvml(driver_version="555.42.02")}),
        ("cuda", {"module": FakeNvml(cuda_driver_version=12050)}),
        ("gpu model", {"module": FakeNvml([FakeGpu(name="NVIDIA H100 PCIe", max_memory_clock_mhz=1593)])}),
        ("power limit", {"module": FakeNvml([FakeGpu(enforced_power_limit_mw=350_000)])}),
        ("model digest", {"ollama": ollama_facts(model_digest="0" * 64)}),
        ("ollama version", {"ollama": ollama_facts(version="0.12.11")}),
        ("simulated", {"ollama": ollama_facts(simulated=True, model_digest_synthetic=True)}),
        ("spec", {"spec_bytes": b"id = 'tr114'\n# edited\n"}),
    ],
)
def test_fingerprint_changes_with_what_defines_the_environment(
    repo: Path, host_files: HostFiles, what: str, kwargs: dict[str, Any]
) -> None:
    assert make(repo, host_files, **kwargs).fingerprint_sha256 != make(repo, host_files).fingerprint_sha256, what


def test_fingerprint_changes_with_kit_commit_and_lock_files(repo: Path, host_files: HostFiles) -> None:
    before = make(repo, host_files)
    (repo / "requirements.lock").write_text("pydantic==2.8\n")
    dirty = make(repo, host_files)
    assert dirty.kit.git != before.kit.git and dirty.fingerprint_sha256 != before.fingerprint_sha256
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false",
         "-C", str(repo), "commit", "-qam", "bump"],
        check=True,
    )  # fmt: skip
    committed = make(repo, host_files)
    assert len({before.fingerprint_sha256, dirty.fingerprint_sha256, committed.fingerprint_sha256}) == 3


def test_fingerprint_keys_and_recipe(repo: Path, host_files: HostFiles) -> None:
    prov = make(repo, host_files, module=FakeNvml([FakeGpu(), FakeGpu(name="NVIDIA GeForce RTX 4080")]))
    doc = prov.model_dump(mode="json")
    keys = prov.fingerprint_keys
    assert "gpu.devices.1.name" in keys and "ollama.model_digest" in keys and "inputs.corpus.sha256" in keys
    assert not any(k.split(".")[-1] in ("sm_clock_mhz", "captured_at", "processes", "uuid") for k in keys)
    assert not any(k.startswith(("run.", "system.", "fingerprint")) for k in keys)
    recipe = {k: lookup(doc, k) for k in keys}
    assert prov.fingerprint_sha256 == hashlib.sha256(canonical_json(recipe).encode()).hexdigest()


def test_expand_keys_wildcards_and_missing_paths() -> None:
    doc = {"a": {"x": {"id": 1}, "y": {"present": False, "reason": "gone"}}, "l": [{"n": 1}, {"n": 2}]}
    assert expand_keys(doc, ["a.*.id", "l.*.n", "a.z.id", "missing"]) == ["a.x.id", "l.0.n", "l.1.n"]
    with pytest.raises(KeyError):
        lookup(doc, "a.y.id")
    assert all("." in p for p in FINGERPRINT_PATTERNS)


# ---------------------------------------------------------------------------------------------- ollama facts


async def test_server_facts_of_the_simulator_say_simulated() -> None:
    async with SimServer(SimConfig(preload=("gemma3:latest",), seed=7, time_scale=0.01)) as sim:
        facts = await server_facts(sim.base_url, "gemma3")
        missing = await server_facts(sim.base_url, "llama3.1:8b-instruct-q4_0")
    assert facts.simulated and facts.model_digest_synthetic and facts.version == "0.12.10"
    assert (facts.simulation_seed, facts.simulation_time_scale) == (7, 0.01)
    assert facts.model_digest == synthetic_digest("gemma3:latest")
    assert facts.model_size_bytes == 3_338_801_804 and facts.model_parameter_count == 4_300_079_472
    assert isinstance(facts.model_details, ModelDetails) and facts.model_details.quantization_level == "Q4_K_M"
    assert isinstance(missing.model_digest, Absent) and "not in /api/tags" in missing.model_digest.reason
    assert isinstance(missing.model_parameter_count, Absent) and "404" in missing.model_parameter_count.reason
    again = OllamaFacts.model_validate_json(missing.model_dump_json())
    assert again == missing and isinstance(again.model_details, Absent)


async def test_server_facts_unreachable_raises_ollama_error() -> None:
    from harness.errors import OllamaError

    with pytest.raises(OllamaError, match="cannot reach Ollama"):
        await server_facts("http://127.0.0.1:9", "gemma3", timeout_s=2.0)


def test_simulated_provenance_says_so(repo: Path, host_files: HostFiles) -> None:
    facts = ollama_facts(simulated=True, model_digest_synthetic=True, model_digest=synthetic_digest("gemma3:latest"))
    prov = make(repo, host_files, ollama=facts)
    assert prov.simulated is True and prov.system.framework == "Ollama 0.12.10 (SIMULATED)"
