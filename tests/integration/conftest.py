"""Docker fixtures for the integration tests: the real engine, the offline base and the harness image.

Built once per session and kept (both are cached by content: a second session reuses them in seconds).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest

from harness import __version__
from harness.containers.base_image import build_wheelhouse, ensure_base_image
from harness.containers.engine import LABEL_KIT, connect
from harness.containers.images import CONTEXT_DIR, build_harness_image
from harness.containers.pins import REPO_ROOT, load_pins

KIT_VERSION = __version__
# One volume per test session: a second checkout or CI run on the same engine gets its own, so neither can hold
# the other's volume when it is removed.
TEST_MODEL_VOLUME = f"cfk-test-models-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class KitImages:
    base_tag: str
    harness_tag: str
    timings_s: dict[str, float]


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = connect()
    yield client
    # leave no test volume behind (the kit's real model volume is never touched by the tests)
    _remove_test_volume(client)
    client.close()


def _remove_test_volume(client: docker.DockerClient, wait_s: float = 30.0) -> None:
    """Remove this session's model volume, giving a container still being torn down a moment to let go.

    A container that still holds the volume after ``wait_s`` is one this session leaked: the error names it.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            client.volumes.get(TEST_MODEL_VOLUME).remove(force=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or time.monotonic() > deadline:
                holders = [c.name for c in client.containers.list(all=True, filters={"volume": TEST_MODEL_VOLUME})]
                raise AssertionError(f"test volume {TEST_MODEL_VOLUME} still held by {holders}: {exc}") from exc
            time.sleep(1.0)


@pytest.fixture(scope="session")
def kit_images(docker_client: docker.DockerClient) -> KitImages:
    pins = load_pins()
    t0 = time.monotonic()
    base = ensure_base_image(docker_client, pins, kit_version=KIT_VERSION)
    t1 = time.monotonic()
    wheels = build_wheelhouse(REPO_ROOT / "requirements.lock", CONTEXT_DIR / "wheels", python_exe=sys.executable)
    t2 = time.monotonic()
    harness = build_harness_image(
        docker_client, base_tag=base.tag, wheelhouse=wheels.directory, kit_version=KIT_VERSION
    )
    t3 = time.monotonic()
    assert harness.tag is not None
    return KitImages(base.tag, harness.tag, {"base_s": t1 - t0, "wheelhouse_s": t2 - t1, "harness_image_s": t3 - t2})


@pytest.fixture
def stack_vars(kit_images: KitImages) -> dict[str, str]:
    """Interpolation values for the kit's compose files in the tests."""
    return {"HARNESS_IMAGE": kit_images.harness_tag, "OLLAMA_MODEL_VOLUME": TEST_MODEL_VOLUME}


def kit_leftovers(client: docker.DockerClient, label: str) -> list[str]:
    """Names of containers and networks that carry ``label``."""
    containers = [f"container {c.name}" for c in client.containers.list(all=True, filters={"label": label})]
    networks = [f"network {n.name}" for n in client.networks.list(filters={"label": label})]
    return containers + networks


__all__ = ["LABEL_KIT", "KitImages", "kit_leftovers"]
