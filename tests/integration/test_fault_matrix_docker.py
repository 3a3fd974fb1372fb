"""The fault matrix on the real engine (docs/reliability.md): each fault is injected into a small simulated
sweep, and the kit must keep every completed run, record each failed attempt's cause, and leave nothing behind.

Every check is scoped by the test's own sweep label (harness.containers.controller): other sweeps may run on
this engine at the same time. Sweeps are one or two runs at ``--time-scale 0.02``; nothing asserts a timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from harness.artifacts import ArtifactDir, load_run_result
from harness.cli import main
from harness.containers.controller import LABEL_SWEEP, sweep_key
from harness.containers.engine import LABEL_ROLE, LABEL_RUN_ID, LABEL_SERVICE
from tests.integration.conftest import KitImages

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
SWEEP = ["reproduce", "--report", "tr110", "--backend", "sim", "--runs", "1", "--time-scale", "0.02", "--no-isolated"]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def left_behind(client: docker.DockerClient, out: Path) -> list[str]:
    """Containers, networks and volumes of this test's sweep still on the engine."""
    label = f"{LABEL_SWEEP}={sweep_key(out)}"
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters={"label": label})]
    found += [f"network {n.name}" for n in client.networks.list(filters={"label": label})]
    found += [f"volume {v.name}" for v in client.volumes.list(filters={"label": label})]
    return found


def containers(client: docker.DockerClient, out: Path, **labels: str) -> list[docker.models.containers.Container]:
    filters = [f"{LABEL_SWEEP}={sweep_key(out)}", *(f"{k}={v}" for k, v in labels.items())]
    return client.containers.list(filters={"label": filters})


def wait_for(what: str, check: Callable[[], object], timeout_s: float = 240) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def spawn(out: Path, configs: str, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "harness", *SWEEP, "--configs", configs, "--out", str(out), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())


def finish(proc: subprocess.Popen[bytes], timeout_s: float = 240) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err.decode()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_sweep_keeps_completed_runs_and_leaves_nothing(
    tmp_path: Path, docker_client: docker.DockerClient, kit_images: KitImages, signum: int, code: int
) -> None:
    out = tmp_path / "signalled"
    proc = spawn(out, "^00[1-3]$")
    wait_for("a completed run", lambda: list(out.glob("runs/*/run.json")) or proc.poll() is not None)
    proc.send_signal(signum)
    rc, err = finish(proc, 90)
    assert rc == code, err
    assert err.count("Error:") == 1 and "re-run the same command to resume" in err
    assert left_behind(docker_client, out) == []
    assert 1 <= len(ArtifactDir(out).completed_run_ids()) < 3
    assert not list((out / "runs").glob(".*")) and not (out / ".sweep.lock").exists()


def test_sigterm_during_model_preparation_tears_the_preparation_stack_down(
    tmp_path: Path, docker_client: docker.DockerClient, kit_images: KitImages
) -> None:
    out = tmp_path / "preparing"
    proc = spawn(out, "^001$")
    wait_for("the preparation stack", lambda: containers(docker_client, out, **{LABEL_RUN_ID: "model-prep"}))
    proc.send_signal(signal.SIGTERM)
    rc, err = finish(proc, 90)
    assert rc == 143, err
    assert "Error: terminated (SIGTERM)" in err
    assert left_behind(docker_client, out) == []
    assert not (out / "sweep.json").exists()


def test_sigkill_then_resume_reaps_the_orphan_and_completes(
    tmp_path: Path, docker_client: docker.DockerClient, kit_images: KitImages, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "killed"
    proc = spawn(out, "^00[1-2]$")
    first = wait_for("a completed run", lambda: list(out.glob("runs/*/run.json")))
    done_first = {p.parent.name for p in first}  # type: ignore[union-attr]
    wait_for("the second run's stack", lambda: containers(docker_client, out, **{LABEL_ROLE: "agent"}))
    proc.kill()
    proc.wait(30)
    orphans = left_behind(docker_client, out)
    assert orphans, "SIGKILL leaves the in-flight stack (nothing can run in a killed process)"
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/run.json")}
    assert main([*SWEEP, "--configs", "^00[1-2]$", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "took over the lock" in err and "leftover resource(s) of this sweep" in err
    assert left_behind(docker_client, out) == []
    assert len(ArtifactDir(out).completed_run_ids()) == 2 and done_first <= ArtifactDir(out).completed_run_ids()
    assert all(p.stat().st_mtime_ns == m for p, m in mtimes.items()), "a completed run was rewritten"


def _server_url(container: docker.models.containers.Container) -> str:
    container.reload()
    binding = container.attrs["NetworkSettings"]["Ports"]["11434/tcp"][0]
    return f"http://127.0.0.1:{binding['HostPort']}"


def _queue(fault: dict[str, object]) -> Callable[[docker.DockerClient, Path], None]:
    def inject(client: docker.DockerClient, out: Path) -> None:
        def run_server() -> list[docker.models.containers.Container]:  # not the model preparation's server
            found = containers(client, out, **{LABEL_SERVICE: "ollama"})
            return [c for c in found if c.labels.get(LABEL_RUN_ID) != "model-prep"]

        server = wait_for("the first run's server", run_server)
        url = _server_url(server[0]) + "/sim/faults"  # type: ignore[index]
        body = json.dumps([fault] * 4).encode()  # every call of the first attempt

        def post() -> bool:
            try:
                with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=2):
                    return True
            except OSError:
                return False

        wait_for("the server to take the fault", post, 60)

    return inject


def _on_agent(action: Callable[[docker.DockerClient, Path], None]) -> Callable[[docker.DockerClient, Path], None]:
    def inject(client: docker.DockerClient, out: Path) -> None:
        wait_for("the agent", lambda: containers(client, out, **{LABEL_ROLE: "agent"}))
        time.sleep(0.3)
        action(client, out)

    return inject


def _server(client: docker.DockerClient, out: Path) -> docker.models.containers.Container:
    return containers(client, out, **{LABEL_SERVICE: "ollama"})[0]


FAULTS: dict[str, tuple[Callable[[docker.DockerClient, Path], None], str]] = {
    "killed agent": (_on_agent(lambda c, o: containers(c, o, **{LABEL_ROLE: "agent"})[0].kill()), "SIGKILL"),
    "killed server": (_on_agent(lambda c, o: _server(c, o).kill()), "connection"),
    "paused server past the read timeout": (_on_agent(lambda c, o: _server(c, o).pause()), "timed out"),
    "sim drop": (_queue({"kind": "drop"}), "peer closed connection"),
    "sim error500": (_queue({"kind": "error500"}), "HTTP 500"),
    "sim stall": (_queue({"kind": "stall", "delay_ms": 250_000}), "timed out"),
    "sim slow-start": (_queue({"kind": "slow-start", "delay_ms": 250_000}), "timed out"),
}


@pytest.fixture
def injector() -> Iterator[Callable[[Callable[[], None]], None]]:
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []

    def start(job: Callable[[], None]) -> None:
        def run() -> None:
            try:
                job()
            except BaseException as exc:  # reported after the sweep, by the test's own thread
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    for thread in threads:
        thread.join(10)
    assert not errors, errors


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failed_attempt_keeps_its_cause_and_the_retry_completes(
    fault: str,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    kit_images: KitImages,
    monkeypatch: pytest.MonkeyPatch,
    injector: Callable[[Callable[[], None]], None],
) -> None:
    inject, cause = FAULTS[fault]
    out = tmp_path / fault.replace(" ", "-")
    monkeypatch.setenv("HARNESS_READ_TIMEOUT_S", "1.5")
    monkeypatch.setenv("HARNESS_RETRIES_PER_RUN", "1")
    injector(lambda: inject(docker_client, out))
    assert main([*SWEEP, "--configs", "^001$", "--out", str(out)]) == 0
    (result_path,) = out.glob("runs/*/run.json")
    result = load_run_result(result_path)
    assert result.status == "ok" and result.attempts == 2
    first, second = result.attempt_history
    assert first.outcome == "failed" and cause in (first.cause or ""), first.cause
    assert first.log_tail, "the failing attempt keeps its containers' last log lines"
    assert second.outcome == "ok" and second.cause is None
    assert left_behind(docker_client, out) == []


def test_two_sweeps_into_one_folder_and_two_on_one_engine(
    tmp_path: Path, docker_client: docker.DockerClient, kit_images: KitImages, capsys: pytest.CaptureFixture[str]
) -> None:
    one, other = tmp_path / "one", tmp_path / "other"
    first = spawn(one, "^001$")
    wait_for("the first sweep's lock", lambda: (one / ".sweep.lock").exists() and (one / ".sweep.lock").stat().st_size)
    assert main([*SWEEP, "--configs", "^001$", "--out", str(one)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("Error:") and f"pid {first.pid}" in line and "started" in line
    second = spawn(other, "^002$")
    (rc1, err1), (rc2, err2) = finish(first), finish(second)
    assert rc1 == 0, err1
    assert rc2 == 0, err2
    for out in (one, other):
        assert len(ArtifactDir(out).completed_run_ids()) == 1
        assert left_behind(docker_client, out) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 80 MiB tmpfs (root only): a disk that can be filled without touching the host's."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=80m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_disk_that_fills_mid_sweep_keeps_completed_runs(
    small_disk: Path, capsys: pytest.CaptureFixture[str], injector: Callable[[Callable[[], None]], None]
) -> None:
    out = small_disk / "sweep"

    def fill() -> None:
        wait_for("a completed run", lambda: list(out.glob("runs/*/run.json")))
        with (small_disk / "filler").open("wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * (1 << 20))
            except OSError:
                pass

    injector(fill)
    args = ["reproduce", "--report", "tr110", "--backend", "sim", "--executor", "local", "--runs", "1"]
    code = main([*args, "--configs", "^00[1-3]$", "--no-isolated", "--time-scale", "0.05", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert [line for line in err.splitlines() if line.startswith("Error:")], err
    assert "Traceback" not in err
    assert len(ArtifactDir(out).completed_run_ids()) >= 1
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tr")]
    assert not [p for p in (out / "runs").iterdir() if p.name.startswith(".")], "a half-written run folder"


def test_a_full_or_read_only_destination_is_refused_before_anything_starts(
    small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (small_disk / "filler").open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * (1 << 20))
        except OSError:
            pass
    args = ["reproduce", "--report", "tr110", "--backend", "sim", "--executor", "local", "--runs", "1"]
    assert main([*args, "--out", str(small_disk / "full")]) == 2
    assert "MB free" in capsys.readouterr().err
    (small_disk / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    assert main([*args, "--out", str(small_disk / "ro")]) == 2
    assert "not writable" in capsys.readouterr().err
    assert not (small_disk / "full").exists() and not (small_disk / "ro").exists()
