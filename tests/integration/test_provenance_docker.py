"""Engine and image facts from the real Docker engine, and a provenance.json that records them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import docker
import pytest

from harness.artifacts import ArtifactDir
from harness.containers import engine
from harness.errors import DockerError
from harness.evidence.provenance import DockerSection, collect, docker_facts, load_provenance, write_provenance
from harness.evidence.telemetry import nvml_session
from harness.facts import Absent
from harness.settings import Settings

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return engine.connect()


@pytest.fixture(scope="module")
def some_image(client: docker.DockerClient) -> str:
    """The ID of an image already on the engine (tagged ones first); nothing is pulled or built here."""
    images = sorted(client.images.list(), key=lambda i: (not i.tags, str(i.id)))
    if not images:
        pytest.skip("the engine holds no image to inspect")
    return images[0].tags[0] if images[0].tags else str(images[0].id)


def test_engine_facts_read_the_engine(client: docker.DockerClient) -> None:
    facts = engine.engine_facts(client)
    info, version = client.info(), client.version()
    assert facts.server_version == version["Version"] and re.fullmatch(r"\d+\.\d+", facts.api_version)
    assert facts.default_runtime in facts.runtimes
    assert facts.nvidia_runtime == ("nvidia" in info.get("Runtimes", {}))
    assert facts.gpu_visible == engine.gpu_visible(client)
    assert Path(facts.root_dir).is_absolute() and facts.cpu_count >= 1 and facts.memory_total_bytes > 0


def test_image_facts_read_a_local_image(client: docker.DockerClient, some_image: str) -> None:
    facts = engine.image_facts(client, some_image)
    image = client.images.get(some_image)
    assert facts.id == image.id and facts.id.startswith("sha256:")
    assert list(facts.repo_tags) == sorted(image.attrs.get("RepoTags") or [])
    assert list(facts.repo_digests) == sorted(image.attrs.get("RepoDigests") or [])
    assert facts.size_bytes > 0 and all(k.startswith("io.chimeraforge.") for k in facts.labels)
    by_id = engine.image_facts(client, facts.id)
    assert by_id.id == facts.id


def test_image_facts_of_a_missing_image(client: docker.DockerClient) -> None:
    with pytest.raises(DockerError, match="invoke build"):
        engine.image_facts(client, "chimeraforge/no-such-image:0")


def test_docker_section_pins_only_what_a_registry_knows(client: docker.DockerClient, some_image: str) -> None:
    section = docker_facts(client, {"harness": some_image, "ghost": "chimeraforge/no-such-image:0"})
    assert isinstance(section, DockerSection)
    record = section.images["harness"]
    assert not isinstance(record, Absent)
    assert record.pinned == bool(record.repo_digests)
    if not record.pinned:
        assert record.reason  # unpinned is said, never papered over with a digest
    assert all(d.split("@", 1)[1].startswith("sha256:") for d in record.repo_digests)
    assert isinstance(section.images["ghost"], Absent)
    assert not isinstance(section.base_pins, Absent)
    for pin in section.base_pins.values():
        assert pin.pinned == (pin.digest is not None)


def test_provenance_with_the_real_engine(client: docker.DockerClient, some_image: str, tmp_path: Path) -> None:
    with nvml_session() as nvml:
        prov = collect(
            nvml=nvml,
            docker=client,
            images={"harness": some_image},
            ollama=Absent(reason="no server in this test"),
            settings=Settings(),
            command=["harness", "test"],
        )
    path = write_provenance(ArtifactDir(tmp_path), prov)
    body = json.loads(path.read_text())
    assert body["docker"]["images"]["harness"]["id"] == client.images.get(some_image).id
    assert set(body["docker"]["images"]["harness"]) >= {"id", "repo_tags", "repo_digests", "pinned"}
    assert "docker.images.harness.id" in body["fingerprint_keys"]
    assert "docker.engine.server_version" in body["fingerprint_keys"]
    assert load_provenance(path) == prov
