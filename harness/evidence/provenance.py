"""provenance.json: the environment of a reproduction, captured by machine and fingerprinted.

The originals typed their environment by hand and got it wrong; here every fact comes from its source: NVML
(:mod:`harness.evidence.telemetry`), the Docker engine (:mod:`harness.containers.engine`), the Ollama server
(:func:`harness.engines.ollama.server_facts`, gathered by the orchestrator while the server lives), the host
(``/etc/os-release``, ``/proc/cpuinfo``, ``/proc/meminfo``), git, and sha256 of the spec, lock files and corpus.
Whatever a source cannot tell is ``{"present": false, "reason": ...}`` (:class:`harness.facts.Absent`), never a guess.

The *fingerprint* is sha256 of the canonical JSON of the parts that define the environment (GPU model, driver,
CUDA, memory, power limit; engine and image IDs; Ollama version and model digest; kit commit and dirty flag;
spec, lock and corpus hashes; CPU model, kernel, OS), not of anything that moves between two runs on the same
machine (timestamps, clocks, utilisation, processes, ports). ``fingerprint_keys`` lists the dotted paths it
covers; docs/provenance.md documents every key.

This module collects the facts and builds the document; the document's models live in :mod:`harness.schemas`,
so the report reads provenance.json typed without importing the adapters collected here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness import __version__
from harness.artifacts import ArtifactDir, canonical_json, load_json_doc
from harness.containers import engine as docker_engine
from harness.containers.pins import read_lock
from harness.errors import ArtifactError, BadInputError, DockerError
from harness.evidence.telemetry import Nvml, gpu_facts
from harness.facts import Absent, absent
from harness.protocol.corpus import corpus_sha256
from harness.schemas import (
    PROVENANCE_SCHEMA_VERSION,
    BasePin,
    CorpusHash,
    DockerSection,
    FileHash,
    GitFacts,
    GpuFacts,
    HostFacts,
    ImageRecord,
    Inputs,
    KitFacts,
    OllamaFacts,
    Provenance,
    RunContext,
    ServerSettingsRecord,
    SystemDescription,
)
from harness.settings import OllamaServerSettings, Settings

PROVENANCE_FILE = "provenance.json"
REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK_FILES: dict[str, str] = {
    "requirements_lock": "requirements.lock",
    "requirements_dev_lock": "requirements-dev.lock",
    "cargo_lock": "harness/rust/Cargo.lock",
    "docker_pins": "docker/pins.toml",
    "images_lock": "docker/images.lock.json",
}
"""``inputs.<key>`` → file under the repository root whose sha256 is recorded."""

FINGERPRINT_PATTERNS: tuple[str, ...] = (
    "gpu.present",
    "gpu.driver_version",
    "gpu.cuda_driver_version",
    "gpu.device_count",
    "gpu.devices.*.name",
    "gpu.devices.*.memory_total_bytes",
    "gpu.devices.*.memory_bus_width_bits",
    "gpu.devices.*.max_memory_clock_mhz",
    "gpu.devices.*.enforced_power_limit_mw",
    "docker.present",
    "docker.engine.server_version",
    "docker.engine.api_version",
    "docker.engine.default_runtime",
    "docker.engine.nvidia_runtime",
    "docker.images.*.present",
    "docker.images.*.id",
    "ollama.present",
    "ollama.version",
    "ollama.simulated",
    "ollama.model",
    "ollama.model_digest",
    "ollama.runtime.flash_attention",
    "ollama.runtime.kv_cache_type",
    "ollama.runtime.layers_on_gpu",
    "kit.version",
    "kit.git.commit",
    "kit.git.dirty",
    "inputs.*.sha256",
    "host.cpu_model",
    "host.kernel",
    "host.operating_system",
)
"""What defines an environment, as dotted paths into provenance.json; ``*`` matches every key or list index."""


# ---------------------------------------------------------------------------------------------- fingerprint


def expand_keys(doc: Mapping[str, Any], patterns: Sequence[str] = FINGERPRINT_PATTERNS) -> list[str]:
    """The dotted paths the patterns match in ``doc`` (``*``: every key or index), in pattern order."""
    out: list[str] = []

    def walk(node: Any, parts: list[str], prefix: list[str]) -> None:
        if not parts:
            out.append(".".join(prefix))
            return
        head, rest = parts[0], parts[1:]
        if isinstance(node, Mapping):
            keys = sorted(node) if head == "*" else ([head] if head in node else [])
            for key in keys:
                walk(node[key], rest, [*prefix, str(key)])
        elif isinstance(node, list):
            if head == "*":
                indices: Sequence[int] = range(len(node))
            else:
                indices = [int(head)] if head.isdigit() and int(head) < len(node) else []
            for i in indices:
                walk(node[i], rest, [*prefix, str(i)])

    for pattern in patterns:
        walk(doc, pattern.split("."), [])
    return out


def lookup(doc: Any, dotted: str) -> Any:
    """The value at a dotted path (list indices as numbers); KeyError when it does not exist."""
    node = doc
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(dotted)
    return node


def fingerprint(doc: Mapping[str, Any], patterns: Sequence[str] = FINGERPRINT_PATTERNS) -> tuple[str, list[str]]:
    """``(sha256, keys)``: sha256 of ``canonical_json({key: value})`` over the keys the patterns match in ``doc``.

    ``doc`` is provenance.json as JSON data (the fingerprint fields themselves are never matched). Anyone can
    recompute it from the file and ``fingerprint_keys`` alone.
    """
    keys = expand_keys(doc, patterns)
    body = {key: lookup(doc, key) for key in keys}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest(), keys


# ---------------------------------------------------------------------------------------------- host and kit


@dataclass(frozen=True)
class HostFiles:
    """Where host facts are read from (injectable for tests)."""

    os_release: Path = Path("/etc/os-release")
    cpuinfo: Path = Path("/proc/cpuinfo")
    meminfo: Path = Path("/proc/meminfo")


def _read_text(path: Path) -> str | Absent:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return absent(f"cannot read {path}: {exc.strerror or exc}")


def host_facts(files: HostFiles = HostFiles()) -> HostFacts:
    """Kernel, OS, CPU and memory of the machine running the kit (for a remote engine, see ``docker.engine``)."""
    uname = platform.uname()
    os_release = _read_text(files.os_release)
    operating_system: str | Absent
    if isinstance(os_release, Absent):
        operating_system = os_release
    else:
        fields = dict(_kv(line, "=") for line in os_release.splitlines() if "=" in line)
        name = fields.get("PRETTY_NAME") or " ".join(filter(None, (fields.get("NAME"), fields.get("VERSION"))))
        operating_system = name or absent(f"{files.os_release} has no PRETTY_NAME or NAME")
    cpuinfo = _read_text(files.cpuinfo)
    cpu_model: str | Absent
    cores: int | Absent
    if isinstance(cpuinfo, Absent):
        cpu_model = cores = cpuinfo
    else:
        cpu_model, cores = _parse_cpuinfo(cpuinfo, files.cpuinfo)
    meminfo = _read_text(files.meminfo)
    memory = meminfo if isinstance(meminfo, Absent) else _parse_meminfo(meminfo, files.meminfo)
    return HostFacts(
        kernel=uname.release,
        operating_system=operating_system,
        architecture=uname.machine,
        cpu_model=cpu_model,
        cpu_logical_count=os.cpu_count() or 0,
        cpu_physical_core_count=cores,
        memory_total_bytes=memory,
        python_version=platform.python_version(),
    )


def _kv(line: str, sep: str) -> tuple[str, str]:
    key, _, value = line.partition(sep)
    return key.strip(), value.strip().strip('"')


def _parse_cpuinfo(text: str, where: Path) -> tuple[str | Absent, int | Absent]:
    model: str | None = None
    cores: set[tuple[str, str]] = set()
    physical = core = None
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if physical is not None and core is not None:
                cores.add((physical, core))
            physical = core = None
            continue
        key, value = _kv(line, ":")
        if key in ("model name", "Model", "cpu model") and model is None and value:
            model = value
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
    return (
        model or absent(f"{where} names no CPU model"),
        len(cores) or absent(f"{where} has no physical id / core id lines"),
    )


def _parse_meminfo(text: str, where: Path) -> int | Absent:
    for line in text.splitlines():
        key, value = _kv(line, ":")
        if key == "MemTotal":
            number, _, unit = value.partition(" ")
            if number.isdigit():
                return int(number) * (1024 if unit.strip() == "kB" else 1)
    return absent(f"{where} has no MemTotal")


GitRunner = Callable[[Sequence[str], Path], str]


def run_git(args: Sequence[str], cwd: Path) -> str:
    """``git <args>`` in ``cwd``; stdout, or :class:`OSError` / :class:`subprocess.CalledProcessError`."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30, stdin=subprocess.DEVNULL
    )
    return done.stdout


def git_facts(repo_root: Path, git: GitRunner = run_git) -> GitFacts | Absent:
    """Commit and dirty flag of the kit's checkout; absent with git's reason outside one (an unpacked bundle)."""
    try:
        commit = git(["rev-parse", "--verify", "HEAD"], repo_root).strip()
        tracked = git(["status", "--porcelain", "--untracked-files=no"], repo_root)
        untracked = git(["ls-files", "--others", "--exclude-standard"], repo_root)
    except FileNotFoundError:
        return absent("git is not installed")
    except subprocess.CalledProcessError as exc:
        text = (exc.stderr or exc.stdout or "").strip().splitlines()
        return absent(f"{repo_root} is not a git checkout ({text[0] if text else f'git exit {exc.returncode}'})")
    except (OSError, subprocess.SubprocessError) as exc:
        return absent(f"git failed: {exc}")
    return GitFacts(
        commit=commit,
        dirty=bool(tracked.strip()),
        untracked_files=len([line for line in untracked.splitlines() if line.strip()]),
    )


def _file_hash(path: Path, label: str) -> FileHash | Absent:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return absent(f"cannot read {label}: {exc.strerror or exc}")
    return FileHash(path=label, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def _corpus_hash(corpus_dir: Path) -> CorpusHash | Absent:
    if not corpus_dir.is_dir():
        return absent(f"no corpus folder at {corpus_dir}")
    try:
        files = {p.relative_to(corpus_dir).as_posix(): p.read_bytes() for p in corpus_dir.rglob("*") if p.is_file()}
    except OSError as exc:
        return absent(f"cannot read the corpus under {corpus_dir}: {exc.strerror or exc}")
    if not files:
        return absent(f"the corpus folder {corpus_dir} is empty")
    return CorpusHash(path=str(corpus_dir), sha256=corpus_sha256(files), file_count=len(files))


def input_hashes(*, repo_root: Path, spec_path: Path | None, spec_bytes: bytes | None, corpus_dir: Path) -> Inputs:
    """sha256 of the spec (its bytes as the sweep read them, when given), the lock files and the corpus."""
    spec: FileHash | Absent
    if spec_bytes is not None:
        label = str(spec_path) if spec_path is not None else "spec.toml"
        spec = FileHash(path=label, sha256=hashlib.sha256(spec_bytes).hexdigest(), size_bytes=len(spec_bytes))
    elif spec_path is not None:
        spec = _file_hash(spec_path, str(spec_path))
    else:
        spec = absent("no spec was given (not a reproduction)")
    locks = {key: _file_hash(repo_root / rel, rel) for key, rel in LOCK_FILES.items()}
    return Inputs(spec=spec, corpus=_corpus_hash(corpus_dir), **locks)


# ---------------------------------------------------------------------------------------------- docker


def _image_record(client: docker_engine.Client, reference: str) -> ImageRecord | Absent:
    try:
        facts = docker_engine.image_facts(client, reference)
    except DockerError as exc:
        return absent(str(exc))
    if facts.repo_digests:
        reason = None
    elif facts.labels.get("io.chimeraforge.kit") == "1":
        reason = "built locally by the kit: no registry digest exists; the content-addressed image ID identifies it"
    else:
        reason = "the engine knows no registry digest for it (built or loaded locally)"
    return ImageRecord(
        reference=reference,
        id=facts.id,
        repo_tags=list(facts.repo_tags),
        repo_digests=list(facts.repo_digests),
        pinned=bool(facts.repo_digests),
        reason=reason,
        labels=dict(facts.labels),
    )


def _base_pins(lock_path: Path) -> dict[str, BasePin] | Absent:
    try:
        lock = read_lock(lock_path)
    except BadInputError as exc:
        return absent(str(exc))
    if lock is None:
        return absent(f"{lock_path.name} was never written (run `invoke images.lock`)")
    return {
        name: BasePin(reference=img.reference, digest=img.digest, pinned=img.digest is not None, reason=img.reason)
        for name, img in sorted(lock.images.items())
    }


def docker_facts(
    client: docker_engine.Client | Absent, images: Mapping[str, str], *, lock_path: Path | None = None
) -> DockerSection | Absent:
    """The engine, every image the run used (``images``: role → reference or ID) and the base image pins."""
    if isinstance(client, Absent):
        return client
    try:
        engine = docker_engine.engine_facts(client)
    except DockerError as exc:
        return absent(str(exc))
    return DockerSection(
        engine=engine,
        images={role: _image_record(client, ref) for role, ref in sorted(images.items())},
        base_pins=_base_pins(lock_path or REPO_ROOT / LOCK_FILES["images_lock"]),
    )


# ---------------------------------------------------------------------------------------------- collect


def _gib(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"


def _system(
    gpu: GpuFacts | Absent,
    docker: DockerSection | Absent,
    ollama: OllamaFacts | Absent,
    host: HostFacts,
) -> SystemDescription:
    if isinstance(gpu, Absent):
        model: str | Absent = gpu
        memory: str | Absent = gpu
        count = 0
    else:
        names = sorted({d.name for d in gpu.devices if isinstance(d.name, str)})
        model = " + ".join(names) if names else absent("NVML gave no device name")
        totals = [d.memory_total_bytes for d in gpu.devices if isinstance(d.memory_total_bytes, int)]
        memory = _gib(totals[0]) if totals else absent("NVML gave no memory size")
        count = gpu.device_count
    if isinstance(ollama, Absent):
        framework: str | Absent = ollama
    else:
        framework = f"Ollama {ollama.version}" + (" (SIMULATED)" if ollama.simulated else "")
    stack_parts = [f"chimeraforge-kit {__version__}", f"Python {host.python_version}"]
    if not isinstance(gpu, Absent):
        for label, value in (("NVIDIA driver", gpu.driver_version), ("CUDA", gpu.cuda_driver_version)):
            if isinstance(value, str):
                stack_parts.append(f"{label} {value}")
    if not isinstance(docker, Absent):
        stack_parts.append(f"Docker {docker.engine.server_version}")
    return SystemDescription(
        accelerator_model_name=model,
        accelerator_memory_capacity=memory,
        accelerators_per_node=count,
        host_processor_model_name=host.cpu_model,
        host_processor_core_count=host.cpu_physical_core_count,
        host_memory_capacity=(
            host.memory_total_bytes if isinstance(host.memory_total_bytes, Absent) else _gib(host.memory_total_bytes)
        ),
        operating_system=host.operating_system,
        framework=framework,
        other_software_stack=", ".join(stack_parts),
    )


def _server_record(server: OllamaServerSettings | None) -> ServerSettingsRecord | Absent:
    if server is None:
        return absent("no server settings were given")
    return ServerSettingsRecord(
        num_parallel=server.num_parallel,
        keep_alive=server.keep_alive,
        context_length=server.context_length,
        flash_attention=server.flash_attention,
        models=str(server.models) if server.models is not None else None,
        gpus=list(server.gpus),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def collect(
    *,
    nvml: Nvml | Absent,
    docker: docker_engine.Client | Absent,
    images: Mapping[str, str],
    ollama: OllamaFacts | Absent,
    settings: Settings,
    command: Sequence[str],
    server_settings: OllamaServerSettings | None = None,
    spec_path: Path | None = None,
    spec_bytes: bytes | None = None,
    repo_root: Path = REPO_ROOT,
    corpus_dir: Path | None = None,
    host_files: HostFiles = HostFiles(),
    git: GitRunner = run_git,
    clock: Callable[[], dt.datetime] = _now,
) -> Provenance:
    """Capture the whole environment once, at the start of a reproduction, and fingerprint it.

    Every source is passed in: ``nvml`` from :func:`harness.evidence.telemetry.load_nvml`, ``docker`` a client (or
    :class:`Absent` for the local executor), ``images`` role → reference or ID of every image the runs use,
    ``ollama`` from :func:`harness.engines.ollama.server_facts` (or :class:`Absent` with the reason), ``settings`` and
    ``command`` as the edge built them. Never raises for a missing source: it is recorded as absent.
    """
    gpu = gpu_facts(nvml)
    docker_section = docker_facts(docker, images, lock_path=repo_root / LOCK_FILES["images_lock"])
    host = host_facts(host_files)
    kit = KitFacts(version=__version__, git=git_facts(repo_root, git))
    inputs = input_hashes(
        repo_root=repo_root,
        spec_path=spec_path,
        spec_bytes=spec_bytes,
        corpus_dir=corpus_dir if corpus_dir is not None else settings.experiments_dir / "corpus",
    )
    run = RunContext(
        command=list(command),
        settings=settings.model_dump(mode="json"),
        server_settings=_server_record(server_settings),
    )
    draft: dict[str, Any] = {
        "schema_version": PROVENANCE_SCHEMA_VERSION,
        "captured_at": clock().isoformat(timespec="seconds"),
        "simulated": None if isinstance(ollama, Absent) else ollama.simulated,
        "fingerprint_sha256": "",
        "fingerprint_keys": [],
        "system": _system(gpu, docker_section, ollama, host),
        "gpu": gpu,
        "docker": docker_section,
        "ollama": ollama,
        "host": host,
        "kit": kit,
        "inputs": inputs,
        "run": run,
    }
    provenance = Provenance(**draft)
    digest, keys = fingerprint(provenance.model_dump(mode="json"))
    return provenance.model_copy(update={"fingerprint_sha256": digest, "fingerprint_keys": keys})


def write_provenance(out: ArtifactDir, provenance: Provenance) -> Path:
    """``provenance.json`` in the artifact folder (canonical JSON, like every artifact)."""
    return out.write_json(PROVENANCE_FILE, provenance)


def record_provenance(out: ArtifactDir, provenance: Provenance) -> Path:
    """Write ``provenance.json`` for a new sweep; a resumed sweep must run in the same environment.

    Resuming in another environment (another GPU, driver, image, model digest, kit commit or input hash: the
    fingerprint's keys) would mix two environments in one sweep, so it is refused with the keys that differ.
    """
    path = out.root / PROVENANCE_FILE
    if not path.exists():
        return write_provenance(out, provenance)
    before = load_provenance(path)
    if before.fingerprint_sha256 == provenance.fingerprint_sha256:
        return path
    old, new = before.model_dump(mode="json"), provenance.model_dump(mode="json")
    keys = sorted(set(before.fingerprint_keys) | set(provenance.fingerprint_keys))
    changed = [k for k in keys if lookup(old, k) != lookup(new, k)]
    raise BadInputError(
        f"{out.root} was started in another environment ({', '.join(changed[:6]) or 'fingerprint keys'} "
        "changed since): resuming would mix two environments in one sweep",
        hint="pass a new --out folder, or resume where the sweep was started",
    )


def load_provenance(path: Path) -> Provenance:
    """Read a provenance.json back (unknown schema versions are refused by ``load_json_doc``)."""
    body = load_json_doc(path)
    try:
        return Provenance.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ArtifactError(f"{path}: {where}: {first['msg']}", hint="was it written by this kit version?") from None
