"""A containerised simulated run, bundled, its images removed, re-run from the bundle with the same image IDs."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import docker
import docker.errors
import pytest

from harness.artifacts import ArtifactDir, load_sweep
from harness.cli import main
from harness.containers.engine import LABEL_RUN_ID
from tests.integration.conftest import KitImages, kit_leftovers
from tests.integration.test_reproduce_docker import ARGS as REPRODUCE_ARGS

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
ARGS = [*REPRODUCE_ARGS, "--configs", "^013$"]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _flip(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ 0x01]))


def _absent(client: docker.DockerClient, image_id: str) -> bool:
    try:
        client.images.get(image_id)
    except docker.errors.ImageNotFound:
        return True
    return False


def test_a_bundle_reruns_with_exactly_its_images(
    tmp_path: Path, docker_client: docker.DockerClient, kit_images: KitImages
) -> None:
    original = tmp_path / "original"
    assert main([*ARGS, "--out", str(original)]) == 0
    images = load_sweep(original).images
    assert set(images) == {"harness"} and images["harness"] == docker_client.images.get(kit_images.harness_tag).id

    bundle = tmp_path / "review.tar"
    assert main(["bundle", str(original), "--out", str(bundle)]) == 0
    with tarfile.open(bundle) as tar:
        index = json.loads(tar.extractfile(tar.getmember("bundle.json")).read())  # type: ignore[union-attr]
        saved = tar.getmember("images/images.tar")
    assert [(i["role"], i["image_id"]) for i in index["images"]] == [("harness", images["harness"])]
    assert kit_images.harness_tag in index["images"][0]["tags"]

    # The harness image stays: other sweeps on this engine may run it (an image ID is its content, so the
    # re-run below finds exactly the bundled image whether it loads it or not).
    # One changed byte in the saved images: refused before anything is loaded or written.
    offset = saved.offset_data + saved.size // 2
    _flip(bundle, offset)
    assert main(["reproduce", "--bundle", str(bundle), "--out", str(tmp_path / "refused")]) == 2
    assert not (tmp_path / "refused").exists()
    _flip(bundle, offset)

    rerun = tmp_path / "rerun"
    assert main(["reproduce", "--bundle", str(bundle), "--out", str(rerun)]) == 0
    assert load_sweep(rerun).images == images
    assert kit_images.harness_tag in docker_client.images.get(images["harness"]).tags  # its tag is back
    before, after = ArtifactDir(original).load_runs(), ArtifactDir(rerun).load_runs()
    assert sorted(r.run.run_id for r, _ in after) == sorted(r.run.run_id for r, _ in before)
    for result, _ in after:
        assert result.status == "ok", result.error
        assert kit_leftovers(docker_client, f"{LABEL_RUN_ID}={result.run.run_id}") == []
    assert docker_client.containers.list(all=True, filters={"ancestor": images["harness"]}) == []
    assert main(["verify", str(rerun)]) == 0
