"""Compose loading and translation (harness.containers.compose) without a Docker engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.containers.compose import (
    COMPOSE_DIR,
    compose_files,
    interpolate,
    load_compose,
    parse_duration_s,
    stack_variables,
    translate,
)
from harness.containers.stack import device_request, healthcheck
from harness.errors import BadInputError
from harness.settings import OllamaServerSettings

VARS = {"HARNESS_IMAGE": "chimeraforge/harness:test"}


def _translate(doc: str, *, gpu: bool = True) -> object:
    return translate(yaml.safe_load(doc), base_dir=Path("/base"), gpu=gpu)


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A-x}", {}, "x"),
        ("${A:-x}", {"A": "y"}, "y"),
        ("$A/${B}", {"A": "1", "B": "2"}, "1/2"),
        ("$$HOME", {"HOME": "no"}, "$HOME"),
        ("${A:+set}", {"A": "1"}, "set"),
        ("${A:+set}", {}, ""),
        ("${MISSING}", {}, ""),
        ("127.0.0.1:${P:-11434}:11434", {}, "127.0.0.1:11434:11434"),
    ],
)
def test_interpolate(text: str, variables: dict[str, str], expected: str) -> None:
    assert interpolate(text, variables) == expected


def test_interpolate_required_variable_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="REQ"):
        interpolate("${REQ:?set it}", {})


def test_interpolate_never_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "7")
    project = load_compose([COMPOSE_DIR / "single-ollama.yml"], {})
    assert project.services["ollama"].environment["OLLAMA_NUM_PARALLEL"] == "1"


def test_single_stack_translates() -> None:
    project = load_compose([COMPOSE_DIR / "single-ollama.yml"], {"OLLAMA_NUM_PARALLEL": "2"})
    ollama = project.services["ollama"]
    assert ollama.image == "chimeraforge/ollama:0.12.10"
    assert ollama.environment == {
        "OLLAMA_HOST": "0.0.0.0:11434",
        "OLLAMA_MODELS": "/models",
        "OLLAMA_NUM_PARALLEL": "2",
        "OLLAMA_KEEP_ALIVE": "5m",
        "OLLAMA_CONTEXT_LENGTH": "4096",
        "OLLAMA_FLASH_ATTENTION": "",  # unset: the server decides per model (never forced by the kit)
        "OLLAMA_NOPRUNE": "true",
    }
    assert [(p.host_ip, p.host_port, p.container_port) for p in ollama.ports] == [("127.0.0.1", 11434, 11434)]
    assert ollama.user == "10001:10001"
    assert ollama.cap_drop == ("ALL",)
    assert ollama.security_opt == ("no-new-privileges:true",)
    assert ollama.ready_http == (11434, "/api/version")
    assert ollama.healthcheck is not None and ollama.healthcheck.interval_s == 2.0
    assert project.volumes["models"].external and project.volumes["models"].name == "chimeraforge-models"
    assert [s.name for s in project.start_order()] == ["ollama"]
    assert [s.name for s in project.start_order(["agent"])] == ["ollama", "agent"]
    assert project.services["agent"].depends_on == {"ollama": "service_healthy"}


def test_dual_stack_has_two_servers_on_distinct_host_ports() -> None:
    project = load_compose([COMPOSE_DIR / "dual-ollama.yml"], {})
    ports = {name: project.services[name].ports[0].host_port for name in ("ollama", "ollama2")}
    assert ports == {"ollama": 11434, "ollama2": 11435}
    assert project.services["ollama2"].environment["OLLAMA_CONTEXT_LENGTH"] == "4096"


def test_sim_override_swaps_image_command_and_drops_gpu() -> None:
    files = compose_files("dual", "sim")
    project = load_compose(files, VARS, gpu=False)
    for name in ("ollama", "ollama2"):
        svc = project.services[name]
        assert svc.image == "chimeraforge/harness:test"
        assert svc.command == (
            "python", "-m", "harness.sim", "--host", "0.0.0.0", "--port", "11434",
            "--seed", "1234", "--time-scale", "1", "--shared-device", "gpu0", "--device-dir", "/work/sim-device",
            "--preload", "gemma3:latest",
            "--gpu-id", "0",  # each server's GPU (topology device_ids), named in its load log lines
        )  # fmt: skip
        assert svc.read_only and "/tmp" in svc.tmpfs  # a read-only root; the device files in a per-stack volume
        assert {(m.source, m.target) for m in svc.mounts} == {("models", "/models"), ("simdevice", "/work")}
        assert svc.gpus == ()
        assert svc.environment["OLLAMA_KEEP_ALIVE"] == "5m"  # settings untouched by the override
        assert svc.healthcheck is not None and svc.healthcheck.test[0] == "CMD"


def test_gpu_reservation_becomes_device_request() -> None:
    project = load_compose([COMPOSE_DIR / "single-ollama.yml"], {})
    (gpu,) = project.services["ollama"].gpus
    request = device_request(gpu)
    assert request.driver == "nvidia"
    assert request.count == 0 and request.device_ids == ["0"]  # one GPU per server, GPU 0 by default
    assert request.capabilities == [["gpu"]]


def test_gpu_device_ids() -> None:
    doc = """
services:
  s:
    image: x
    deploy:
      resources:
        reservations:
          devices: [{driver: nvidia, device_ids: ["0", "1"], capabilities: [gpu, utility]}]
"""
    (gpu,) = _translate(doc).services["s"].gpus  # type: ignore[attr-defined]
    request = device_request(gpu)
    assert request.device_ids == ["0", "1"]
    assert request.capabilities == [["gpu", "utility"]]


def test_stack_variables_come_from_settings() -> None:
    server = OllamaServerSettings(num_parallel=3, keep_alive="10m", context_length=2048, flash_attention=True)
    variables = stack_variables(server, harness_image="h:1", ollama_image="o:1")
    project = load_compose([COMPOSE_DIR / "single-ollama.yml"], variables)
    env = project.services["ollama"].environment
    assert (env["OLLAMA_NUM_PARALLEL"], env["OLLAMA_KEEP_ALIVE"]) == ("3", "10m")
    assert (env["OLLAMA_CONTEXT_LENGTH"], env["OLLAMA_FLASH_ATTENTION"]) == ("2048", "true")
    assert project.services["ollama"].image == "o:1"


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ("11434", ("127.0.0.1", None, 11434)),
        ("8080:11434", ("127.0.0.1", 8080, 11434)),
        ("127.0.0.1::11434", ("127.0.0.1", None, 11434)),
        ("127.0.0.1:9000:11434/tcp", ("127.0.0.1", 9000, 11434)),
        ({"target": 11434, "host_ip": "127.0.0.1", "published": 9001}, ("127.0.0.1", 9001, 11434)),
    ],
)
def test_ports_are_forced_to_loopback(port: object, expected: tuple[str, int | None, int]) -> None:
    doc = {"services": {"s": {"image": "x", "ports": [port]}}}
    (binding,) = translate(doc, base_dir=Path("/")).services["s"].ports
    assert (binding.host_ip, binding.host_port, binding.container_port) == expected


@pytest.mark.parametrize("port", ["0.0.0.0:11434:11434", "192.168.1.2:1:2", {"target": 1, "host_ip": "0.0.0.0"}])
def test_non_loopback_ports_are_refused(port: object) -> None:
    doc = {"services": {"s": {"image": "x", "ports": [port]}}}
    with pytest.raises(BadInputError, match="loopback"):
        translate(doc, base_dir=Path("/"))


def test_unknown_keys_are_named() -> None:
    with pytest.raises(BadInputError, match=r"services\.s\.privileged: refused: privileged mode"):
        _translate("services: {s: {image: x, privileged: true}}")
    with pytest.raises(BadInputError, match="configs not supported"):
        _translate("services: {s: {image: x}}\nconfigs: {}")
    with pytest.raises(BadInputError, match="limits not supported"):
        _translate("services: {s: {image: x, deploy: {resources: {limits: {cpus: '1'}}}}}")


def test_extension_fields_are_ignored() -> None:
    project = _translate("x-anchor: {a: 1}\nservices: {s: {image: x, x-note: hi}}")
    assert list(project.services) == ["s"]  # type: ignore[attr-defined]


def test_volumes_named_and_bind() -> None:
    doc = """
services:
  s:
    image: x
    volumes: ["data:/data:ro", "/etc/localtime:/etc/localtime:ro", {type: tmpfs, target: /scratch}]
volumes:
  data: {}
"""
    mounts = _translate(doc).services["s"].mounts  # type: ignore[attr-defined]
    assert [(m.kind, m.source, m.target, m.read_only) for m in mounts] == [
        ("volume", "data", "/data", True),
        ("bind", "/etc/localtime", "/etc/localtime", True),
        ("tmpfs", "", "/scratch", False),
    ]


@pytest.mark.parametrize(
    ("service", "refused"),
    [
        ('{image: x, volumes: ["/:/host"]}', "bind mount of host path /"),
        ('{image: x, volumes: ["./here:/here"]}', "bind mount of host path /base/here"),
        ('{image: x, volumes: ["/etc/localtime:/etc/localtime"]}', "must be read-only"),
        ('{image: x, user: "0:0"}', "is root"),
        ("{image: x, user: root}", "is root"),
        ("{image: x, cap_add: [SYS_ADMIN]}", "added capabilities"),
        ("{image: x, privileged: true}", "privileged mode"),
        ("{image: x, network_mode: host}", "host network namespace"),
        ("{image: x, pid: host}", "host pid namespace"),
        ("{image: x, ipc: host}", "host ipc namespace"),
        ('{image: x, devices: ["/dev/sda:/dev/sda"]}', "host devices"),
        ("{image: x, security_opt: [seccomp=unconfined]}", "switches confinement off"),
    ],
)
def test_the_translator_refuses_what_would_reach_the_host(service: str, refused: str) -> None:
    with pytest.raises(BadInputError, match=refused):
        _translate(f"services: {{s: {service}}}")


def test_undeclared_volume_and_network_are_refused() -> None:
    with pytest.raises(BadInputError, match="not declared"):
        _translate("services: {s: {image: x, volumes: ['nope:/x']}}")
    with pytest.raises(BadInputError, match="not declared"):
        _translate("services: {s: {image: x, networks: [nope]}}")


def test_depends_on_order_conditions_and_cycles() -> None:
    doc = """
services:
  c: {image: x, depends_on: {b: {condition: service_healthy}}}
  b: {image: x, depends_on: [a]}
  a: {image: x}
"""
    project = _translate(doc)
    assert [s.name for s in project.start_order()] == ["a", "b", "c"]  # type: ignore[attr-defined]
    with pytest.raises(BadInputError, match="cycle"):
        _translate("services: {a: {image: x, depends_on: [b]}, b: {image: x, depends_on: [a]}}").start_order()  # type: ignore[attr-defined]
    with pytest.raises(BadInputError, match="not supported"):
        _translate(
            "services: {a: {image: x, depends_on: {b: {condition: service_completed_successfully}}}, b: {image: x}}"
        )
    with pytest.raises(BadInputError, match="unknown service"):
        _translate("services: {a: {image: x, depends_on: [zz]}}")


def test_healthcheck_and_durations() -> None:
    assert parse_duration_s("1m30s", "d") == 90.0
    assert parse_duration_s("500ms", "d") == 0.5
    with pytest.raises(BadInputError, match="duration"):
        parse_duration_s("5 seconds", "d")
    project = _translate("services: {s: {image: x, healthcheck: {test: 'curl -f x', interval: 1s, retries: 5}}}")
    hc = project.services["s"].healthcheck  # type: ignore[attr-defined]
    assert hc.test == ("CMD-SHELL", "curl -f x")
    docker_hc = healthcheck(hc)
    assert docker_hc["Interval"] == 1_000_000_000 and docker_hc["Retries"] == 5


def test_environment_list_form_and_quoted_booleans() -> None:
    project = _translate("services: {s: {image: x, environment: ['A=1', 'B=two=2', 'C']}}")
    assert project.services["s"].environment == {"A": "1", "B": "two=2"}  # type: ignore[attr-defined]
    with pytest.raises(BadInputError, match="quoted"):
        _translate("services: {s: {image: x, environment: {A: true}}}")


def test_default_network_when_none_declared() -> None:
    project = _translate("services: {s: {image: x}}")
    assert project.services["s"].networks == ("default",)  # type: ignore[attr-defined]
    assert "default" in project.networks  # type: ignore[attr-defined]
