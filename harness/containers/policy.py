"""What a kit container may be, whatever compose file (the kit's own or a bundle's) asks for.

Refused at translation, by name: privileged mode, added capabilities, host namespaces (network, pid, ipc, uts,
user, cgroup), devices and sysctls, root users, security options that switch confinement off, and bind mounts
of host paths outside :data:`BIND_ALLOW_LIST`. Applied at creation: a non-root user where none is named, every
capability dropped, no new privileges, memory and process limits per role, and the shared model volume
read-only except for the preparation step that pulls into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from harness.errors import BadInputError

if TYPE_CHECKING:  # compose calls this module while it translates: no import cycle at run time
    from harness.containers.compose import MountSpec, ServiceSpec

FORBIDDEN_KEYS = {
    "privileged": "privileged mode gives the container the whole host",
    "network_mode": "a host network namespace bypasses the loopback-only ports",
    "pid": "a host pid namespace shows (and signals) every host process",
    "ipc": "a host ipc namespace shares the host's shared memory",
    "uts": "a host uts namespace lets the container rename the host",
    "userns_mode": "leaving the user namespace undoes the non-root user",
    "cgroup": "a host cgroup namespace exposes the host's resource controls",
    "cgroup_parent": "another cgroup parent escapes the kit's limits",
    "devices": "host devices are not needed (GPUs come through device reservations)",
    "device_cgroup_rules": "device rules open host devices",
    "sysctls": "kernel parameters are not the kit's to change",
    "volumes_from": "another container's mounts are not the kit's",
}
"""Compose keys no kit service may use, and why (the translator names them instead of 'unknown key')."""

BIND_ALLOW_LIST = (PurePosixPath("/etc/localtime"), PurePosixPath("/etc/timezone"))
"""The only host paths a kit container may bind-mount, and only read-only: the host's time zone."""

_UNCONFINED = ("seccomp=unconfined", "apparmor=unconfined", "label=disable", "label:disable", "systempaths=unconfined")

MEMORY_LIMIT_BYTES = {"ollama-server": 64 << 30, "sim-server": 2 << 30, "agent": 2 << 30}
"""Per role: a real Ollama holds the model's host-side buffers; a simulator or an agent needs far less."""
DEFAULT_MEMORY_LIMIT_BYTES = 2 << 30
DEFAULT_USER = "10001:10001"
"""Who a container runs as when its compose service names no user (the kit images' own ``kit`` user)."""
PIDS_LIMIT = 4096
"""Processes and threads per container: Ollama's runner is the most threaded, with a few hundred."""


def _fail(where: str, message: str) -> BadInputError:
    return BadInputError(
        f"{where}: {message}",
        hint="kit containers run unprivileged as a non-root user; use the kit's own compose files",
    )


def check_node(node: Mapping[str, Any], where: str) -> None:
    """Refuse forbidden keys by name before anything else is parsed."""
    for key, why in FORBIDDEN_KEYS.items():
        if key in node:
            raise _fail(f"{where}.{key}", f"refused: {why}")


def _is_root(user: str) -> bool:
    name = user.split(":", 1)[0].strip()
    return name in ("0", "root", "")


def check_service(spec: ServiceSpec, where: str) -> None:
    """Refuse what would give a container power over the host."""
    if spec.cap_add:
        raise _fail(f"{where}.cap_add", f"refused: added capabilities ({', '.join(spec.cap_add)})")
    if spec.user is not None and _is_root(spec.user):
        raise _fail(f"{where}.user", f"refused: {spec.user!r} is root")
    for opt in spec.security_opt:
        if opt.replace(" ", "") in _UNCONFINED or "unconfined" in opt:
            raise _fail(f"{where}.security_opt", f"refused: {opt!r} switches confinement off")
    for mount in spec.mounts:
        _check_mount(mount, where)


def _check_mount(mount: MountSpec, where: str) -> None:
    if mount.kind != "bind":
        return
    source = PurePosixPath(mount.source)
    if source not in BIND_ALLOW_LIST:
        allowed = ", ".join(str(p) for p in BIND_ALLOW_LIST)
        raise _fail(f"{where}.volumes", f"refused: bind mount of host path {source} (allowed, read-only: {allowed})")
    if not mount.read_only:
        raise _fail(f"{where}.volumes", f"refused: bind mount of {source} must be read-only (:ro)")


def role_of(spec: ServiceSpec, labels: Mapping[str, str]) -> str:
    """agent, sim-server or ollama-server: what the container is, for its limits."""
    role = labels.get("io.chimeraforge.role") or spec.labels.get("io.chimeraforge.role") or ""
    if role == "agent":
        return "agent"
    if spec.command and any("harness.sim" in part for part in spec.command):
        return "sim-server"
    return role or "other"


def runtime_limits(spec: ServiceSpec, labels: Mapping[str, str]) -> dict[str, Any]:
    """Docker create arguments every kit container gets: limits, no capabilities, no new privileges."""
    role = role_of(spec, labels)
    memory = MEMORY_LIMIT_BYTES.get(role, DEFAULT_MEMORY_LIMIT_BYTES)
    security = [o for o in spec.security_opt if not o.startswith("no-new-privileges")]
    return {
        "user": spec.user or DEFAULT_USER,
        "mem_limit": memory,
        "memswap_limit": memory,
        "pids_limit": PIDS_LIMIT,
        "cap_drop": ["ALL"],
        "security_opt": [*security, "no-new-privileges:true"],
    }
