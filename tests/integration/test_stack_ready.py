"""Readiness: a service with an HTTP probe is ready when the probe answers, not when Docker's health poll says so."""

from __future__ import annotations

import textwrap
from pathlib import Path

import docker
import pytest

from harness.containers.compose import load_compose
from harness.containers.engine import LABEL_PROJECT
from harness.containers.stack import Stack
from harness.errors import DockerError
from tests.integration.conftest import KIT_VERSION, KitImages, kit_leftovers

pytestmark = pytest.mark.docker


def _compose(tmp_path: Path, image: str, health_test: str) -> Path:
    path = tmp_path / "probe.yml"
    path.write_text(
        textwrap.dedent(
            f"""
            services:
              sim:
                image: {image}
                command: ["python", "-m", "harness.sim", "--host", "0.0.0.0", "--port", "11434"]
                ports: ["127.0.0.1::11434"]
                labels: {{io.chimeraforge.ready_http: "11434/api/version"}}
                healthcheck: {{test: {health_test}, interval: 1h, start_period: 1h, retries: 1}}
            """
        )
    )
    return path


def test_http_probe_makes_a_service_ready_before_its_first_health_check(
    docker_client: docker.DockerClient, kit_images: KitImages, tmp_path: Path
) -> None:
    project = load_compose([_compose(tmp_path, kit_images.harness_tag, '["CMD", "true"]')], {})
    with Stack(project, client=docker_client, run_id="it-ready", kit_version=KIT_VERSION, ready_timeout_s=60) as stack:
        container = stack.container("sim")
        container.reload()
        # the first health check is an hour away: the stack did not wait for it
        assert container.attrs["State"]["Health"]["Status"] == "starting"
        name = stack.name
    assert kit_leftovers(docker_client, f"{LABEL_PROJECT}={name}") == []


def test_an_unhealthy_service_with_a_probe_still_fails_up(
    docker_client: docker.DockerClient, kit_images: KitImages, tmp_path: Path
) -> None:
    compose = tmp_path / "sick.yml"
    compose.write_text(
        textwrap.dedent(
            f"""
            services:
              sick:
                image: {kit_images.harness_tag}
                command: ["python", "-c", "import time; time.sleep(300)"]
                ports: ["127.0.0.1::11434"]
                labels: {{io.chimeraforge.ready_http: "11434/api/version"}}
                healthcheck: {{test: ["CMD", "false"], interval: 1s, retries: 1}}
            """
        )
    )
    stack = Stack(load_compose([compose], {}), client=docker_client, run_id="it-sick", kit_version=KIT_VERSION,
                  ready_timeout_s=60)  # fmt: skip
    with pytest.raises(DockerError, match="unhealthy"):
        stack.up()
    assert kit_leftovers(docker_client, f"{LABEL_PROJECT}={stack.name}") == []
