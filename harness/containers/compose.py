"""Compose files to typed specs: load with PyYAML, interpolate, translate; pure, no Docker import.

The compose files in ``compose/`` are the source (usable by hand with ``docker compose``); this module loads
them, interpolates ``${VAR:-default}`` from an explicit mapping (never the process environment), translates the
subset the kit uses into typed specs and refuses anything else by name. :mod:`harness.containers.stack` runs
what it returns.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from harness.containers import policy
from harness.errors import BadInputError

COMPOSE_DIR = Path(__file__).resolve().parents[2] / "compose"
MODEL_VOLUME = "chimeraforge-models"
LABEL_READY_HTTP = "io.chimeraforge.ready_http"

Publish = Literal["ephemeral", "as_written", "none"]
Topology = Literal["single", "dual"]
Backend = Literal["ollama", "sim", "llamacpp"]

# ------------------------------------------------------------------------------------------- interpolation

_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S)


def interpolate(text: str, variables: Mapping[str, str], *, where: str = "value") -> str:
    """Compose-style substitution: ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?message}``, ``${VAR?message}``, ``${VAR:+alt}``, ``${VAR+alt}`` and ``$$`` for a literal ``$``.

    An unset variable without a default becomes the empty string, as in compose. Defaults are literal (no
    nested ``${...}``).
    """

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return variables.get(match["named"], "")
        parsed = _BRACED.match(match["braced"])
        if parsed is None:
            raise BadInputError(f"{where}: invalid substitution ${{{match['braced']}}}", hint="use ${NAME:-default}")
        name, op, arg = parsed["name"], parsed["op"], parsed["arg"] or ""
        value = variables.get(name)
        if op is None:
            return value or ""
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?"):
            if value is None or (op == ":?" and not value):
                raise BadInputError(f"{where}: required variable {name} is missing: {arg or 'no message'}")
            return value
        if op == ":+":
            return arg if value else ""
        return "" if value is None else arg  # "+"

    return _VAR.sub(substitute, text)


def _interpolate_tree(node: Any, variables: Mapping[str, str], where: str) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables, where=where)
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, variables, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, variables, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


# ------------------------------------------------------------------------------------------- typed specs


@dataclass(frozen=True)
class PortBinding:
    """A published port; ``host_port`` None means an ephemeral port picked by the engine."""

    container_port: int
    protocol: str
    host_ip: str
    host_port: int | None


@dataclass(frozen=True)
class MountSpec:
    """A named volume (``source`` is the compose key), a bind (absolute host path) or a tmpfs."""

    kind: Literal["volume", "bind", "tmpfs"]
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class HealthSpec:
    """A container healthcheck; ``test`` in Docker's form (``["CMD", ...]``, ``["CMD-SHELL", s]``, ``["NONE"]``)."""

    test: tuple[str, ...]
    interval_s: float = 30.0
    timeout_s: float = 30.0
    retries: int = 3
    start_period_s: float = 0.0


@dataclass(frozen=True)
class GpuRequest:
    """One ``deploy.resources.reservations.devices`` entry; ``count`` -1 means all."""

    driver: str
    count: int | None
    device_ids: tuple[str, ...]
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class ServiceSpec:
    """One compose service, reduced to what the kit executes."""

    name: str
    image: str | None
    build: Mapping[str, Any] | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[PortBinding, ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    networks: tuple[str, ...] = ()
    healthcheck: HealthSpec | None = None
    depends_on: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    read_only: bool = False
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    gpus: tuple[GpuRequest, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()
    working_dir: str | None = None
    init: bool | None = None
    stop_grace_period_s: float | None = None

    @property
    def ready_http(self) -> tuple[int, str] | None:
        """``(container port, path)`` from the ``io.chimeraforge.ready_http`` label (e.g. ``11434/api/version``)."""
        raw = self.labels.get(LABEL_READY_HTTP)
        if not raw:
            return None
        port, _, path = raw.partition("/")
        return int(port), "/" + path


@dataclass(frozen=True)
class VolumeSpec:
    """A top-level volume; external ones (the model store) outlive every stack."""

    key: str
    name: str | None
    external: bool
    driver: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkSpec:
    """A top-level network; the kit creates it per project (``<project>_<key>``)."""

    key: str
    driver: str = "bridge"
    internal: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ComposeProject:
    """A loaded, interpolated and translated compose file set."""

    services: Mapping[str, ServiceSpec]
    volumes: Mapping[str, VolumeSpec]
    networks: Mapping[str, NetworkSpec]
    sources: tuple[Path, ...]

    def active_services(self, profiles: Sequence[str] = ()) -> list[ServiceSpec]:
        """Services ``up`` starts: those without a profile, or with one of ``profiles``."""
        return [s for s in self.services.values() if not s.profiles or set(s.profiles) & set(profiles)]

    def start_order(self, profiles: Sequence[str] = ()) -> list[ServiceSpec]:
        """Active services with every ``depends_on`` target first; a cycle or a missing target is bad input."""
        active = {s.name: s for s in self.active_services(profiles)}
        order: list[ServiceSpec] = []
        state: dict[str, str] = {}

        def visit(name: str, chain: tuple[str, ...]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                raise BadInputError(f"compose: depends_on cycle {' -> '.join((*chain, name))}")
            if name not in active:
                raise BadInputError(f"compose: {chain[-1]} depends on {name}, which is not an active service")
            state[name] = "visiting"
            for dep in active[name].depends_on:
                visit(dep, (*chain, name))
            state[name] = "done"
            order.append(active[name])

        for name in active:
            visit(name, ())
        return order


# ------------------------------------------------------------------------------------------- translation

_TOP_KEYS = {"services", "volumes", "networks", "version"}
_SERVICE_KEYS = {
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "volumes",
    "networks",
    "healthcheck",
    "depends_on",
    "user",
    "cap_drop",
    "cap_add",
    "security_opt",
    "read_only",
    "tmpfs",
    "deploy",
    "labels",
    "profiles",
    "working_dir",
    "init",
    "stop_grace_period",
}
LOOPBACK = frozenset({"127.0.0.1", "::1"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _fail(where: str, message: str, hint: str | None = None) -> BadInputError:
    return BadInputError(f"{where}: {message}", hint=hint)


def _check_keys(node: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(k for k in node if k not in allowed and not str(k).startswith("x-"))
    if unknown:
        raise _fail(
            where,
            f"{', '.join(map(str, unknown))} not supported by the kit",
            hint=f"supported: {', '.join(sorted(allowed))}",
        )


def parse_duration_s(value: Any, where: str) -> float:
    """Compose durations (``1m30s``, ``500ms``, ``2s``) or plain seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise _fail(where, f"invalid duration {value!r}", hint="use e.g. 5s, 500ms, 1m30s")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(shlex.split(value))
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return tuple(str(v) for v in value)
    raise _fail(where, "expected a string or a list of strings")


def _mapping(value: Any, where: str) -> dict[str, str]:
    """``environment`` / ``labels``: a mapping or a ``KEY=VALUE`` list; null values are dropped."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for v in value:
            key, sep, val = str(v).partition("=")
            items.append((key, val if sep else None))
    else:
        raise _fail(where, "expected a mapping or a list of KEY=VALUE")
    for key, val in items:
        if val is None:
            continue  # compose would take it from the shell; the kit passes every value explicitly
        if isinstance(val, bool):
            raise _fail(f"{where}.{key}", "booleans must be quoted strings ('true'/'false')")
        if not isinstance(val, str | int | float):
            raise _fail(f"{where}.{key}", "expected a string or a number")
        out[str(key)] = str(val)
    return out


def _parse_port(item: Any, where: str) -> PortBinding:
    if isinstance(item, dict):
        _check_keys(item, {"target", "published", "host_ip", "protocol", "mode"}, where)
        target, published = item.get("target"), item.get("published")
        host_ip, protocol = item.get("host_ip"), str(item.get("protocol", "tcp"))
    else:
        text = str(item)
        text, _, protocol = text.partition("/")
        protocol = protocol or "tcp"
        if text.startswith("["):
            raise _fail(where, f"IPv6 literal in {item!r} not supported", hint="publish on 127.0.0.1")
        parts = text.split(":")
        if len(parts) == 1:
            host_ip, published, target = None, None, parts[0]
        elif len(parts) == 2:
            host_ip, published, target = None, parts[0], parts[1]
        elif len(parts) == 3:
            host_ip, published, target = parts
        else:
            raise _fail(where, f"cannot parse port {item!r}")
    if host_ip in (None, ""):
        host_ip = "127.0.0.1"  # compose would bind all interfaces; Ollama has no authentication
    if host_ip not in LOOPBACK:
        raise _fail(
            where,
            f"publishes on {host_ip}: Ollama has no authentication, so the kit binds to loopback only",
            hint='write "127.0.0.1:HOST:CONTAINER"',
        )
    if protocol not in ("tcp", "udp"):
        raise _fail(where, f"unknown protocol {protocol!r}")
    try:
        target_port = int(str(target))
        host_port = int(str(published)) if published not in (None, "") else None
    except ValueError:
        raise _fail(where, f"port ranges and names are not supported ({item!r})") from None
    return PortBinding(target_port, protocol, str(host_ip), host_port)


def _parse_mount(item: Any, where: str, base_dir: Path, volumes: Mapping[str, VolumeSpec]) -> MountSpec:
    if isinstance(item, dict):
        _check_keys(item, {"type", "source", "target", "read_only"}, where)
        kind, source, target = item.get("type"), str(item.get("source", "")), item.get("target")
        read_only = bool(item.get("read_only", False))
        if kind not in ("volume", "bind", "tmpfs") or not target:
            raise _fail(where, "needs type volume|bind|tmpfs and a target")
    else:
        parts = str(item).split(":")
        if len(parts) < 2:
            raise _fail(where, f"anonymous volume {item!r} not supported", hint="use a named volume or a bind")
        source, target = parts[0], parts[1]
        opts = parts[2].split(",") if len(parts) > 2 else []
        read_only = "ro" in opts
        kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
    if kind == "bind":
        path = Path(source).expanduser()
        source = str((base_dir / path).resolve() if not path.is_absolute() else path)
    elif kind == "volume" and source not in volumes:
        raise _fail(where, f"named volume {source!r} is not declared under top-level volumes")
    return MountSpec(kind, source, str(target), read_only)  # type: ignore[arg-type]


def _parse_health(node: Any, where: str) -> HealthSpec | None:
    if not isinstance(node, dict):
        raise _fail(where, "expected a mapping")
    _check_keys(node, {"test", "interval", "timeout", "retries", "start_period", "disable"}, where)
    if node.get("disable"):
        return HealthSpec(test=("NONE",))
    test = node.get("test")
    if isinstance(test, str):
        test_t: tuple[str, ...] = ("CMD-SHELL", test)
    elif isinstance(test, list) and test and str(test[0]) in ("CMD", "CMD-SHELL", "NONE"):
        test_t = tuple(str(t) for t in test)
    else:
        raise _fail(where + ".test", 'expected ["CMD", ...], ["CMD-SHELL", "..."] or a string')
    spec = HealthSpec(test=test_t)
    if "interval" in node:
        spec = replace(spec, interval_s=parse_duration_s(node["interval"], where + ".interval"))
    if "timeout" in node:
        spec = replace(spec, timeout_s=parse_duration_s(node["timeout"], where + ".timeout"))
    if "start_period" in node:
        spec = replace(spec, start_period_s=parse_duration_s(node["start_period"], where + ".start_period"))
    if "retries" in node:
        spec = replace(spec, retries=int(node["retries"]))
    return spec


def _parse_depends(node: Any, where: str) -> dict[str, str]:
    if isinstance(node, list):
        return {str(s): "service_started" for s in node}
    if not isinstance(node, dict):
        raise _fail(where, "expected a list or a mapping")
    out: dict[str, str] = {}
    for name, cfg in node.items():
        cond = (cfg or {}).get("condition", "service_started") if isinstance(cfg, dict) else None
        if cond not in ("service_started", "service_healthy"):
            raise _fail(f"{where}.{name}", f"condition {cond!r} not supported (service_started|service_healthy)")
        out[str(name)] = str(cond)
    return out


def _parse_gpus(node: Any, where: str) -> tuple[GpuRequest, ...]:
    if not isinstance(node, dict):
        raise _fail(where, "expected a mapping")
    _check_keys(node, {"resources"}, where)
    resources = node.get("resources") or {}
    _check_keys(resources, {"reservations"}, where + ".resources")
    reservations = resources.get("reservations") or {}
    _check_keys(reservations, {"devices"}, where + ".resources.reservations")
    out: list[GpuRequest] = []
    for i, dev in enumerate(reservations.get("devices") or []):
        w = f"{where}.resources.reservations.devices[{i}]"
        if not isinstance(dev, dict):
            raise _fail(w, "expected a mapping")
        _check_keys(dev, {"driver", "count", "device_ids", "capabilities", "options"}, w)
        caps = dev.get("capabilities")
        if not isinstance(caps, list) or not caps:
            raise _fail(w, "capabilities is required (e.g. [gpu])")
        if "count" in dev and "device_ids" in dev:
            raise _fail(w, "count and device_ids are mutually exclusive")
        raw = dev.get("count", "all" if "device_ids" not in dev else None)
        if raw == "all":
            count: int | None = -1
        elif raw is None:
            count = None
        else:
            try:
                count = int(raw)
            except (TypeError, ValueError):
                raise _fail(w, f"count must be 'all' or an integer, not {raw!r}") from None
        out.append(
            GpuRequest(
                driver=str(dev.get("driver", "nvidia")),
                count=count,
                device_ids=tuple(str(d) for d in dev.get("device_ids") or ()),
                capabilities=tuple(str(c) for c in caps),
            )
        )
    return tuple(out)


def _parse_tmpfs(node: Any, where: str) -> dict[str, str]:
    items = [node] if isinstance(node, str) else node
    if not isinstance(items, list):
        raise _fail(where, "expected a path or a list of paths")
    out: dict[str, str] = {}
    for item in items:
        path, _, opts = str(item).partition(":")
        out[path] = opts
    return out


def _parse_service(
    name: str, node: Any, where: str, base_dir: Path, volumes: Mapping[str, VolumeSpec], gpu: bool
) -> ServiceSpec:
    if not isinstance(node, dict):
        raise _fail(where, "expected a mapping")
    policy.check_node(node, where)
    _check_keys(node, _SERVICE_KEYS, where)
    if not node.get("image") and not node.get("build"):
        raise _fail(where, "needs an image (or a build)")
    nets = node.get("networks") or []
    if isinstance(nets, dict):
        for key, cfg in nets.items():
            if cfg:
                raise _fail(f"{where}.networks.{key}", "per-network options are not supported")
        nets = list(nets)
    build = node.get("build")
    build_map = {"context": build} if isinstance(build, str) else build
    return ServiceSpec(
        name=name,
        image=str(node["image"]) if node.get("image") else None,
        build=build_map,
        command=_str_list(node["command"], where + ".command") if node.get("command") is not None else None,
        entrypoint=_str_list(node["entrypoint"], where + ".entrypoint") if node.get("entrypoint") else None,
        environment=_mapping(node.get("environment") or {}, where + ".environment"),
        ports=tuple(_parse_port(p, f"{where}.ports[{i}]") for i, p in enumerate(node.get("ports") or [])),
        mounts=tuple(
            _parse_mount(m, f"{where}.volumes[{i}]", base_dir, volumes) for i, m in enumerate(node.get("volumes") or [])
        ),
        networks=tuple(str(n) for n in nets),
        healthcheck=_parse_health(node["healthcheck"], where + ".healthcheck") if "healthcheck" in node else None,
        depends_on=_parse_depends(node.get("depends_on") or [], where + ".depends_on"),
        user=str(node["user"]) if node.get("user") is not None else None,
        cap_drop=_str_list(node.get("cap_drop") or [], where + ".cap_drop"),
        cap_add=_str_list(node.get("cap_add") or [], where + ".cap_add"),
        security_opt=_str_list(node.get("security_opt") or [], where + ".security_opt"),
        read_only=bool(node.get("read_only", False)),
        tmpfs=_parse_tmpfs(node.get("tmpfs") or [], where + ".tmpfs"),
        gpus=_parse_gpus(node["deploy"], where + ".deploy") if gpu and node.get("deploy") else (),
        labels=_mapping(node.get("labels") or {}, where + ".labels"),
        profiles=_str_list(node.get("profiles") or [], where + ".profiles"),
        working_dir=str(node["working_dir"]) if node.get("working_dir") else None,
        init=bool(node["init"]) if "init" in node else None,
        stop_grace_period_s=(
            parse_duration_s(node["stop_grace_period"], where + ".stop_grace_period")
            if "stop_grace_period" in node
            else None
        ),
    )


def _merge(base: Any, over: Any) -> Any:
    """Override semantics: mappings merge key by key, everything else (lists included) is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, val in over.items():
            out[key] = _merge(base[key], val) if key in base else val
        return out
    return over


def translate(doc: Mapping[str, Any], *, base_dir: Path, gpu: bool = True, where: str = "compose") -> ComposeProject:
    """Turn an interpolated compose document into a :class:`ComposeProject`; unknown keys are bad input.

    ``gpu=False`` drops every device reservation (the simulated backend needs none and the host may lack the
    NVIDIA runtime).
    """
    _check_keys(doc, _TOP_KEYS, where)
    volumes: dict[str, VolumeSpec] = {}
    for key, cfg in (doc.get("volumes") or {}).items():
        cfg = cfg or {}
        _check_keys(cfg, {"external", "name", "driver", "labels"}, f"{where}.volumes.{key}")
        volumes[key] = VolumeSpec(
            key=key,
            name=str(cfg["name"]) if cfg.get("name") else None,
            external=bool(cfg.get("external", False)),
            driver=cfg.get("driver"),
            labels=_mapping(cfg.get("labels") or {}, f"{where}.volumes.{key}.labels"),
        )
    networks: dict[str, NetworkSpec] = {}
    for key, cfg in (doc.get("networks") or {}).items():
        cfg = cfg or {}
        _check_keys(cfg, {"driver", "internal", "labels"}, f"{where}.networks.{key}")
        networks[key] = NetworkSpec(
            key=key,
            driver=str(cfg.get("driver", "bridge")),
            internal=bool(cfg.get("internal", False)),
            labels=_mapping(cfg.get("labels") or {}, f"{where}.networks.{key}.labels"),
        )
    services_doc = doc.get("services")
    if not isinstance(services_doc, dict) or not services_doc:
        raise _fail(where, "no services")
    services: dict[str, ServiceSpec] = {}
    for name, node in services_doc.items():
        if str(name).startswith("x-"):
            continue
        spec = _parse_service(str(name), node, f"{where}.services.{name}", base_dir, volumes, gpu)
        policy.check_service(spec, f"{where}.services.{name}")
        if not spec.networks:
            networks.setdefault("default", NetworkSpec(key="default"))
            spec = replace(spec, networks=("default",))
        for net in spec.networks:
            if net not in networks:
                raise _fail(f"{where}.services.{name}.networks", f"network {net!r} is not declared")
        services[spec.name] = spec
    for spec in services.values():
        for dep in spec.depends_on:
            if dep not in services:
                raise _fail(f"{where}.services.{spec.name}.depends_on", f"unknown service {dep!r}")
    return ComposeProject(services=services, volumes=volumes, networks=networks, sources=())


def load_compose(paths: Sequence[Path], variables: Mapping[str, str], *, gpu: bool = True) -> ComposeProject:
    """Load one compose file plus overrides (merged in order), interpolate from ``variables``, translate."""
    if not paths:
        raise BadInputError("load_compose needs at least one compose file")
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise BadInputError(f"cannot read compose file {path}: {exc}") from None
        except yaml.YAMLError as exc:
            raise BadInputError(f"compose file {path} is not valid YAML: {exc}") from None
        if not isinstance(doc, dict):
            raise BadInputError(f"compose file {path} is not a mapping")
        doc = {k: v for k, v in doc.items() if not str(k).startswith("x-")}
        merged = _merge(merged, _interpolate_tree(doc, variables, path.name))
    project = translate(merged, base_dir=paths[0].resolve().parent, gpu=gpu, where=paths[-1].name)
    return replace(project, sources=tuple(paths))


def compose_files(topology: Topology, backend: Backend, compose_dir: Path = COMPOSE_DIR) -> list[Path]:
    """The file set for a topology and backend (sim = the stack file plus the simulator overrides)."""
    files = [compose_dir / f"{topology}-ollama.yml"]
    if backend in ("sim", "llamacpp"):
        files.append(compose_dir / f"{backend}.override.yml")
        if topology == "dual":
            files.append(compose_dir / f"{backend}-dual.override.yml")
    return files


class ServerKnobs(Protocol):
    """The Ollama server knobs a stack is started with (``harness.settings.OllamaServerSettings`` has them):
    values, so this module never reads settings itself."""

    @property
    def num_parallel(self) -> int: ...

    @property
    def keep_alive(self) -> str: ...

    @property
    def context_length(self) -> int: ...

    @property
    def flash_attention(self) -> bool | None: ...

    @property
    def gpus(self) -> tuple[str, ...]: ...


def stack_variables(
    server: ServerKnobs,
    *,
    harness_image: str,
    ollama_image: str | None = None,
    model_volume: str = MODEL_VOLUME,
) -> dict[str, str]:
    """The interpolation mapping for the kit's compose files, from explicit values (no environment reads)."""
    out = {
        "HARNESS_IMAGE": harness_image,
        "OLLAMA_NUM_PARALLEL": str(server.num_parallel),
        "OLLAMA_KEEP_ALIVE": server.keep_alive,
        "OLLAMA_CONTEXT_LENGTH": str(server.context_length),
        "OLLAMA_MODEL_VOLUME": model_volume,
    }
    for name, gpu in zip(("OLLAMA_GPU", "OLLAMA2_GPU"), server.gpus, strict=False):
        out[name] = gpu
    if server.flash_attention is not None:  # unset: the server decides per model (0.12.10's default)
        out["OLLAMA_FLASH_ATTENTION"] = "true" if server.flash_attention else "false"
    if ollama_image:
        out["OLLAMA_IMAGE"] = ollama_image
    return out


# ------------------------------------------------------------------------------------------- engine access
