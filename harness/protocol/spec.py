"""Experiment specs: what one report ran (protocol) and what it claimed (published numbers).

A spec is one TOML file per report in ``experiments/``. The models are strict (``extra="forbid"``) so a typo
fails loudly, and :func:`load_spec` turns pydantic's errors into one message naming the file, the field path
and the allowed values.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import SpecError

SPEC_SCHEMA_VERSION = 1

Kind = Literal["single_inference", "single_agent", "multi_agent"]
Scenario = Literal["single_inference", "single_agent", "baseline_vs_chimera", "chimera_hetero", "chimera_homo"]
MULTI_SCENARIOS: tuple[str, ...] = ("baseline_vs_chimera", "chimera_hetero", "chimera_homo")
Language = Literal["python", "rust"]
Workflow = Literal["single_call", "one_call", "two_call"]
Metric = Literal[
    "efficiency_pct",
    "true_efficiency_pct",
    "speedup",
    "contention",
    "aggregate_tps",
    "tps",
    "ttft_ms",
    "tps_improvement_pct",
    "ttft_reduction_pct",
    "peak_memory_mb",
    "startup_s",
    "files_ingested",
]
Statistic = Literal["mean", "median", "std", "cv_pct", "p5", "max", "min", "count", "best_config_mean", "fraction"]
AgentRole = Literal["baseline", "chimera"]
DEFAULT_ORDER: tuple[AgentRole, ...] = ("baseline", "chimera")
Comparability = Literal["portable", "hardware_bound", "not_comparable"]


MAX_RUNS_PER_CONFIG = 1000
"""Repetitions per config a spec (or ``--runs``) may ask for: more is a typo, not a protocol."""
MAX_DURATION_S = 86_400.0
"""Any pause or cool-down a spec states is at most a day."""


class _Strict(BaseModel):
    # inf and nan are valid TOML floats; no field of a spec can mean either.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Options(_Strict):
    """Ollama ``options`` an agent sends; only set fields go on the wire."""

    num_gpu: int | None = Field(default=None, ge=0, le=10_000)
    num_ctx: int | None = Field(default=None, ge=1, le=1 << 24)
    temperature: float | None = Field(default=None, ge=0, le=100)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1, le=1 << 20)
    repeat_penalty: float | None = Field(default=None, gt=0, le=100)
    num_predict: int | None = Field(default=None, ge=-2, le=1 << 24)
    seed: int | None = None

    def wire(self) -> dict[str, float | int] | None:
        """The options object as sent (None when nothing is set: the baseline agent sends no options)."""
        body = self.model_dump(exclude_none=True)
        return body or None


class Model(_Strict):
    name: str = Field(min_length=1, description="Ollama model reference, e.g. gemma3:latest")
    digest: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="pins the weights: the manifest digest /api/tags reports (64 hex, no sha256: prefix)",
    )
    note: str | None = None


SERVER_DEFAULTS: dict[str, dict[str, object]] = {
    "0.12.10": {"num_parallel": 1, "keep_alive": "5m", "context_length": 4096, "flash_attention": None},
}
"""Each pinned Ollama version's own defaults (``envconfig/config.go``); ``flash_attention`` None: the server
decides per model (the variable unset), which is what the reports' server logs show."""


class Server(_Strict):
    """Ollama server settings in force during the report.

    A setting left out is the pinned version's default, as the originals ran it; a setting given with another
    value is a deliberate change and needs a line in ``reasons`` saying why, so a spec never drifts from the
    protocol by accident.
    """

    ollama_version: str
    num_parallel: int = Field(default=1, ge=1, le=1024)
    keep_alive: str = "5m"
    context_length: int = Field(default=4096, ge=1, le=1 << 24)
    flash_attention: bool | None = Field(default=None, description="None: unset, the server decides per model")
    reasons: dict[str, str] = Field(default_factory=dict, description="setting → why it differs from the default")

    def require_reasons(self, where: str) -> None:
        """A spec about to run: every setting is the pinned version's default, or a change with a reason.

        Checked when a reproduction starts rather than when a spec is read, so artifacts and bundles made by
        earlier kits (whose specs wrote every default out) still load and re-run as they were made.
        """
        defaults = SERVER_DEFAULTS.get(self.ollama_version)
        if defaults is None:
            raise SpecError(
                f"{where}: server.ollama_version: no defaults are known for Ollama {self.ollama_version}; the kit "
                f"knows {', '.join(SERVER_DEFAULTS)}",
                hint="pin a version the kit knows, or add its defaults to harness.protocol.spec.SERVER_DEFAULTS",
            )
        unknown = sorted(set(self.reasons) - set(defaults))
        if unknown:
            raise SpecError(
                f"{where}: server.reasons: reasons for unknown setting(s) {', '.join(unknown)}",
                hint=f"the settings are {', '.join(defaults)}",
            )
        for name, default in defaults.items():
            value = getattr(self, name)
            if value != default and not self.reasons.get(name, "").strip():
                raise SpecError(
                    f"{where}: server.{name} = {value!r} differs from Ollama {self.ollama_version}'s default "
                    f"{default!r}",
                    hint=f"remove it to run the default, as the originals did, or say why in server.reasons.{name}",
                )

    def changed(self) -> dict[str, object]:
        """The settings that differ from the pinned version's default (each with a reason)."""
        defaults = SERVER_DEFAULTS.get(self.ollama_version, {})
        return {name: getattr(self, name) for name, default in defaults.items() if getattr(self, name) != default}


class Topology(_Strict):
    ollama: Literal["single", "dual"]
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(min_length=1, max_length=2)
    device_ids: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=2,
        description="GPU of each server (index or UUID); None: every server on GPU 0, as the originals ran",
    )

    @model_validator(mode="after")
    def _ports_match(self) -> Self:
        want = 1 if self.ollama == "single" else 2
        if len(self.ports) != want:
            raise ValueError(f"{self.ollama} topology needs {want} port(s), got {len(self.ports)}")
        if self.device_ids is not None and len(self.device_ids) != want:
            raise ValueError(f"{self.ollama} topology needs {want} device id(s), got {len(self.device_ids)}")
        return self

    def gpus(self) -> list[str]:
        """The GPU each server is given, in server order."""
        return list(self.device_ids) if self.device_ids is not None else ["0"] * len(self.ports)


class Runtime(_Strict):
    """An async runtime the agents run on; ``original`` is the label the report used for it."""

    name: str
    original: str | None = None
    diagnostic: bool = Field(default=False, description="a reproduction of a flaw, run beside the protocol")
    note: str | None = None


class Agent(_Strict):
    language: Language
    languages: list[Language] | None = Field(default=None, description="several: a language comparison")
    workflow: Workflow
    streaming: bool
    runs: int = Field(ge=1, le=MAX_RUNS_PER_CONFIG, description="repetitions of every config")
    runtimes: list[Runtime] = Field(min_length=1)
    order: list[AgentRole] = Field(
        default_factory=lambda: list(DEFAULT_ORDER),
        description="single agent: the agents of one run, in order",
    )
    cooldown_s: float = Field(
        default=0, ge=0, le=MAX_DURATION_S, description="pause between the agents of one single-agent run"
    )
    pause_between_runs_s: float = Field(default=0, ge=0, le=MAX_DURATION_S)
    unload_between_runs: bool = False
    isolated_baseline_runs: int = Field(
        default=2,
        ge=0,
        le=MAX_RUNS_PER_CONFIG,
        description="multi-agent: isolated single-agent runs per config and side (true efficiency)",
    )


class Config(_Strict):
    """One point of the grid. Multi-agent configs set ``a``/``b``; others set ``options`` (empty = defaults)."""

    id: str = Field(min_length=1)
    scenario: Scenario
    phase: str | None = None
    model: str | None = Field(default=None, description="overrides the spec's model (TR108)")
    options: Options | None = None
    a: Options | None = None
    b: Options | None = None

    @model_validator(mode="after")
    def _scenario_shape(self) -> Self:
        multi = self.scenario in MULTI_SCENARIOS
        if multi and self.options is not None:
            raise ValueError("multi-agent configs take `a` and `b`, not `options`")
        if not multi and (self.a is not None or self.b is not None):
            raise ValueError(f"{self.scenario} configs take `options`, not `a`/`b`")
        a, b = (self.a or Options()).wire(), (self.b or Options()).wire()
        if self.scenario == "baseline_vs_chimera" and (a is not None or b is None):
            raise ValueError("baseline_vs_chimera: `a` (the baseline) sends no options and `b` must set some")
        if self.scenario == "chimera_homo" and (a != b or a is None):
            raise ValueError("chimera_homo: `a` and `b` must set the same options")
        if self.scenario == "chimera_hetero" and (a is None or b is None or a == b):
            raise ValueError("chimera_hetero: `a` and `b` must both set options, and differ")
        return self


Over = Literal["runs", "configs"]


def published_decimals(text: str) -> int:
    """Decimals the report printed: ``"98.281"`` → 3, ``"50.00"`` → 2, ``"1437"`` → 0."""
    mantissa = text.strip().lower().split("e")[0]
    return len(mantissa.partition(".")[2])


class Claim(_Strict):
    """One published number the reproduction is judged against.

    ``value`` is best written as a string exactly as the report printed it (``"50.00"``): its precision is the
    equality a recomputation is held to. ``config`` names the config the figure belongs to (for
    ``best_config_mean``: the config the report names best), so a verdict checks identity, not only the value.
    ``tolerance`` (with ``tolerance_why``) is the equivalence band of a re-measurement.
    """

    id: str = Field(min_length=1)
    statement: str
    metric: Metric
    statistic: Statistic
    value: float
    published: str = Field(default="", description="the value as printed (filled from `value`)")
    unit: str
    where: dict[str, str] = Field(default_factory=dict, description="row filter, e.g. {runtime = 'tokio'}")
    relative_to: dict[str, str] | None = Field(
        default=None,
        description="the claim is the % difference of the statistic over `where` rows against these rows",
    )
    over: Over = Field(default="runs", description="configs: the statistic is over the per-config means")
    config: str | None = Field(default=None, description="the config the figure is of: a config id or label")
    runs: int | None = Field(default=None, ge=1, description="how many runs the published figure is over")
    source: str = Field(description="where the report states it")
    comparability: Comparability
    tolerance: float | None = Field(default=None, ge=0, description="re-measurement: absolute half width of the band")
    tolerance_why: str | None = Field(default=None, description="why that band: the original's σ, a threshold")
    note: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _keep_published_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data:
            raw = data["value"]
            if isinstance(raw, bool):
                return data
            if isinstance(raw, str):
                try:
                    float(raw)
                except ValueError:
                    return data
                return {**data, "published": raw.strip()}
            if isinstance(raw, int | float) and not data.get("published"):
                return {**data, "published": str(raw) if isinstance(raw, int) else repr(float(raw))}
        return data

    def gaps(self) -> list[str]:
        """What a claim should state and does not (specs written before identity and bands were declared still
        load; the verdict says what could not be checked, and the shipped specs are tested to have none)."""
        out = []
        if self.tolerance is not None and not self.tolerance_why:
            out.append("`tolerance` without `tolerance_why`")
        if self.statistic == "count" and self.runs is None:
            out.append("a count without `runs` (its denominator)")
        if self.statistic == "best_config_mean" and self.config is None:
            out.append("a best_config_mean without `config` (the config the report names best)")
        return out

    @property
    def decimals(self) -> int:
        return published_decimals(self.published)

    @property
    def half_unit(self) -> float:
        """Half a unit of the last printed digit: the reach of the report's rounding."""
        return 0.5 * 10.0**-self.decimals


class Spec(_Strict):
    schema_version: Literal[1]
    id: str = Field(pattern=r"^tr1\d\d$")
    version: str = Field(description="the report's version reproduced, e.g. v2")
    title: str
    question: str
    kind: Kind
    notes: list[str] = Field(default_factory=list)
    model: Model
    server: Server
    topology: Topology
    agent: Agent | None = None
    prompts: list[str] = Field(default_factory=list, description="TR108: prompt files under experiments/prompts")
    configs: list[Config] = Field(min_length=1)
    claims: list[Claim] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [c.id for c in self.configs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"config ids must be unique, repeated: {', '.join(dupes)}")
        if self.kind != "single_inference" and self.agent is None:
            raise ValueError(f"a {self.kind} spec needs an [agent] table")
        if self.kind == "single_inference" and not self.prompts:
            raise ValueError("a single_inference spec needs `prompts`")
        allowed = {
            "single_inference": {"single_inference"},
            "single_agent": {"single_agent"},
            "multi_agent": set(MULTI_SCENARIOS),
        }[self.kind]
        for config in self.configs:
            if config.scenario not in allowed:
                raise ValueError(
                    f"config {config.id}: scenario {config.scenario!r} does not fit a {self.kind} spec "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
        if self.kind == "multi_agent" and self.topology.ollama == "dual" and len(self.topology.ports) != 2:
            raise ValueError("dual topology needs two ports")
        claim_ids = [c.id for c in self.claims]
        if len(set(claim_ids)) != len(claim_ids):
            raise ValueError("claim ids must be unique")
        return self

    def config(self, config_id: str) -> Config:
        for config in self.configs:
            if config.id == config_id:
                return config
        raise SpecError(f"{self.id}: no config {config_id!r}", hint=f"known: {', '.join(c.id for c in self.configs)}")


def spec_path(experiments_dir: Path, report: str) -> Path:
    return experiments_dir / f"{report.lower()}.toml"


def load_spec(path: Path) -> Spec:
    """Read and validate one spec; every failure is a :class:`SpecError` naming the file and the field."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        known = sorted(p.stem for p in path.parent.glob("tr*.toml")) if path.parent.is_dir() else []
        raise SpecError(
            f"no experiment spec at {path}", hint=f"pick one of: {', '.join(known) or '(none found)'}"
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    return parse_spec(data, where=str(path))


def parse_spec(data: dict[str, Any], *, where: str) -> Spec:
    version = data.get("schema_version")
    if version != SPEC_SCHEMA_VERSION:
        raise SpecError(
            f"{where}: schema_version {version!r} is not supported (this kit reads {SPEC_SCHEMA_VERSION})",
            hint="set schema_version = 1 or use the kit version the spec was written for",
        )
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{where}: " + "; ".join(_explain(err, data) for err in exc.errors())) from None


def spec_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _explain(err: Any, data: dict[str, Any]) -> str:
    """One readable line per pydantic error: the TOML path (with config ids) and what is allowed."""
    loc = _toml_path(err["loc"], data)
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown key (remove it or check its spelling)"
    if kind == "literal_error":
        allowed = err.get("ctx", {}).get("expected", "")
        return f"{loc}: {err['input']!r} is not allowed; allowed values: {allowed}"
    if kind == "missing":
        return f"{loc}: required key is missing"
    return f"{loc}: {err['msg']}"


def _toml_path(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict) and "id" in node[item]:
                label = f"[{item}](id={node[item]['id']})"
            parts.append(label)
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def allowed_values(literal: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in get_args(literal))
