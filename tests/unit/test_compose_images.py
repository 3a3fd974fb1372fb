"""Image pins, the lock and the build plan (harness.containers.images) without building anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.containers.base_image import _manylinux_tags
from harness.containers.images import plan_build
from harness.containers.pins import (
    NO_REGISTRY_REASON,
    ImageLock,
    LockedImage,
    RegistryProbe,
    _split_reference,
    load_pins,
    read_lock,
    resolve_pins,
)
from harness.errors import BadInputError


def test_pins_name_every_base_and_the_ollama_version() -> None:
    pins = load_pins()
    assert pins.ollama_version == "0.12.10"
    assert pins.model == "gemma3:latest"
    assert pins.images["ollama"].reference == "ollama/ollama:0.12.10"
    assert {"ollama", "cuda_runtime", "debian_slim", "rust_builder"} <= set(pins.images)
    assert pins.debian.suite == "bookworm" and "python3.11" in pins.debian.packages
    assert pins.debian.tag.startswith("chimeraforge/base:bookworm-")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("debian:bookworm-slim", ("registry-1.docker.io", "library/debian", "bookworm-slim")),
        ("ollama/ollama:0.12.10", ("registry-1.docker.io", "ollama/ollama", "0.12.10")),
        ("ghcr.io/a/b:1", ("ghcr.io", "a/b", "1")),
        ("localhost:5000/x", ("localhost:5000", "x", "latest")),
    ],
)
def test_split_reference(ref: str, expected: tuple[str, str, str]) -> None:
    assert _split_reference(ref) == expected


def test_lock_records_unanswered_lookups_without_a_digest(tmp_path: Path) -> None:
    pins = load_pins()
    lock_path = tmp_path / "images.lock.json"
    lock = resolve_pins(pins, client=None, lock_path=lock_path, timeout_s=3.0)
    doc = json.loads(lock_path.read_text())
    assert doc["schema_version"] == 1
    for entry in doc["images"].values():
        # whatever the network here: a digest only ever comes from a registry's answer
        assert (entry["digest"] is None and entry["reason"] == NO_REGISTRY_REASON) or entry["digest"].startswith(
            "sha256:"
        )
    assert read_lock(lock_path) == lock


def test_read_lock_refuses_unknown_schema(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    path.write_text(json.dumps({"schema_version": 99, "images": {}}))
    with pytest.raises(BadInputError, match="schema_version"):
        read_lock(path)


def test_offline_plan_skips_ollama_with_a_reason() -> None:
    pins = load_pins()
    plan = plan_build(pins, None, registry=RegistryProbe(False, "no registry answered for debian"))
    assert plan.offline
    harness, ollama, rust = plan.images
    assert harness.base_image == pins.debian.tag and harness.skip_reason is None
    assert ollama.skip_reason is not None and "--backend sim" in ollama.skip_reason
    assert rust.dockerfile == "rust-agent-offline.Dockerfile" and rust.skip_reason is None
    lines = plan.describe(frozenset({"harness"}))
    assert lines[0] == "offline: building from the local base image (no image registry answered)"
    assert not any(line.startswith(("ollama", "rust-agent")) for line in lines)  # nothing about unused images
    assert any(line.startswith("rust-agent") for line in plan.describe())


def test_online_plan_uses_the_locked_digest() -> None:
    pins = load_pins()
    digest = "sha256:" + "0" * 64  # a test value standing for a registry's answer
    lock = ImageLock(
        1,
        pins.sha256,
        {
            "ollama": LockedImage("ollama/ollama:0.12.10", digest),
            "rust_builder": LockedImage("rust:1.90.0-slim-bookworm", digest),
        },
    )
    plan = plan_build(pins, lock, registry=RegistryProbe(True, "answered"))
    assert plan.images[1].base_image == f"ollama/ollama:0.12.10@{digest}"
    assert plan.images[1].skip_reason is None
    rust = plan.images[2]
    assert rust.dockerfile == "rust-agent.Dockerfile" and rust.base_image == f"rust:1.90.0-slim-bookworm@{digest}"


def test_rust_contexts_registry_path_compiles_sources_offline_path_copies_binaries() -> None:
    """The registry path ships the workspace (no target/) and the vendored crates to a pinned builder stage;
    both Dockerfiles build the same runtime stage on BASE_IMAGE as the non-root kit user."""
    from harness.containers.images import CONTEXT_DIR, rust_context_files
    from harness.containers.pins import REPO_ROOT

    files = rust_context_files(REPO_ROOT, CONTEXT_DIR, builder_image="rust:1.90.0-slim-bookworm")
    assert {"rust/Cargo.lock", "rust/Cargo.toml", "Dockerfile"} <= set(files)
    assert not any(name.startswith(("rust/target/", "bin/")) for name in files)
    assert any(name.startswith("rust-vendor/") and name.endswith("Cargo.toml") for name in files)
    registry = (REPO_ROOT / "docker" / "rust-agent.Dockerfile").read_text()
    offline = (REPO_ROOT / "docker" / "rust-agent-offline.Dockerfile").read_text()
    assert "--locked --offline" in registry and "FROM ${BUILDER_IMAGE} AS builder" in registry
    for dockerfile in (registry, offline):
        assert "USER 10001:10001" in dockerfile and "FROM ${BASE_IMAGE}" in dockerfile


def test_manylinux_tags_cover_older_glibc() -> None:
    tags = _manylinux_tags((2, 36), "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert {"manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"} <= set(tags)


def test_debootstrap_is_installed_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.containers import base_image
    from harness.errors import DockerError

    monkeypatch.setattr(base_image.shutil, "which", lambda _name: None)
    ran: list[list[str]] = []
    monkeypatch.setattr(base_image, "_run", lambda cmd, **_kw: ran.append(cmd) or "")
    with pytest.raises(DockerError, match="debootstrap, which is not installed") as refused:
        base_image._ensure_debootstrap(lambda _line: None, install=False)
    assert "--install-debootstrap" in str(refused.value.hint) and ran == []  # the host is left alone
    with pytest.raises(DockerError, match="still missing"):  # asked: apt-get runs (here a fake that installs nothing)
        base_image._ensure_debootstrap(lambda _line: None, install=True)
    assert [cmd[0] for cmd in ran] == ["apt-get", "apt-get"]
