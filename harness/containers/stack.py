"""Compose stacks executed through the Docker SDK: one fresh, labelled project per run, always torn down.

The compose files in ``compose/`` are the source (usable by hand with ``docker compose``); this module loads
them (PyYAML), interpolates ``${VAR:-default}`` from an explicit mapping (never the process environment),
translates the subset the kit uses into typed specs, refuses anything else by name, and executes them with the
Docker SDK. With ``harness.containers.images`` it is the only module that imports ``docker``; Docker SDK and
``requests`` errors are translated here into :class:`harness.errors.DockerError` with a message that says what to do.

Every container, network and per-run volume carries the kit's labels (``io.chimeraforge.kit=1``, the run id,
the kit version and ``com.docker.compose.project``), so :func:`reap` can remove whatever a crash left behind.
The shared model volume is never removed by a stack.
"""

from __future__ import annotations

import re
import secrets
import shlex
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal

import docker
import docker.errors
import docker.types
import requests.exceptions
import yaml
from docker.models.containers import Container

from harness.errors import BadInputError, DockerError
from harness.settings import OllamaServerSettings

COMPOSE_DIR = Path(__file__).resolve().parents[2] / "compose"
MODEL_VOLUME = "chimeraforge-models"
Client = docker.DockerClient
"""The engine client type, for modules that hold a client but may not import ``docker`` themselves."""

LABEL_KIT = "io.chimeraforge.kit"
LABEL_RUN_ID = "io.chimeraforge.run_id"
LABEL_KIT_VERSION = "io.chimeraforge.kit_version"
LABEL_ROLE = "io.chimeraforge.role"
LABEL_READY_HTTP = "io.chimeraforge.ready_http"
LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
ROLE_MODEL_STORE = "model-store"

GPU_HINT = "install the NVIDIA Container Toolkit, or rehearse with --backend sim"
ENGINE_HINT = "start it or check DOCKER_HOST"

Publish = Literal["ephemeral", "as_written", "none"]
Topology = Literal["single", "dual"]
Backend = Literal["ollama", "sim"]

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

    def to_docker(self) -> docker.types.Healthcheck:
        ns = 1_000_000_000
        return docker.types.Healthcheck(
            test=list(self.test),
            interval=int(self.interval_s * ns),
            timeout=int(self.timeout_s * ns),
            retries=self.retries,
            start_period=int(self.start_period_s * ns),
        )


@dataclass(frozen=True)
class GpuRequest:
    """One ``deploy.resources.reservations.devices`` entry; ``count`` -1 means all."""

    driver: str
    count: int | None
    device_ids: tuple[str, ...]
    capabilities: tuple[str, ...]

    def to_device_request(self) -> docker.types.DeviceRequest:
        # Docker's capabilities are an OR of AND-lists; a compose entry is one AND-list.
        return docker.types.DeviceRequest(
            driver=self.driver,
            count=0 if self.device_ids else (-1 if self.count is None else self.count),
            device_ids=list(self.device_ids),
            capabilities=[list(self.capabilities)],
        )


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
_LOOPBACK = {"127.0.0.1", "::1"}
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
    if host_ip not in _LOOPBACK:
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
    if backend == "sim":
        files.append(compose_dir / "sim.override.yml")
        if topology == "dual":
            files.append(compose_dir / "sim-dual.override.yml")
    return files


def stack_variables(
    server: OllamaServerSettings,
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


@contextmanager
def _docker_op(action: str) -> Iterator[None]:
    """Translate Docker SDK and requests errors into :class:`DockerError` with a next step."""
    try:
        yield
    except DockerError:
        raise
    except docker.errors.ImageNotFound as exc:
        raise DockerError(f"{action}: image not found ({_explain(exc)})", hint="build it with `invoke build`") from None
    except docker.errors.APIError as exc:
        text = _explain(exc)
        low = text.lower()
        if "could not select device driver" in low or "nvidia-container" in low or "unknown runtime" in low:
            raise DockerError(f"{action}: no NVIDIA GPU visible to Docker ({text})", hint=GPU_HINT) from None
        if "port is already allocated" in low or "address already in use" in low:
            raise DockerError(
                f"{action}: {text}", hint="free the host port or let the kit pick an ephemeral one"
            ) from None
        raise DockerError(f"{action} failed: {text}", hint="see `docker info` and the engine log") from None
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        raise DockerError(f"Docker engine not reachable during {action} ({_explain(exc)})", hint=ENGINE_HINT) from None
    except requests.exceptions.RequestException as exc:
        raise DockerError(f"{action}: the engine did not answer in time ({_explain(exc)})", hint=ENGINE_HINT) from None


def _explain(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def connect(base_url: str | None = None, *, timeout_s: float = 120.0) -> docker.DockerClient:
    """A client for the engine; with ``base_url`` None the SDK itself reads ``DOCKER_HOST`` (not the kit)."""
    with _docker_op("connecting"):
        try:
            client = (
                docker.DockerClient(base_url=base_url, timeout=int(timeout_s))
                if base_url
                else docker.from_env(timeout=int(timeout_s))
            )
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DockerError(f"Docker engine not reachable ({_explain(exc)})", hint=ENGINE_HINT) from None
    return client


def gpu_visible(client: docker.DockerClient) -> bool:
    """Whether Docker can hand an NVIDIA GPU to a container (``--backend auto`` picks Ollama when true).

    True when the engine lists an ``nvidia`` runtime (NVIDIA Container Toolkit) or has discovered NVIDIA CDI
    devices (newer engines).
    """
    with _docker_op("reading docker info"):
        info = client.info()
    return _info_gpu_visible(info)


def _info_gpu_visible(info: Mapping[str, Any]) -> bool:
    runtimes = info.get("Runtimes") or {}
    if "nvidia" in runtimes or info.get("DefaultRuntime") == "nvidia":
        return True
    devices = info.get("DiscoveredDevices") or []
    return any(str(d.get("ID", "")).startswith("nvidia.com/gpu") for d in devices if isinstance(d, dict))


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


def engine_facts(client: docker.DockerClient) -> EngineFacts:
    """The engine's version, API version, runtimes (is ``nvidia`` registered?), root dir and host figures."""
    with _docker_op("reading docker version and info"):
        version = client.version()
        info = client.info()
    runtimes = tuple(sorted(info.get("Runtimes") or {}))
    return EngineFacts(
        server_version=str(version.get("Version") or info.get("ServerVersion") or ""),
        api_version=str(version.get("ApiVersion") or ""),
        operating_system=str(info.get("OperatingSystem") or ""),
        kernel_version=str(info.get("KernelVersion") or version.get("KernelVersion") or ""),
        architecture=str(info.get("Architecture") or version.get("Arch") or ""),
        runtimes=runtimes,
        default_runtime=str(info.get("DefaultRuntime") or ""),
        nvidia_runtime="nvidia" in runtimes,
        gpu_visible=_info_gpu_visible(info),
        root_dir=str(info.get("DockerRootDir") or ""),
        storage_driver=str(info.get("Driver") or ""),
        cgroup_version=str(info["CgroupVersion"]) if info.get("CgroupVersion") else None,
        cpu_count=int(info.get("NCPU") or 0),
        memory_total_bytes=int(info.get("MemTotal") or 0),
    )


@dataclass(frozen=True)
class ImageFacts:
    """A local image as the engine describes it. ``repo_digests`` is empty for an image that never came from
    (or went to) a registry, e.g. everything the kit builds offline: its ``id`` is then its only pin."""

    reference: str
    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    created: str
    size_bytes: int
    labels: Mapping[str, str]


def image_facts(client: docker.DockerClient, reference: str) -> ImageFacts:
    """Inspect one local image (by tag, digest reference or ID); the kit's own labels are kept, others dropped."""
    with _docker_op(f"inspecting image {reference}"):
        try:
            image = client.images.get(reference)
        except docker.errors.ImageNotFound:
            raise DockerError(f"image {reference} is not on this engine", hint="run `invoke build`") from None
    attrs = image.attrs or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return ImageFacts(
        reference=reference,
        id=str(image.id),
        repo_tags=tuple(sorted(attrs.get("RepoTags") or [])),
        repo_digests=tuple(sorted(attrs.get("RepoDigests") or [])),
        created=str(attrs.get("Created") or ""),
        size_bytes=int(attrs.get("Size") or 0),
        labels={k: str(v) for k, v in sorted(labels.items()) if k.startswith("io.chimeraforge.")},
    )


def image_id(client: docker.DockerClient, reference: str) -> str:
    """The ``sha256:…`` ID of a local image (what a sweep records, so a resume or a bundle uses the same bytes)."""
    with _docker_op(f"inspecting image {reference}"):
        try:
            return str(client.images.get(reference).id)
        except docker.errors.ImageNotFound:
            raise DockerError(f"image {reference} is not on this engine", hint="run `invoke build`") from None


def project_name(run_id: str) -> str:
    """``cfk-<run id>-<short random>``: unique per stack, valid as a compose project and container name."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", run_id.lower()).strip("-_")[:40] or "run"
    return f"cfk-{slug}-{secrets.token_hex(3)}"


def ensure_model_volume(client: docker.DockerClient, name: str = MODEL_VOLUME, *, kit_version: str) -> None:
    """Create the shared model store when missing (labelled as the kit's, with the role that reap skips)."""
    with _docker_op(f"checking volume {name}"):
        try:
            client.volumes.get(name)
            return
        except docker.errors.NotFound:
            pass
        client.volumes.create(
            name=name, labels={LABEL_KIT: "1", LABEL_ROLE: ROLE_MODEL_STORE, LABEL_KIT_VERSION: kit_version}
        )


# ------------------------------------------------------------------------------------------- stack


@dataclass(frozen=True)
class ContainerRun:
    """What an agent container did: exit code, output, duration and (when sampled) its memory peak."""

    name: str
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    oom_killed: bool
    memory_peak_bytes: int | None
    memory_source: str | None


class _StatsSampler:
    """Follows ``docker stats`` while a container runs; keeps the highest memory figure it saw.

    On cgroup v1 the engine reports ``max_usage`` (the kernel's peak since start), so the last sample before
    exit is the true peak up to then; on cgroup v2 only ``usage`` exists and the figure is a sampled peak
    (about one sample per second), recorded as such.
    """

    def __init__(self, container: Container) -> None:
        self.peak_bytes: int | None = None
        self.source: str | None = None
        self._container = container
        self._thread = threading.Thread(target=self._run, name=f"stats-{container.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with suppress(Exception):
            for sample in self._container.stats(stream=True, decode=True):
                if not isinstance(sample, dict):
                    continue
                mem = sample.get("memory_stats") or {}
                if mem.get("max_usage"):
                    value, source = int(mem["max_usage"]), "cgroup_v1_max_usage"
                elif mem.get("usage"):
                    value, source = int(mem["usage"]), "sampled_usage"
                else:
                    continue
                if self.peak_bytes is None or value > self.peak_bytes:
                    self.peak_bytes, self.source = value, source

    def join(self, timeout_s: float = 0.5) -> None:
        """Give a sample in flight a moment; after the exit no sample can raise the peak any more.

        The engine does not end a stats stream when its container exits (it ends when the container is removed),
        so a long join only waits for its own timeout: 3 s per agent container was half of a simulated run.
        """
        self._thread.join(timeout_s)


_Handler = Callable[[int, FrameType | None], Any] | int | None


class Stack:
    """One compose project for one run: ``up`` creates, ``down`` removes, both idempotent.

    Use as a context manager (``with Stack(...) as stack:`` brings it up and always tears it down). While up,
    SIGINT/SIGTERM tear it down before the previous handler runs (or the process exits with 130/143).
    """

    def __init__(
        self,
        project: ComposeProject,
        *,
        client: docker.DockerClient,
        run_id: str,
        kit_version: str,
        publish: Publish = "ephemeral",
        profiles: Sequence[str] = (),
        ready_timeout_s: float = 180.0,
        handle_signals: bool = True,
        name: str | None = None,
    ) -> None:
        self.project = project
        self.client = client
        self.run_id = run_id
        self.kit_version = kit_version
        self.publish = publish
        self.profiles = tuple(profiles)
        self.ready_timeout_s = ready_timeout_s
        self.handle_signals = handle_signals
        self.name = name or project_name(run_id)
        self._containers: dict[str, Container] = {}
        self._networks: dict[str, str] = {}
        self._previous_handlers: dict[int, _Handler] = {}
        self._agent_seq = 0

    # -- labels and names

    def labels(self, service: str | None = None, **extra: str) -> dict[str, str]:
        """The labels on everything this stack creates."""
        out = {
            LABEL_KIT: "1",
            LABEL_RUN_ID: self.run_id,
            LABEL_KIT_VERSION: self.kit_version,
            LABEL_PROJECT: self.name,
        }
        if service:
            out[LABEL_SERVICE] = service
        out.update(extra)
        return out

    def _volume_name(self, key: str) -> str:
        spec = self.project.volumes[key]
        if spec.external:
            return spec.name or key
        return f"{self.name}_{spec.name or key}"

    # -- context manager

    def __enter__(self) -> Stack:
        self.up()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.down()
        except DockerError as down_exc:
            if exc is None:
                raise
            exc.add_note(f"and tearing down stack {self.name} failed too: {down_exc}")

    # -- up

    def up(self) -> None:
        """Create networks and containers in ``depends_on`` order and wait until every service is ready.

        On any failure (or a signal) everything already created is removed before the error propagates.
        """
        self._install_signal_handlers()
        try:
            deadline = time.monotonic() + self.ready_timeout_s
            order = self.project.start_order(self.profiles)
            self._ensure_volumes(order)
            self._create_networks(order)
            for spec in order:
                for dep, condition in spec.depends_on.items():
                    self._wait_service(dep, deadline, healthy=condition == "service_healthy", http=False)
                self._start_service(spec)
            for spec in order:
                # A service with an HTTP readiness probe is ready when the probe answers: Docker's own health
                # status (polled at the healthcheck interval, 1 s or more) would only say the same thing later.
                self._wait_service(spec.name, deadline, healthy=spec.ready_http is None, http=True)
        except BaseException:
            self.down()
            raise

    def _ensure_volumes(self, order: Sequence[ServiceSpec]) -> None:
        used = {m.source for s in order for m in s.mounts if m.kind == "volume"}
        for key in sorted(used):
            spec = self.project.volumes[key]
            name = self._volume_name(key)
            if spec.external:
                ensure_model_volume(self.client, name, kit_version=self.kit_version)
                continue
            with _docker_op(f"creating volume {name}"):
                self.client.volumes.create(
                    name=name, driver=spec.driver or "local", labels=self.labels(**dict(spec.labels))
                )

    def _create_networks(self, order: Sequence[ServiceSpec]) -> None:
        used = sorted({n for s in order for n in s.networks})
        for key in used:
            spec = self.project.networks[key]
            name = f"{self.name}_{key}"
            with _docker_op(f"creating network {name}"):
                self.client.networks.create(
                    name,
                    driver=spec.driver,
                    internal=spec.internal,
                    labels=self.labels(**{"com.docker.compose.network": key, **spec.labels}),
                    check_duplicate=True,
                )
            self._networks[key] = name

    def _port_bindings(self, spec: ServiceSpec) -> dict[str, Any]:
        if self.publish == "none":
            return {}
        out: dict[str, Any] = {}
        for port in spec.ports:
            host_port = port.host_port if self.publish == "as_written" else None
            out[f"{port.container_port}/{port.protocol}"] = (port.host_ip, host_port)
        return out

    def _create_kwargs(self, spec: ServiceSpec, *, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
        mounts = []
        for m in spec.mounts:
            source = self._volume_name(m.source) if m.kind == "volume" else m.source
            mounts.append(docker.types.Mount(target=m.target, source=source, type=m.kind, read_only=m.read_only))
        first_net = self._networks[spec.networks[0]]
        kwargs: dict[str, Any] = {
            "name": name,
            "hostname": spec.name,
            "labels": {**spec.labels, **labels},
            "environment": dict(spec.environment),
            "mounts": mounts,
            "ports": self._port_bindings(spec),
            "network": first_net,
            "networking_config": {first_net: self.client.api.create_endpoint_config(aliases=[spec.name])},
            "detach": True,
        }
        if spec.command is not None:
            kwargs["command"] = list(spec.command)
        if spec.entrypoint is not None:
            kwargs["entrypoint"] = list(spec.entrypoint)
        if spec.healthcheck is not None:
            kwargs["healthcheck"] = spec.healthcheck.to_docker()
        if spec.user is not None:
            kwargs["user"] = spec.user
        if spec.working_dir:
            kwargs["working_dir"] = spec.working_dir
        if spec.cap_drop:
            kwargs["cap_drop"] = list(spec.cap_drop)
        if spec.cap_add:
            kwargs["cap_add"] = list(spec.cap_add)
        if spec.security_opt:
            kwargs["security_opt"] = list(spec.security_opt)
        if spec.read_only:
            kwargs["read_only"] = True
        if spec.tmpfs:
            kwargs["tmpfs"] = dict(spec.tmpfs)
        if spec.gpus:
            kwargs["device_requests"] = [g.to_device_request() for g in spec.gpus]
        if spec.init is not None:
            kwargs["init"] = spec.init
        if spec.stop_grace_period_s is not None:
            kwargs["stop_signal"] = "SIGTERM"
        return kwargs

    def _start_service(self, spec: ServiceSpec) -> None:
        if not spec.image:
            raise DockerError(f"service {spec.name} has only a build section", hint="build it with `invoke build`")
        name = f"{self.name}-{spec.name}-1"
        kwargs = self._create_kwargs(spec, name=name, labels=self.labels(spec.name))
        with _docker_op(f"starting service {spec.name} ({spec.image})"):
            container = self.client.containers.create(spec.image, **kwargs)
            self._containers[spec.name] = container
            for extra in spec.networks[1:]:
                self.client.networks.get(self._networks[extra]).connect(container, aliases=[spec.name])
            container.start()

    def _wait_service(self, service: str, deadline: float, *, healthy: bool, http: bool) -> None:
        spec = self.project.services[service]
        container = self._containers[service]
        probe = spec.ready_http if http else None
        while True:
            with _docker_op(f"inspecting {service}"):
                container.reload()
            state = container.attrs.get("State", {})
            if state.get("Status") in ("exited", "dead"):
                raise DockerError(
                    f"service {service} exited with code {state.get('ExitCode')} before it was ready"
                    + self._log_tail(service),
                    hint="see the log lines above",
                )
            health = (state.get("Health") or {}).get("Status")
            ok = state.get("Status") == "running"
            if health == "unhealthy" and (healthy or probe is not None):
                raise DockerError(f"service {service} is unhealthy" + self._log_tail(service), hint="see the log")
            if healthy and health is not None:
                ok = ok and health == "healthy"
            if ok and probe is not None:
                try:
                    url: str | None = self.url(service, probe[0])
                except DockerError:
                    url = None  # it stopped between the two inspections: the next one reports why
                ok = url is not None and self._http_ok(url + probe[1])
            if ok:
                return
            if time.monotonic() > deadline:
                raise DockerError(
                    f"service {service} not ready after {self.ready_timeout_s:.0f} s"
                    f" (state {state.get('Status')}, health {health})" + self._log_tail(service),
                    hint="raise the readiness timeout or see the log lines above",
                )
            time.sleep(0.05 if probe is not None else 0.25)  # a refused probe costs microseconds: poll it often

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                return 200 <= int(resp.status) < 300
        except (OSError, urllib.error.URLError, ValueError):
            return False

    # -- addresses and logs

    def container(self, service: str) -> Container:
        """The container of a running service."""
        try:
            return self._containers[service]
        except KeyError:
            raise BadInputError(f"stack {self.name} has no running service {service!r}") from None

    def url(self, service: str, container_port: int = 11434) -> str:
        """How the host reaches a service: its 127.0.0.1 published port, else its IP on the project network."""
        container = self.container(service)
        with _docker_op(f"inspecting {service}"):
            container.reload()
        settings = container.attrs.get("NetworkSettings", {})
        for binding in (settings.get("Ports") or {}).get(f"{container_port}/tcp") or []:
            if binding.get("HostIp") in _LOOPBACK and binding.get("HostPort"):
                return f"http://{binding['HostIp']}:{binding['HostPort']}"
        for net in (settings.get("Networks") or {}).values():
            if net.get("IPAddress"):
                return f"http://{net['IPAddress']}:{container_port}"
        raise DockerError(f"service {service} has no address", hint="is it running?")

    def internal_url(self, service: str, container_port: int = 11434) -> str:
        """How containers on the project network reach a service (by its name)."""
        self.container(service)
        return f"http://{service}:{container_port}"

    def published_port(self, service: str, container_port: int = 11434) -> int | None:
        """The host port a service's container port is published on (None when not published)."""
        url = self.url(service, container_port)
        host = url.removeprefix("http://")
        return int(host.rsplit(":", 1)[1]) if host.startswith(tuple(_LOOPBACK)) else None

    def logs(self, service: str, *, tail: int | None = None) -> str:
        """A service's combined stdout/stderr."""
        with _docker_op(f"reading logs of {service}"):
            raw = self.container(service).logs(stdout=True, stderr=True, tail="all" if tail is None else tail)
        return bytes(raw).decode("utf-8", errors="replace")

    def _log_tail(self, service: str, lines: int = 20) -> str:
        try:
            text = self.logs(service, tail=lines).rstrip()
        except (DockerError, BadInputError):
            return ""
        return f"; last log lines of {service}:\n{text}" if text else f"; {service} wrote no log lines"

    # -- agents

    def run_container(
        self,
        command: Sequence[str],
        *,
        image: str | None = None,
        template: str | None = "agent",
        name: str = "agent",
        environment: Mapping[str, str] | None = None,
        timeout_s: float = 3600.0,
        collect_stats: bool = True,
    ) -> ContainerRun:
        """Run one container to completion on the project network and remove it.

        Settings come from the ``template`` service of the compose file when it has one (user, read-only root,
        tmpfs, dropped capabilities, environment); ``image`` and ``environment`` override. The container is
        labelled like the stack's, so a crash leaves nothing ``reap`` cannot find.
        """
        if not self._networks:
            raise DockerError(f"stack {self.name} is not up", hint="call up() first")
        base = self.project.services.get(template) if template else None
        if base is None:
            base = ServiceSpec(
                name=name,
                image=image,
                networks=(next(iter(self._networks)),),
                cap_drop=("ALL",),
                security_opt=("no-new-privileges:true",),
            )
        spec = replace(
            base,
            name=name,
            image=image or base.image,
            command=tuple(command),
            environment={**base.environment, **(environment or {})},
            ports=(),
            healthcheck=None,
            depends_on={},
            gpus=(),
        )
        if not spec.image:
            raise BadInputError("run_container needs an image (or a template service with one)")
        for net in spec.networks:
            if net not in self._networks:
                raise BadInputError(f"run_container: network {net!r} is not part of stack {self.name}")
        self._agent_seq += 1
        cname = f"{self.name}-{name}-{self._agent_seq}"
        kwargs = self._create_kwargs(spec, name=cname, labels=self.labels(name, **{LABEL_ROLE: "agent"}))
        sampler: _StatsSampler | None = None
        with _docker_op(f"running container {cname} ({spec.image})"):
            container = self.client.containers.create(spec.image, **kwargs)
        timed_out = False
        try:
            with _docker_op(f"running container {cname}"):
                start = time.monotonic()
                container.start()
                if collect_stats:
                    sampler = _StatsSampler(container)
                try:
                    status = container.wait(timeout=timeout_s)
                    exit_code: int | None = int(status.get("StatusCode", -1))
                except requests.exceptions.RequestException:
                    timed_out, exit_code = True, None
                    with suppress(docker.errors.APIError):
                        container.kill()
                duration_s = time.monotonic() - start
                if sampler is not None:
                    sampler.join()
                stdout = bytes(container.logs(stdout=True, stderr=False)).decode("utf-8", errors="replace")
                stderr = bytes(container.logs(stdout=False, stderr=True)).decode("utf-8", errors="replace")
                container.reload()
                oom = bool(container.attrs.get("State", {}).get("OOMKilled", False))
        finally:
            with suppress(docker.errors.APIError, requests.exceptions.RequestException):
                container.remove(force=True)
        return ContainerRun(
            name=cname,
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            duration_s=duration_s,
            timed_out=timed_out,
            oom_killed=oom,
            memory_peak_bytes=sampler.peak_bytes if sampler else None,
            memory_source=sampler.source if sampler else None,
        )

    # -- down

    def down(self) -> None:
        """Remove this project's containers, networks and per-run volumes (never the shared model volume).

        Finds everything by the project label, not only what this object remembers, so a container whose
        creation was interrupted is removed too. Idempotent.
        """
        try:
            leftovers = _remove_labelled(self.client, f"{LABEL_PROJECT}={self.name}", volumes=True)
            self._containers.clear()
            self._networks.clear()
            if leftovers:
                raise DockerError(
                    f"stack {self.name}: could not remove {', '.join(leftovers)}",
                    hint="run `invoke clean` to reap the kit's leftovers",
                )
        finally:
            self._restore_signal_handlers()

    # -- signals

    def _install_signal_handlers(self) -> None:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signum in self._previous_handlers:
                continue
            previous = signal.getsignal(signum)
            if previous == signal.SIG_IGN:
                continue
            self._previous_handlers[signum] = previous
            signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in list(self._previous_handlers.items()):
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous)
            del self._previous_handlers[signum]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous_handlers.get(signum)
        try:
            self.down()
        finally:
            if callable(previous):
                previous(signum, frame)
            elif signum == signal.SIGINT:
                raise KeyboardInterrupt
            else:
                raise SystemExit(128 + signum)


# ------------------------------------------------------------------------------------------- reaping


@dataclass(frozen=True)
class ReapReport:
    """What :func:`reap` removed (names), and what it could not."""

    containers: tuple[str, ...]
    networks: tuple[str, ...]
    volumes: tuple[str, ...]
    failed: tuple[str, ...]


def _remove_labelled(
    client: docker.DockerClient, label: str, *, volumes: bool, removed: dict[str, list[str]] | None = None
) -> list[str]:
    """Remove containers, then networks (then volumes) carrying ``label``; returns what is still there."""
    removed = removed if removed is not None else {"containers": [], "networks": [], "volumes": []}
    leftovers: list[str] = []
    for _attempt in range(3):
        leftovers = []
        with _docker_op("listing the kit's containers"):
            containers = client.containers.list(all=True, filters={"label": label})
        for c in containers:
            try:
                c.remove(force=True, v=False)
                removed["containers"].append(str(c.name))
            except docker.errors.NotFound:
                pass
            except (docker.errors.APIError, requests.exceptions.RequestException):
                leftovers.append(f"container {c.name}")
        with _docker_op("listing the kit's networks"):
            networks = client.networks.list(filters={"label": label})
        for n in networks:
            try:
                n.remove()
                removed["networks"].append(str(n.name))
            except docker.errors.NotFound:
                pass
            except (docker.errors.APIError, requests.exceptions.RequestException):
                leftovers.append(f"network {n.name}")
        if volumes:
            with _docker_op("listing the kit's volumes"):
                vols = client.volumes.list(filters={"label": label})
            for v in vols:
                if (v.attrs.get("Labels") or {}).get(LABEL_ROLE) == ROLE_MODEL_STORE or v.name == MODEL_VOLUME:
                    continue
                try:
                    v.remove()
                    removed["volumes"].append(str(v.name))
                except docker.errors.NotFound:
                    pass
                except (docker.errors.APIError, requests.exceptions.RequestException):
                    leftovers.append(f"volume {v.name}")
        if not leftovers:
            break
        time.sleep(0.5)
    return leftovers


def reap(
    client: docker.DockerClient, *, run_id: str | None = None, project: str | None = None, volumes: bool = False
) -> ReapReport:
    """Remove everything labelled ``io.chimeraforge.kit=1`` (or one run's, or one project's) that is left.

    Containers and networks always; per-run volumes when ``volumes``; the shared model volume never. Backs
    ``invoke clean`` and ``invoke stack.down``.
    """
    label = f"{LABEL_PROJECT}={project}" if project else f"{LABEL_RUN_ID}={run_id}" if run_id else f"{LABEL_KIT}=1"
    removed: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
    failed = _remove_labelled(client, label, volumes=volumes, removed=removed)
    return ReapReport(
        containers=tuple(sorted(set(removed["containers"]))),
        networks=tuple(sorted(set(removed["networks"]))),
        volumes=tuple(sorted(set(removed["volumes"]))),
        failed=tuple(failed),
    )
