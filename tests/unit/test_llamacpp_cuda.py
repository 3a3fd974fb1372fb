"""The llama.cpp backend's GPU path without a GPU: the CUDA image's plan and build, the device choice, offload
and the GPU reservation. The engine is a fake behind the Docker SDK's image interface (no registry answers here,
and no NVIDIA runtime exists); what a real build does is checked against the Dockerfile itself."""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import pandas as pd
import pytest

from harness.analysis.engine import engine_note
from harness.analysis.report import engine_device
from harness.containers import llamacpp_image
from harness.containers.engine import LABEL_IMAGE_ROLE
from harness.containers.llamacpp_build import CPU_FLAGS, cuda_flags, load_llamacpp_pin
from harness.containers.pins import PINS_PATH, ImageLock, LockedImage
from harness.errors import ArtifactError, BadInputError, DockerError
from harness.protocol.plan import expand
from harness.protocol.spec import load_spec, spec_path
from harness.run import llamacpp
from harness.run.orchestrator import DockerExecutor, server_settings
from harness.run.reproduce import llamacpp_device

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / llamacpp_image.CUDA_DOCKERFILE
DIGEST = "sha256:" + "c" * 64


@dataclass
class FakeImage:
    id: str


@dataclass
class FakeImages:
    """The slice of ``docker.models.images.ImageCollection`` the CUDA path uses."""

    present: dict[str, FakeImage] = field(default_factory=dict)
    registry: bool = False
    pulled: list[str] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)

    def get(self, ref: str) -> FakeImage:
        if ref not in self.present:
            raise docker.errors.ImageNotFound(f"no such image: {ref}")
        return self.present[ref]

    def list(self, name: str | None = None) -> list[FakeImage]:
        return [img for ref, img in self.present.items() if name is None or ref.split(":")[0] == name]

    def get_registry_data(self, ref: str) -> object:
        if not self.registry:
            raise docker.errors.APIError("lookup registry-1.docker.io: no such host")
        return FakeImage(DIGEST)

    def pull(self, ref: str) -> FakeImage:
        if not self.registry:
            raise docker.errors.APIError("lookup registry-1.docker.io: no such host")
        self.pulled.append(ref)
        return FakeImage(DIGEST)

    def build(self, **kwargs: Any) -> tuple[FakeImage, list[object]]:
        with tarfile.open(fileobj=kwargs["fileobj"]) as tar:
            names = tar.getnames()
        self.builds.append({**kwargs, "names": names})
        image = FakeImage("sha256:" + "b" * 64)
        self.present[kwargs["tag"]] = image
        return image, []


@dataclass
class FakeClient:
    images: FakeImages


def _plan(tmp_path: Path, lock: ImageLock | None = None, pins_path: Path = PINS_PATH) -> llamacpp_image.CudaImagePlan:
    lock_path = tmp_path / "images.lock.json"
    if lock is not None:
        lock_path.write_text(lock.to_json())
    return llamacpp_image.plan_cuda_image(
        base_tag="chimeraforge/base:x", base_id="sha256:" + "a" * 64, kit_version="0.1.0", pins_path=pins_path,
        lock_path=lock_path,
    )  # fmt: skip


def test_cuda_flags_extend_the_cpu_build_for_the_pinned_architectures() -> None:
    pin = load_llamacpp_pin(PINS_PATH)
    flags = cuda_flags(pin)
    assert flags[: len(CPU_FLAGS)] == CPU_FLAGS  # same static, OpenMP-free, curl-free server as the CPU image
    assert "-DGGML_CUDA=ON" in flags and f"-DCMAKE_CUDA_ARCHITECTURES={pin.cuda_architectures}" in flags
    assert "89" in pin.cuda_architectures.split(";")  # the reports' RTX 4080 (Ada) is always compiled for


@pytest.mark.parametrize("archs", ["native", "8.9", "75,80", "all-major; 90"])
def test_a_cuda_architecture_list_cmake_would_not_take_is_bad_input(tmp_path: Path, archs: str) -> None:
    pins = tmp_path / "pins.toml"
    text = PINS_PATH.read_text()
    pins.write_text(re.sub(r'cuda_architectures = "[^"]*"', f'cuda_architectures = "{archs}"', text))
    with pytest.raises(BadInputError, match="cuda_architectures"):
        load_llamacpp_pin(pins)


def test_cuda_plan_uses_locked_digests_and_a_tag_that_follows_its_inputs(tmp_path: Path) -> None:
    bare = _plan(tmp_path)
    assert bare.devel_image == "nvidia/cuda:12.8.1-devel-ubuntu24.04"  # unlocked: the pinned tag, said as such
    assert bare.tag == _plan(tmp_path).tag and bare.tag.startswith(llamacpp_image.LLAMACPP_CUDA_REPOSITORY + ":")
    lock = ImageLock(
        schema_version=1,
        pins_sha256="x",
        images={
            "cuda_devel": LockedImage("nvidia/cuda:12.8.1-devel-ubuntu24.04", DIGEST),
            # a lock entry for another reference than the pin (a stale lock) is not used
            "cuda_runtime": LockedImage("nvidia/cuda:12.6.0-runtime-ubuntu24.04", DIGEST),
        },
    )
    locked = _plan(tmp_path, lock)
    assert locked.devel_image == f"nvidia/cuda:12.8.1-devel-ubuntu24.04@{DIGEST}"
    assert locked.runtime_image == "nvidia/cuda:12.8.1-runtime-ubuntu24.04"
    assert locked.tag != bare.tag  # a digest is an input: a different base gives a different image
    pins = tmp_path / "pins.toml"
    pins.write_text(PINS_PATH.read_text().replace('cuda_architectures = "', 'cuda_architectures = "120;'))
    assert _plan(tmp_path, pins_path=pins).tag != bare.tag


def test_every_build_argument_is_declared_by_the_dockerfile_and_every_required_one_is_given(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    declared = dict(re.findall(r"^ARG (\w+)(?:=(.*))?$", DOCKERFILE.read_text(), flags=re.M))
    assert set(plan.buildargs) <= set(declared)
    assert {name for name, default in declared.items() if not default} <= set(plan.buildargs)
    text = DOCKERFILE.read_text()
    assert "sha256sum -c" in text and "--target llama-server" in text  # the sdist is checked again in the build
    assert "USER 10001:10001" in text and text.rstrip().endswith('CMD ["llama-server", "--help"]')


@pytest.fixture
def fake_sdist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sdist the CUDA build copies into its context, without downloading the real one."""
    sdist = tmp_path / "sdist.tar.gz"
    sdist.write_bytes(b"sdist bytes")
    monkeypatch.setattr(llamacpp_image, "fetch_sdist", lambda pin, root, progress: sdist)
    return sdist


@pytest.mark.usefixtures("fake_sdist")
def test_the_cuda_image_is_built_from_the_pulled_pins_with_the_checked_sdist(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    fake = FakeImages(registry=True)
    lines: list[str] = []
    result, facts = llamacpp_image.build_llamacpp_cuda_image(FakeClient(fake), plan, progress=lines.append)  # type: ignore[arg-type]
    assert fake.pulled == [plan.devel_image, plan.runtime_image]
    (build,) = fake.builds
    assert build["names"] == ["Dockerfile", "sdist.tar.gz"] and build["tag"] == plan.tag
    assert build["buildargs"]["SDIST_SHA256"] == load_llamacpp_pin(PINS_PATH).sdist_sha256
    assert "-DGGML_CUDA=ON" in build["buildargs"]["CMAKE_FLAGS"]
    assert build["labels"][LABEL_IMAGE_ROLE] == "llamacpp"
    assert result.built and result.tag == plan.tag
    assert facts["device"] == "cuda" and facts["cuda_devel_image"] == plan.devel_image
    assert facts["image_id"] == result.image_id
    # the second time the content-tagged image is simply found: no pull, no build
    again, _ = llamacpp_image.build_llamacpp_cuda_image(FakeClient(fake), plan)  # type: ignore[arg-type]
    assert not again.built and len(fake.builds) == 1 and len(fake.pulled) == 2


@pytest.mark.usefixtures("fake_sdist")
def test_without_a_registry_the_cuda_path_says_so_before_building(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    offline = FakeClient(FakeImages(registry=False))
    reason = llamacpp_image.cuda_images_unreachable(offline)  # type: ignore[arg-type]
    assert reason is not None and "no registry answered" in reason
    assert "no registry answered" in (llamacpp_image.cuda_image_unavailable(offline, plan) or "")  # type: ignore[arg-type]
    with pytest.raises(DockerError, match="pulling nvidia/cuda"):
        llamacpp_image.build_llamacpp_cuda_image(offline, plan)  # type: ignore[arg-type]
    assert offline.images.builds == []
    # an image made earlier (or loaded from a bundle) serves without a registry
    loaded = FakeClient(FakeImages(present={plan.tag: FakeImage("sha256:" + "d" * 64)}))
    assert llamacpp_image.cuda_images_unreachable(loaded) is None  # type: ignore[arg-type]
    assert llamacpp_image.cuda_image_unavailable(loaded, plan) is None  # type: ignore[arg-type]


def test_device_choice_follows_the_gpu_and_refuses_cuda_without_one() -> None:
    lines: list[str] = []
    assert llamacpp_device("auto", gpu=True, progress=lines.append) == "cuda"
    assert llamacpp_device("auto", gpu=False, progress=lines.append) == "cpu"
    assert llamacpp_device("cpu", gpu=True, progress=lines.append) == "cpu"
    assert any("although Docker sees an NVIDIA GPU" in line for line in lines)
    with pytest.raises(BadInputError, match="no NVIDIA GPU"):
        llamacpp_device("cuda", gpu=False, progress=lines.append)


def test_offload_maps_num_gpu_on_cuda_and_is_zero_on_cpu() -> None:
    spec = load_spec(spec_path(ROOT / "experiments", "tr114"))
    run = expand(spec, runs_per_config=1).runs[0]
    kwargs: dict[str, Any] = {"model_file": Path("/m.gguf"), "model_sha256": "ab" * 32, "seed": 1}
    cpu = llamacpp.server_plan(spec, run, **kwargs)
    cuda = llamacpp.server_plan(spec, run, device="cuda", **kwargs)
    assert cpu.n_gpu_layers == 0 and cpu.device == "cpu"
    asked = cuda.num_gpu_asked
    assert cuda.device == "cuda" and cuda.n_gpu_layers == (max(asked) if asked else llamacpp.ALL_LAYERS)
    assert cuda.variables("img")["LLAMACPP_GPU_LAYERS"] == str(cuda.n_gpu_layers)
    # hetero agents asking different offloads of one server: the largest, and both recorded
    two = run.model_copy(
        update={
            "agents": [
                a.model_copy(update={"options": (a.options or _options()).model_copy(update={"num_gpu": n})})
                for a, n in zip(run.agents * 2, (20, 80), strict=False)
            ]
        }
    )
    plan = llamacpp.server_plan(spec, two, device="cuda", **kwargs)
    assert plan.n_gpu_layers == 80 and plan.num_gpu_asked == [20, 80]


def _options() -> Any:
    from harness.protocol.spec import Options

    return Options()


@pytest.mark.parametrize(("device", "reserved"), [("cuda", True), ("cpu", False)])
def test_the_gpu_reservation_comes_with_the_cuda_device_only(device: str, reserved: bool) -> None:
    spec = load_spec(ROOT / "experiments" / "tr110.toml")
    executor = DockerExecutor(
        client=None,  # type: ignore[arg-type]
        harness_image="h",
        kit_version="0",
        seed=1,
        time_scale=1.0,
        backend="llamacpp",
        engine_device=device,
    )
    project = executor.project(
        server_settings(spec), topology="dual", model="tiny", sim_seed=1, device_group="g",
        engine_vars={"LLAMACPP_IMAGE": "i", "LLAMACPP_MODEL_VOLUME": "v"},
    )  # fmt: skip
    for name in ("ollama", "ollama2"):
        gpus = project.services[name].gpus
        assert bool(gpus) is reserved
        if reserved:
            assert gpus[0].driver == "nvidia" and gpus[0].device_ids  # one GPU per server, never `count: all`
        assert all(p.host_ip == "127.0.0.1" for p in project.services[name].ports)


def test_the_report_names_the_build_the_engine_json_records(tmp_path: Path) -> None:
    assert engine_device(tmp_path) is None  # no engine.json: not a llama.cpp folder
    (tmp_path / "engine.json").write_text(json.dumps({"schema_version": 1, "engine": "llama.cpp", "device": "cuda"}))
    assert engine_device(tmp_path) == "cuda"
    assert "CUDA build, on the GPU" in (engine_note("llamacpp", "cuda") or "")
    (tmp_path / "engine.json").write_text(json.dumps({"schema_version": 1, "engine": "llama.cpp"}))
    assert engine_device(tmp_path) == "cpu"  # written before the CUDA image existed: the CPU build
    assert "CPU build" in (engine_note("llamacpp", None) or "")
    (tmp_path / "engine.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=r"engine\.json"):
        engine_device(tmp_path)


def test_summary_json_says_the_device_only_for_another_engine() -> None:
    from harness.analysis.distributions import summary_document

    common: dict[str, Any] = {
        "headline": {}, "report": "tr114", "origin": "kit", "simulated": False, "time_scale": 1.0,
        "kit_version": "0", "kit_commit": None, "schema_version": 1,
    }  # fmt: skip
    frame = pd.DataFrame()
    on_cuda = summary_document(frame, backend="llamacpp", engine_device="cuda", **common)
    assert on_cuda["engine_device"] == "cuda" and on_cuda["backend"] == "llamacpp"
    assert "engine_device" not in summary_document(frame, backend="sim", **common)  # sim and Ollama: unchanged
