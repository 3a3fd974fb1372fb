"""The serialized documents' versions and models, and the one JSON form the kit hashes.

Writers and readers of a document import its version and model from here, so a reader in another layer
(analysis validating provenance.json, verify checking a report's verdicts) gets the typed document without
importing the writer or the adapters (NVML, Docker, Ollama) the writer asks. Here so far: provenance.json with
the facts it embeds, and verdicts.json; sweep.json and run.json are still modelled in :mod:`harness.artifacts`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.facts import Absent, absent

RECORD_SCHEMA_VERSION = 1
ARTIFACT_SCHEMA_VERSION = 1
REPORT_SCHEMA_VERSION = 1
COMPARISON_SCHEMA_VERSION = 1
VERDICTS_SCHEMA_VERSION = 2
"""2: two judging regimes named in every verdict, identity and bands (1 had one rule for both)."""
PROVENANCE_SCHEMA_VERSION = 1


def canonical_json(body: Any) -> str:
    """Sorted keys, no insignificant white space: the form every hash of the kit is taken over."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------------------------------------------ verdicts.json

Regime = Literal["recomputation", "re-measurement"]
RECOMPUTATION_VERDICTS = ("matches", "differs", "not_in_the_data")
REMEASUREMENT_VERDICTS = ("reproduced", "not_reproduced", "inconclusive", "not_comparable")
REHEARSAL_PREFIX = "rehearsal_"
"""A run against the simulator keeps its judgement, but the verdict itself says so: ``rehearsal_inconclusive``."""
Verdict = Literal[
    "matches",
    "differs",
    "not_in_the_data",
    "reproduced",
    "not_reproduced",
    "inconclusive",
    "not_comparable",
    "rehearsal_reproduced",
    "rehearsal_not_reproduced",
    "rehearsal_inconclusive",
    "rehearsal_not_comparable",
]


class ClaimVerdict(BaseModel):
    """One claim judged: what was published, what the data gives, the rule that compared them, and why.

    ``published_*`` describe the claim (value as printed, its statistic and identity, its source); ``measured*``
    what the data gives for the same statistic and identity; ``band_low``/``band_high`` the equality (recomputation:
    half a unit of the printed last digit) or equivalence band (re-measurement: the spec's tolerance).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim_id: str
    statement: str
    regime: Regime
    rehearsal: bool
    metric: str
    statistic: str
    over: str
    where: dict[str, str]
    unit: str
    source: str
    comparability: str
    published: float
    published_text: str
    published_identity: str
    measured: float | None
    measured_identity: str
    n: int
    n_runs: int
    runs_per_group_min: int | None
    ci_low: float | None
    ci_high: float | None
    ci_level: float
    ci_method: str
    difference: float | None
    band_low: float | None
    band_high: float | None
    tolerance_why: str
    verdict: Verdict
    reason: str


# ---------------------------------------------------------------------------------------------- provenance.json


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# GPU facts: harness.evidence.telemetry.gpu_facts reads them from NVML


class GpuProcess(_Frozen):
    """Another process holding the GPU; ``used_memory_bytes`` None where NVML cannot tell (WDDM, containers)."""

    pid: int
    kind: Literal["compute", "graphics"]
    used_memory_bytes: int | None


class GpuDevice(_Frozen):
    """One device: what it is, how it is configured, and its state when it was read."""

    index: int
    name: str | Absent
    uuid: str | Absent
    compute_capability: str | Absent
    memory_total_bytes: int | Absent
    memory_used_bytes: int | Absent
    memory_free_bytes: int | Absent
    memory_bus_width_bits: int | Absent
    max_memory_clock_mhz: int | Absent
    max_sm_clock_mhz: int | Absent
    memory_bandwidth_gbps: float | Absent
    enforced_power_limit_mw: int | Absent
    default_power_limit_mw: int | Absent
    persistence_mode: bool | Absent
    sm_clock_mhz: int | Absent
    memory_clock_mhz: int | Absent
    graphics_clock_mhz: int | Absent
    clock_event_reasons_mask: int | Absent
    clock_event_reasons: list[str] | Absent
    processes: list[GpuProcess] | Absent


class GpuFacts(_Frozen):
    """Every NVIDIA device NVML sees, with the system-wide driver facts.

    ``gpu_name`` and ``memory_bandwidth_gbps`` repeat device 0's values, so a reader (the report's hardware-bound
    verdicts and roofline) takes them from here without choosing a device.
    """

    present: Literal[True] = True
    driver_version: str | Absent
    cuda_driver_version: str | Absent
    nvml_version: str | Absent
    device_count: int
    gpu_name: str | Absent
    memory_bandwidth_gbps: float | Absent
    devices: list[GpuDevice]


# The Docker engine: harness.containers.engine.engine_facts reads it


@dataclass(frozen=True)
class EngineFacts:
    """What provenance and ``doctor`` need to know about the engine (from ``docker version`` and ``docker info``)."""

    server_version: str
    api_version: str
    operating_system: str
    kernel_version: str
    architecture: str
    runtimes: tuple[str, ...]
    default_runtime: str
    nvidia_runtime: bool
    gpu_visible: bool
    root_dir: str
    storage_driver: str
    cgroup_version: str | None
    cpu_count: int
    memory_total_bytes: int


# The Ollama server: harness.engines.ollama.server_facts and harness.engines.ollama_log.runtime_facts


class LoadedModel(BaseModel):
    """One ``/api/ps`` entry, the fields that tell where and how big the runner is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size_bytes: int
    size_vram_bytes: int
    context_length: int | None


class ServerRuntime(BaseModel):
    """The settings a server ran with, as the server itself reported them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server_config: dict[str, str] | Absent
    flash_attention: bool | Absent
    kv_cache_type: str | Absent
    layers_on_gpu: int | Absent
    layers_total: int | Absent
    loaded: LoadedModel | Absent


class ModelDetails(BaseModel):
    """The ``details`` object Ollama reports for a model in ``/api/tags``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    parent_model: str | None = None
    format: str | None = None
    family: str | None = None
    families: list[str] | None = None
    parameter_size: str | None = None
    quantization_level: str | None = None


class OllamaFacts(BaseModel):
    """What an Ollama server says about itself and the model a run uses, read once while it serves.

    ``simulated`` is true when the server is the kit's simulator (its ``/api/version`` carries ``simulated``);
    its digests are then synthetic by design (``model_digest_synthetic``), never a registry's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    present: Literal[True] = True
    base_url: str
    version: str
    simulated: bool
    simulation_seed: int | None = None
    simulation_time_scale: float | None = None
    model: str
    model_digest: str | Absent
    model_digest_synthetic: bool
    model_size_bytes: int | Absent
    model_details: ModelDetails | Absent
    model_parameter_count: int | Absent
    model_context_length: int | Absent
    model_capabilities: list[str] | Absent
    runtime: ServerRuntime | Absent = Field(
        default_factory=lambda: absent("the server was not probed with a load (model preparation does that)")
    )


# The document: harness.evidence.provenance.collect builds it from the facts above


class FileHash(_Frozen):
    path: str
    sha256: str
    size_bytes: int


class CorpusHash(_Frozen):
    """``harness.protocol.corpus.corpus_sha256`` over the corpus folder the agents read."""

    path: str
    sha256: str
    file_count: int


class Inputs(_Frozen):
    """sha256 of everything that says *what* ran: the spec, the lock files and the corpus."""

    spec: FileHash | Absent
    requirements_lock: FileHash | Absent
    requirements_dev_lock: FileHash | Absent
    cargo_lock: FileHash | Absent
    docker_pins: FileHash | Absent
    images_lock: FileHash | Absent
    corpus: CorpusHash | Absent


class GitFacts(_Frozen):
    """``dirty``: a tracked file differs from ``commit`` (untracked files are counted, not judged)."""

    commit: str
    dirty: bool
    untracked_files: int


class KitFacts(_Frozen):
    version: str
    git: GitFacts | Absent


class HostFacts(_Frozen):
    kernel: str
    operating_system: str | Absent
    architecture: str
    cpu_model: str | Absent
    cpu_logical_count: int
    cpu_physical_core_count: int | Absent
    memory_total_bytes: int | Absent
    python_version: str


class ImageRecord(_Frozen):
    """``docker.images.<role>``. ``pinned``: the engine knows a registry digest for it (``repo_digests``);
    an image the kit built offline has none, is recorded unpinned with the reason, and is identified by ``id``."""

    present: Literal[True] = True
    reference: str
    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    pinned: bool
    reason: str | None
    labels: dict[str, str]


class BasePin(_Frozen):
    """One entry of docker/images.lock.json: a registry digest, or null and why (never an invented one)."""

    reference: str
    digest: str | None
    pinned: bool
    reason: str | None


class DockerSection(_Frozen):
    present: Literal[True] = True
    engine: EngineFacts  # the adapter's own record (a dataclass pydantic validates as it is)
    images: dict[str, ImageRecord | Absent]
    base_pins: dict[str, BasePin] | Absent


class ServerSettingsRecord(_Frozen):
    """The ``OLLAMA_*`` server settings the kit asked for (the spec's ``[server]`` section for the kit's runs).

    ``flash_attention`` None means the variable was left unset (the server decides per model); what the server
    actually ran with is in the ``ollama.runtime`` section, read from the server's own log and ``/api/ps``.
    """

    num_parallel: int
    keep_alive: str
    context_length: int
    flash_attention: bool | None
    models: str | None
    gpus: list[str] = Field(default_factory=lambda: ["0"], description="the GPU each server was given, in order")


class RunContext(_Frozen):
    command: list[str]
    settings: dict[str, Any]
    server_settings: ServerSettingsRecord | Absent


class SystemDescription(_Frozen):
    """An MLPerf-style system description (their field names), derived from the sections below."""

    accelerator_model_name: str | Absent
    accelerator_memory_capacity: str | Absent
    accelerators_per_node: int
    host_processor_model_name: str | Absent
    host_processor_core_count: int | Absent
    host_memory_capacity: str | Absent
    operating_system: str | Absent
    framework: str | Absent
    other_software_stack: str


class Provenance(_Frozen):
    """provenance.json (docs/provenance.md documents every key); ``schema_version`` is PROVENANCE_SCHEMA_VERSION."""

    schema_version: Literal[1] = 1
    captured_at: str
    simulated: bool | None
    fingerprint_sha256: str
    fingerprint_keys: list[str]
    system: SystemDescription
    gpu: GpuFacts | Absent
    docker: DockerSection | Absent
    ollama: OllamaFacts | Absent
    host: HostFacts
    kit: KitFacts
    inputs: Inputs
    run: RunContext
