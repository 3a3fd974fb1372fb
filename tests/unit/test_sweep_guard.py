"""One set of settings per sweep, one writer per folder, orphans told from live controllers, destinations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.artifacts import load_sweep
from harness.cli import main
from harness.containers import controller
from harness.errors import BadInputError
from harness.evidence.verify import verify_folder
from harness.run.destination import check_destination
from harness.run.folder_lock import Holder, acquire
from tests.unit.conftest import LOCAL_ARGS, ROOT


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _without(args: list[str], flag: str) -> list[str]:
    i = args.index(flag)
    return args[:i] + args[i + 2 :]


CHANGES = {
    "time scale": ([*_without(LOCAL_ARGS, "--time-scale"), "--time-scale", "0.05"], {}, "time scale 0.01 → 0.05"),
    "simulator seed": (LOCAL_ARGS, {"HARNESS_SIM_SEED": "99"}, "simulator seed 1234 → 99"),
    "more runs": ([*_without(LOCAL_ARGS, "--runs"), "--runs", "2"], {}, "runs per config 1 → 2"),
    "other configs": ([*_without(LOCAL_ARGS, "--configs"), "--configs", "^012$"], {}, "configs [013] → [012]"),
    "interleave seed": ([*LOCAL_ARGS, "--interleave-seed", "3"], {}, "interleave seed None → 3"),
    "no isolated": ([*LOCAL_ARGS, "--no-isolated"], {}, "isolated baselines True → False"),
}


def test_a_resume_with_any_setting_changed_is_refused_and_extend_grows_on_purpose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    assert main([*LOCAL_ARGS, "--out", str(out)]) == 0
    capsys.readouterr()
    frozen = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for name, (args, env, says) in CHANGES.items():
        with monkeypatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            assert main([*args, "--out", str(out)]) == 2, name
        err = capsys.readouterr().err
        (line,) = [x for x in err.splitlines() if x.startswith("Error:")]
        assert says in line and "re-run the original command" in line and "new --out folder" in line, line
        assert ("--extend" in line) == (name == "more runs"), line  # only growth may be extended
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == frozen, f"{name} changed the folder"
    grow = [*_without(LOCAL_ARGS, "--runs"), "--runs", "2"]
    assert main([*grow, "--out", str(out), "--extend"]) == 0
    sweep = load_sweep(out)
    assert sweep.planned_runs == 6 and len(sweep.extensions) == 1
    assert sweep.extensions[0].planned_runs_before == 3 and sweep.settings and sweep.settings.runs_per_config == 2
    assert len(json.loads((out / "plan.json").read_text())["runs"]) == 6
    assert verify_folder(out).ok
    assert main([*grow, "--out", str(out)]) == 0  # the grown sweep resumes as itself


def test_extend_cannot_change_what_is_not_growth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    assert main([*LOCAL_ARGS, "--out", str(out)]) == 0
    changed = [*_without(LOCAL_ARGS, "--time-scale"), "--time-scale", "0.05", "--extend"]
    assert main([*changed, "--out", str(out)]) == 2
    assert "--extend only grows a sweep" in capsys.readouterr().err


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_ones_lock_is_taken_over(tmp_path: Path) -> None:
    lock = acquire(tmp_path, Holder.me("first"))
    with pytest.raises(BadInputError, match=rf"another reproduce \(host .*, pid {os.getpid()}, started "):
        acquire(tmp_path, Holder.me("second"))
    lock.release()
    assert not (tmp_path / ".sweep.lock").exists()
    # A holder that dies without releasing (SIGKILL): its name stays, the kernel drops its lock.
    code = (
        "import sys, os; from pathlib import Path; from harness.run.folder_lock import Holder, acquire; "
        "acquire(Path(sys.argv[1]), Holder.me('killed')); os.kill(os.getpid(), 9)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, check=False)
    taken = acquire(tmp_path, Holder.me("resume"))
    assert taken.previous is not None and taken.previous.pid != os.getpid()
    taken.release()


def test_a_controller_is_alive_only_while_its_process_is() -> None:
    me = controller.current()
    assert me.alive() is True
    assert controller.from_labels(me.labels("k")) == me
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = controller.Controller(me.host, int(gone.stdout), "1")
    assert dead.alive() is False
    assert controller.Controller("another-host", 1, "1").alive() is None
    assert controller.from_labels({}) is None


def test_destination_rules(tmp_path: Path) -> None:
    def check(path: Path) -> Path:
        return check_destination(path, what="--out", kit_root=ROOT, artifacts_dir=ROOT / "artifacts")

    assert check(tmp_path / "new" / "deeper") == (tmp_path / "new" / "deeper").resolve()
    assert check(ROOT / "artifacts" / "cfk-never") == (ROOT / "artifacts" / "cfk-never").resolve()
    (tmp_path / "resume").mkdir()
    (tmp_path / "resume" / "sweep.json").write_text("{}")
    assert check(tmp_path / "resume")
    for bad in (Path("/"), Path("/usr/local/x"), ROOT, ROOT / "harness", Path("/cfk-never-made")):
        with pytest.raises(BadInputError):
            check(bad)
    with pytest.raises(BadInputError, match="MB free"):
        check_destination(
            tmp_path / "x", what="--out", kit_root=ROOT, artifacts_dir=ROOT / "artifacts", min_free_bytes=1 << 62
        )


def test_a_bundle_whose_compose_files_differ_needs_the_flag_after_the_diff(tmp_path: Path) -> None:
    from harness.containers.compose import COMPOSE_DIR
    from harness.run import bundle_compose

    bundled = tmp_path / "compose"
    bundled.mkdir()
    for path in COMPOSE_DIR.glob("*.yml"):
        (bundled / path.name).write_bytes(path.read_bytes())
    shown: list[str] = []
    bundle_compose.check(bundled, COMPOSE_DIR, accept=False, show=shown.append, kit_version="t")
    assert shown == []  # the kit's own files: nothing to show, nothing to accept
    tampered = bundled / "single-ollama.yml"
    tampered.write_text(tampered.read_text().replace('user: "10001:10001"', 'user: "10001:10001"\n  cap_drop: []'))
    with pytest.raises(BadInputError, match="--accept-bundle-compose"):
        bundle_compose.check(bundled, COMPOSE_DIR, accept=False, show=shown.append, kit_version="t")
    assert any(line.startswith("+") and "cap_drop: []" in line for line in shown)
    bundle_compose.check(bundled, COMPOSE_DIR, accept=True, show=shown.append, kit_version="t")
