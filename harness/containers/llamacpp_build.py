"""``llama-server`` compiled on the host from the pinned, hash-checked ``llama-cpp-python`` sdist.

The sdist vendors the whole llama.cpp tree (server, gguf-py, tokenizer vocabularies), so the kit needs no git
checkout and no registry: pip fetches the sdist against the sha256 in ``docker/pins.toml``, CMake compiles the
``llama-server`` target only, and the result is cached outside the repository under the sdist's hash
(``~/.cache/chimeraforge/llama-server/<sha256>/``) so a machine pays the compile once. The binary is linked
statically against ggml/llama and without OpenMP, so the offline Debian base needs nothing extra; the host and the
base are both Debian bookworm, so its glibc and libstdc++ match.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.digests import sha256_file
from harness.errors import BadInputError, DockerError
from harness.progress import Progress, quiet

CACHE_ROOT_ENV = "HARNESS_CACHE_DIR"
BUILD_DOC_SCHEMA_VERSION = 1
# CPU build that runs on any x86-64 of this kind: no -march=native, no OpenMP (ggml's own thread pool), no
# HTTPS/curl (the server never downloads anything), no web UI download, static ggml/llama.
CPU_FLAGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DGGML_OPENMP=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
)

_CUDA_ARCHS = re.compile(r"[0-9]{2,3}[af]?(-real|-virtual)?(;[0-9]{2,3}[af]?(-real|-virtual)?)*")


def cuda_flags(pin: LlamaCppPin) -> tuple[str, ...]:
    """The CUDA image's CMake flags: the CPU build's, plus CUDA for the pinned architectures.

    The executable links against the toolkit's ``libcuda`` stub (no driver exists during ``docker build``);
    ``--allow-shlib-undefined`` lets the link finish without the driver's own symbols, which the NVIDIA
    container runtime provides at run time.
    """
    if not pin.cuda_architectures:
        raise BadInputError(
            "docker/pins.toml [llamacpp] has no cuda_architectures", hint='add cuda_architectures = "75;80;86;89;90"'
        )
    return (
        *CPU_FLAGS,
        "-DGGML_CUDA=ON",
        f"-DCMAKE_CUDA_ARCHITECTURES={pin.cuda_architectures}",
        "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined",
        f"-DLLAMA_BUILD_COMMIT={pin.llama_cpp_commit}",
    )


@dataclass(frozen=True)
class LlamaCppPin:
    """``[llamacpp]`` of ``docker/pins.toml``: which sdist, its hash, and the llama.cpp commit it vendors."""

    package: str
    version: str
    sdist_sha256: str
    llama_cpp_commit: str
    build_jobs: int
    tiny_model_sha256: str
    cuda_architectures: str = ""
    """CMake's ``CMAKE_CUDA_ARCHITECTURES`` for the CUDA image (``75;80;86;89;90``)."""


def load_llamacpp_pin(pins_path: Path) -> LlamaCppPin:
    """Read ``[llamacpp]``; a missing or mistyped key is bad input naming it."""
    try:
        doc = tomllib.loads(pins_path.read_text())["llamacpp"]
        pin = LlamaCppPin(
            package=str(doc["package"]),
            version=str(doc["version"]),
            sdist_sha256=str(doc["sdist_sha256"]).lower(),
            llama_cpp_commit=str(doc["llama_cpp_commit"]),
            build_jobs=int(doc.get("build_jobs", 2)),
            tiny_model_sha256=str(doc.get("tiny_model_sha256", "")).lower(),
            cuda_architectures=str(doc.get("cuda_architectures", "")),
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"{pins_path}: [llamacpp] lacks or mistypes {exc}", hint="fix docker/pins.toml") from None
    if pin.cuda_architectures and not _CUDA_ARCHS.fullmatch(pin.cuda_architectures):
        raise BadInputError(
            f"{pins_path}: [llamacpp] cuda_architectures {pin.cuda_architectures!r} is not a CMake architecture list",
            hint='write it as "75;80;86;89;90" (compute capabilities without the dot)',
        )
    if len(pin.sdist_sha256) != 64 or any(ch not in "0123456789abcdef" for ch in pin.sdist_sha256):
        raise BadInputError(f"{pins_path}: [llamacpp] sdist_sha256 is not a sha256", hint="fix docker/pins.toml")
    return pin


@dataclass(frozen=True)
class LlamaServerBuild:
    """A cached ``llama-server`` and how it was made (recorded in provenance)."""

    binary: Path
    vocab_dir: Path
    sdist_sha256: str
    version: str
    llama_cpp_commit: str
    flags: tuple[str, ...]
    build_s: float
    built_now: bool
    elapsed_s: float

    def facts(self) -> dict[str, object]:
        """What provenance records about the engine build."""
        return {
            "engine": "llama.cpp",
            "device": "cpu",
            "source": f"llama-cpp-python {self.version} sdist",
            "sdist_sha256": self.sdist_sha256,
            "llama_cpp_commit": self.llama_cpp_commit,
            "cmake_flags": list(self.flags),
            "binary_sha256": sha256_file(self.binary),
            "build_s": round(self.build_s, 1),
        }


def cache_root(env: Mapping[str, str] = os.environ) -> Path:
    """``$HARNESS_CACHE_DIR`` or ``~/.cache/chimeraforge``: outside the repository, shared by every checkout."""
    configured = env.get(CACHE_ROOT_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "chimeraforge"


def fetch_sdist(pin: LlamaCppPin, root: Path, *, progress: Progress = quiet) -> Path:
    """The pinned sdist, downloaded once with pip against its hash and re-checked on every use."""
    dest = root / "sdist"
    name = f"{pin.package.replace('-', '_')}-{pin.version}.tar.gz"
    path = dest / name
    if not path.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        progress(f"downloading the {pin.package} {pin.version} sdist (hash-checked)")
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            req = Path(tmp) / "requirements.txt"
            req.write_text(f"{pin.package}=={pin.version} --hash=sha256:{pin.sdist_sha256}\n")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--no-binary",
                   pin.package, "-r", str(req), "-d", tmp]  # fmt: skip
            _run(cmd, what="pip download", hint="check that PyPI is reachable", timeout_s=900)
            os.replace(Path(tmp) / name, path)
    actual = sha256_file(path)
    if actual != pin.sdist_sha256:
        path.unlink()
        raise DockerError(
            f"{path} has sha256 {actual}, the pin says {pin.sdist_sha256}", hint="the download was removed; retry"
        )
    return path


def vocab_file(pin: LlamaCppPin, name: str, *, root: Path | None = None, progress: Progress = quiet) -> Path:
    """One of the tokenizer vocabularies llama.cpp vendors (``vendor/llama.cpp/models/<name>``), from the sdist."""
    root = cache_root() if root is None else root
    dest = root / "vocab" / pin.sdist_sha256 / name
    if dest.is_file():
        return dest
    sdist = fetch_sdist(pin, root, progress=progress)
    member = f"{pin.package.replace('-', '_')}-{pin.version}/vendor/llama.cpp/models/{name}"
    with tarfile.open(sdist) as tar:
        try:
            source = tar.extractfile(member)
        except KeyError:
            source = None
        if source is None:
            raise BadInputError(f"the {pin.package} sdist has no {name}", hint="pick a models/ggml-vocab-*.gguf")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".part")
        tmp.write_bytes(source.read())
        os.replace(tmp, dest)
    return dest


def build_llama_server(
    pin: LlamaCppPin, *, root: Path | None = None, force: bool = False, progress: Progress = quiet
) -> LlamaServerBuild:
    """The cached ``llama-server`` for this pin, compiled now if the cache lacks it.

    The cache entry is written to a temporary folder and renamed into place, so an interrupted build leaves no
    half entry behind and two processes racing both end with one complete entry.
    """
    start = time.monotonic()
    root = cache_root() if root is None else root
    entry = root / "llama-server" / pin.sdist_sha256
    if force and entry.exists():
        shutil.rmtree(entry)
    if not (entry / "build.json").is_file():
        sdist = fetch_sdist(pin, root, progress=progress)
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=entry.parent, prefix=".building-") as tmp:
            staged = Path(tmp) / "entry"
            _compile(pin, sdist, Path(tmp), staged, progress=progress)
            try:
                os.replace(staged, entry)
            except OSError:
                if not (entry / "build.json").is_file():
                    raise
    doc = json.loads((entry / "build.json").read_text())
    return LlamaServerBuild(
        binary=entry / "bin" / "llama-server",
        vocab_dir=entry / "models",
        sdist_sha256=pin.sdist_sha256,
        version=pin.version,
        llama_cpp_commit=pin.llama_cpp_commit,
        flags=tuple(doc["cmake_flags"]),
        build_s=float(doc["build_s"]),
        built_now=doc.get("build_pid") == os.getpid(),
        elapsed_s=time.monotonic() - start,
    )


def _compile(pin: LlamaCppPin, sdist: Path, work: Path, staged: Path, *, progress: Progress) -> None:
    started = time.monotonic()
    progress(f"extracting {sdist.name}")
    with tarfile.open(sdist) as tar:
        tar.extractall(work / "src", filter="data")
    tree = work / "src" / f"{pin.package.replace('-', '_')}-{pin.version}" / "vendor" / "llama.cpp"
    if not (tree / "CMakeLists.txt").is_file():
        raise DockerError(f"{sdist.name} has no vendor/llama.cpp/CMakeLists.txt", hint="check the pinned version")
    build = work / "build"
    flags = (*CPU_FLAGS, f"-DLLAMA_BUILD_COMMIT={pin.llama_cpp_commit}")
    cmake = _cmake()
    progress(f"configuring llama.cpp {pin.llama_cpp_commit} (CMake, CPU, {' '.join(flags)})")
    _run([cmake, "-S", str(tree), "-B", str(build), *flags], what="cmake configure", hint="see the CMake output")
    progress(f"compiling llama-server with -j{pin.build_jobs} (many minutes the first time on a small machine)")
    _run(
        [cmake, "--build", str(build), "--target", "llama-server", "-j", str(pin.build_jobs)],
        what="cmake --build",
        hint="see the compiler output",
        timeout_s=5400,
    )
    (staged / "bin").mkdir(parents=True)
    shutil.copy2(build / "bin" / "llama-server", staged / "bin" / "llama-server")
    shutil.copytree(tree / "models", staged / "models", ignore=shutil.ignore_patterns("*.inp", "*.out", "templates"))
    doc = {
        "schema_version": BUILD_DOC_SCHEMA_VERSION,
        "sdist": sdist.name,
        "sdist_sha256": pin.sdist_sha256,
        "llama_cpp_commit": pin.llama_cpp_commit,
        "cmake_flags": list(flags),
        "build_s": round(time.monotonic() - started, 1),
        "build_pid": os.getpid(),
    }
    (staged / "build.json").write_text(json.dumps(doc, indent=2) + "\n")


def _cmake() -> str:
    """CMake from the kit's environment (the ``cmake`` wheel) or the PATH."""
    beside = Path(sys.executable).with_name("cmake")
    found = str(beside) if beside.is_file() else shutil.which("cmake")
    if found is None:
        raise DockerError("cmake is not installed", hint="re-create .venv from requirements.lock (it carries cmake)")
    return found


def _run(cmd: list[str], *, what: str, hint: str, timeout_s: float = 600) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise DockerError(f"{cmd[0]} is not installed", hint=hint) from None
    except subprocess.TimeoutExpired:
        raise DockerError(f"{what} took longer than {timeout_s:.0f} s", hint=hint) from None
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip())[-2000:]
        raise DockerError(f"{what} failed:\n{tail}", hint=hint)


if __name__ == "__main__":  # pragma: no cover - a by-hand entry for warming the cache
    from harness.containers.pins import PINS_PATH

    result = build_llama_server(load_llamacpp_pin(PINS_PATH), progress=print)
    print(json.dumps({**result.facts(), "elapsed_s": round(result.elapsed_s, 1), "built_now": result.built_now}))
