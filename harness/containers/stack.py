"""The ``Stack`` runtime: one fresh, labelled compose project per run, always torn down.

Runs the typed specs of :mod:`harness.containers.compose` with the Docker SDK, through the engine helpers of
:mod:`harness.containers.engine` (which translate SDK errors). While up, SIGINT/SIGTERM tear the stack down.
"""

from __future__ import annotations

import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, replace
from types import FrameType, TracebackType
from typing import Any

import docker
import docker.errors
import docker.types
import requests.exceptions
from docker.models.containers import Container

from harness.containers import controller, policy
from harness.containers.compose import LOOPBACK, ComposeProject, GpuRequest, HealthSpec, Publish, ServiceSpec
from harness.containers.engine import (
    LABEL_KIT,
    LABEL_KIT_VERSION,
    LABEL_PROJECT,
    LABEL_ROLE,
    LABEL_RUN_ID,
    LABEL_SERVICE,
    docker_op,
    ensure_model_volume,
    project_name,
    remove_labelled,
)
from harness.errors import BadInputError, DockerError

# ------------------------------------------------------------------------------------------- stack


def healthcheck(spec: HealthSpec) -> docker.types.Healthcheck:
    """A compose healthcheck in the SDK's form (durations in nanoseconds)."""
    ns = 1_000_000_000
    return docker.types.Healthcheck(
        test=list(spec.test),
        interval=int(spec.interval_s * ns),
        timeout=int(spec.timeout_s * ns),
        retries=spec.retries,
        start_period=int(spec.start_period_s * ns),
    )


def device_request(gpu: GpuRequest) -> docker.types.DeviceRequest:
    """A compose GPU reservation in the SDK's form."""
    # Docker's capabilities are an OR of AND-lists; a compose entry is one AND-list.
    return docker.types.DeviceRequest(
        driver=gpu.driver,
        count=0 if gpu.device_ids else (-1 if gpu.count is None else gpu.count),
        device_ids=list(gpu.device_ids),
        capabilities=[list(gpu.capabilities)],
    )


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

    def join(self, timeout_s: float = 0.05) -> None:
        """Give a sample already on the wire a moment to be read; after the exit no sample can raise the peak.

        The engine does not end a stats stream when its container exits (it ends when the container is removed),
        so any join waits for its whole timeout: 3 s, then 0.5 s per agent container were a large part of a
        simulated run. A sample in flight arrives within milliseconds of being taken.
        """
        self._thread.join(timeout_s)


def _waves(order: Sequence[ServiceSpec]) -> list[list[ServiceSpec]]:
    """``order`` (dependencies first) grouped by depth: a service's wave comes after all its dependencies'."""
    depth: dict[str, int] = {}
    for spec in order:
        depth[spec.name] = 1 + max((depth[d] for d in spec.depends_on if d in depth), default=-1)
    return [[s for s in order if depth[s.name] == level] for level in range(max(depth.values(), default=-1) + 1)]


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
        sweep: str | None = None,
        writable_models: bool = False,
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
        self.sweep = sweep
        """Key of the artifact folder this stack runs for (harness.containers.controller.sweep_key)."""
        self.writable_models = writable_models
        """Only the step that pulls into the shared model store mounts it read-write."""
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
            **controller.current().labels(self.sweep),
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
            for wave in _waves(order):
                for spec in wave:
                    for dep, condition in spec.depends_on.items():
                        self._wait_service(dep, deadline, healthy=condition == "service_healthy", http=False)
                self._start_wave(wave)
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
            with docker_op(f"creating volume {name}"):
                self.client.volumes.create(
                    name=name, driver=spec.driver or "local", labels=self.labels(**dict(spec.labels))
                )

    def _create_networks(self, order: Sequence[ServiceSpec]) -> None:
        used = sorted({n for s in order for n in s.networks})
        for key in used:
            spec = self.project.networks[key]
            name = f"{self.name}_{key}"
            with docker_op(f"creating network {name}"):
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
            shared = m.kind == "volume" and self.project.volumes[m.source].external
            read_only = m.read_only or (shared and not self.writable_models)
            mounts.append(docker.types.Mount(target=m.target, source=source, type=m.kind, read_only=read_only))
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
            kwargs["healthcheck"] = healthcheck(spec.healthcheck)
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
            kwargs["device_requests"] = [device_request(g) for g in spec.gpus]
        kwargs.update(policy.runtime_limits(spec, kwargs["labels"]))
        if spec.init is not None:
            kwargs["init"] = spec.init
        if spec.stop_grace_period_s is not None:
            kwargs["stop_signal"] = "SIGTERM"
        return kwargs

    def _start_wave(self, wave: Sequence[ServiceSpec]) -> None:
        """Start services that do not depend on each other at once (the two servers of a dual stack): each
        create + start is a few engine round trips, paid once per run instead of once per server."""
        if len(wave) == 1:
            self._start_service(wave[0])
            return
        with ThreadPoolExecutor(max_workers=len(wave), thread_name_prefix=f"start-{self.name}") as pool:
            futures = [pool.submit(self._start_service, spec) for spec in wave]
        for future in futures:  # every start has ended (and registered its container for down()) by now
            error = future.exception()
            if error is not None:
                raise error

    def _start_service(self, spec: ServiceSpec) -> None:
        if not spec.image:
            raise DockerError(f"service {spec.name} has only a build section", hint="build it with `invoke build`")
        name = f"{self.name}-{spec.name}-1"
        kwargs = self._create_kwargs(spec, name=name, labels=self.labels(spec.name))
        with docker_op(f"starting service {spec.name} ({spec.image})"):
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
            with docker_op(f"inspecting {service}"):
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
        with docker_op(f"inspecting {service}"):
            container.reload()
        settings = container.attrs.get("NetworkSettings", {})
        for binding in (settings.get("Ports") or {}).get(f"{container_port}/tcp") or []:
            if binding.get("HostIp") in LOOPBACK and binding.get("HostPort"):
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
        return int(host.rsplit(":", 1)[1]) if host.startswith(tuple(LOOPBACK)) else None

    def logs(self, service: str, *, tail: int | None = None) -> str:
        """A service's combined stdout/stderr."""
        with docker_op(f"reading logs of {service}"):
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
        with docker_op(f"running container {cname} ({spec.image})"):
            container = self.client.containers.create(spec.image, **kwargs)
        timed_out = False
        try:
            with docker_op(f"running container {cname}"):
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
            leftovers = remove_labelled(self.client, f"{LABEL_PROJECT}={self.name}", volumes=True)
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
