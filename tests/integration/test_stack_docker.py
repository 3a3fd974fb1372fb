"""Stacks on the real Docker engine, with the simulated Ollama as the server (no GPU, no registry)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import docker
import pytest

from harness.containers.compose import compose_files, load_compose
from harness.containers.engine import LABEL_KIT, LABEL_KIT_VERSION, LABEL_PROJECT, LABEL_RUN_ID, gpu_visible, reap
from harness.containers.stack import Stack
from harness.errors import DockerError
from tests.integration.conftest import KIT_VERSION, KitImages, kit_leftovers

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parents[2]


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return dict(json.load(resp))


def test_harness_image_is_non_root_and_labelled(docker_client: docker.DockerClient, kit_images: KitImages) -> None:
    image = docker_client.images.get(kit_images.harness_tag)
    assert image.attrs["Config"]["User"] == "10001:10001"
    labels = image.labels
    assert labels[LABEL_KIT] == "1" and labels[LABEL_KIT_VERSION] == KIT_VERSION
    assert labels["io.chimeraforge.base_image"].startswith(kit_images.base_tag)
    out = docker_client.containers.run(
        kit_images.harness_tag, ["python", "-c", "import os, numpy; print(os.getuid())"], remove=True
    )
    assert out.decode().strip() == "10001"


def test_single_sim_stack_up_probe_agent_down(docker_client: docker.DockerClient, stack_vars: dict[str, str]) -> None:
    project = load_compose(compose_files("single", "sim"), stack_vars, gpu=False)
    stack = Stack(project, client=docker_client, run_id="it-single", kit_version=KIT_VERSION, ready_timeout_s=60)
    t0 = time.monotonic()
    with stack:
        up_s = time.monotonic() - t0
        url = stack.url("ollama")
        assert url.startswith("http://127.0.0.1:")
        assert "version" in _get_json(url + "/api/version")

        container = stack.container("ollama")
        container.reload()
        bindings = container.attrs["HostConfig"]["PortBindings"]["11434/tcp"]
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
        assert all(b["HostIp"] == "127.0.0.1" for b in container.attrs["NetworkSettings"]["Ports"]["11434/tcp"])
        assert container.attrs["HostConfig"]["CapDrop"] == ["ALL"]
        assert "no-new-privileges:true" in container.attrs["HostConfig"]["SecurityOpt"]
        assert container.exec_run(["id", "-u"]).output.decode().strip() == "10001"
        for obj_labels in (container.labels, docker_client.networks.get(f"{stack.name}_kit").attrs["Labels"]):
            assert obj_labels[LABEL_KIT] == "1"
            assert obj_labels[LABEL_RUN_ID] == "it-single"
            assert obj_labels[LABEL_KIT_VERSION] == KIT_VERSION
            assert obj_labels[LABEL_PROJECT] == stack.name

        probe = "import urllib.request as u; print(u.urlopen('http://ollama:11434/api/version').read().decode())"
        run = stack.run_container(["python", "-c", probe], name="collector")
        assert run.exit_code == 0, run.stderr
        assert "version" in run.stdout
        assert not run.timed_out
        assert run.memory_source in (None, "cgroup_v1_max_usage", "sampled_usage")
        assert isinstance(stack.logs("ollama", tail=5), str)
    down_s = time.monotonic() - t0 - up_s
    print(f"single sim stack: up {up_s:.1f} s, body+down {down_s:.1f} s")
    assert kit_leftovers(docker_client, f"{LABEL_PROJECT}={stack.name}") == []
    stack.down()  # idempotent


def test_dual_sim_stack(docker_client: docker.DockerClient, stack_vars: dict[str, str]) -> None:
    project = load_compose(compose_files("dual", "sim"), stack_vars, gpu=False)
    with Stack(project, client=docker_client, run_id="it-dual", kit_version=KIT_VERSION, ready_timeout_s=60) as stack:
        urls = {stack.url("ollama"), stack.url("ollama2")}
        assert len(urls) == 2 and all(u.startswith("http://127.0.0.1:") for u in urls)
        code = (
            "import urllib.request as u\n"
            "for h in ('ollama', 'ollama2'): u.urlopen(f'http://{h}:11434/api/version', timeout=5)\n"
            "x = bytearray(64 * 1024 * 1024); import time; time.sleep(2.5); print('ok')"
        )
        run = stack.run_container(["python", "-c", code], name="insight")
        assert (run.exit_code, run.stdout.strip()) == (0, "ok"), run.stderr
        # a 64 MiB allocation held for > 2 s must show in the sampled cgroup figure
        assert run.memory_peak_bytes is not None and run.memory_peak_bytes > 64 * 1024 * 1024
        name = stack.name
    assert kit_leftovers(docker_client, f"{LABEL_PROJECT}={name}") == []


def test_failed_up_reports_logs_and_leaves_nothing(
    docker_client: docker.DockerClient, kit_images: KitImages, tmp_path: Path
) -> None:
    compose = tmp_path / "broken.yml"
    compose.write_text(
        textwrap.dedent(
            f"""
            services:
              broken:
                image: {kit_images.harness_tag}
                command: ["python", "-c", "import sys, time; print('boom: no model'); time.sleep(1); sys.exit(3)"]
                labels: {{io.chimeraforge.ready_http: "11434/api/version"}}
            """
        )
    )
    stack = Stack(load_compose([compose], {}), client=docker_client, run_id="it-broken", kit_version=KIT_VERSION)
    with pytest.raises(DockerError, match=r"(?s)exited with code 3.*boom: no model"):
        stack.up()
    assert kit_leftovers(docker_client, f"{LABEL_PROJECT}={stack.name}") == []


def test_sigterm_during_up_tears_down(
    docker_client: docker.DockerClient, kit_images: KitImages, tmp_path: Path
) -> None:
    compose = tmp_path / "slow.yml"
    compose.write_text(
        textwrap.dedent(
            f"""
            services:
              slow:
                image: {kit_images.harness_tag}
                command: ["python", "-c", "import time; time.sleep(300)"]
                healthcheck: {{test: ["CMD", "false"], interval: 1s, retries: 300}}
            """
        )
    )
    run_id = f"it-sigterm-{os.getpid()}"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from harness.containers.compose import load_compose
        from harness.containers.engine import connect
        from harness.containers.stack import Stack
        project = load_compose([Path({str(compose)!r})], {{}})
        Stack(project, client=connect(), run_id={run_id!r}, kit_version="test", ready_timeout_s=120).up()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT)
    try:
        label = f"{LABEL_RUN_ID}={run_id}"
        deadline = time.monotonic() + 60
        while not docker_client.containers.list(filters={"label": label, "status": "running"}):
            assert proc.poll() is None and time.monotonic() < deadline, "the stack never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        assert kit_leftovers(docker_client, label) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        reap(docker_client, run_id=run_id)


def test_reap_removes_crash_leftovers(docker_client: docker.DockerClient, stack_vars: dict[str, str]) -> None:
    project = load_compose(compose_files("single", "sim"), stack_vars, gpu=False)
    crashed = Stack(project, client=docker_client, run_id="it-crash", kit_version=KIT_VERSION, handle_signals=False)
    crashed.up()  # and never torn down: what a killed process leaves
    label = f"{LABEL_RUN_ID}=it-crash"
    assert kit_leftovers(docker_client, label)
    report = reap(docker_client, run_id="it-crash", volumes=True)
    assert report.failed == ()
    assert report.containers and report.networks
    assert kit_leftovers(docker_client, label) == []
    docker_client.volumes.get(stack_vars["OLLAMA_MODEL_VOLUME"])  # the shared model volume survives


def test_gpu_detection_answers(docker_client: docker.DockerClient) -> None:
    info = docker_client.info()
    assert gpu_visible(docker_client) == ("nvidia" in (info.get("Runtimes") or {}))
