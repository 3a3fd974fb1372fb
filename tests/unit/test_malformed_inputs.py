"""Malformed inputs of every kind (command line, settings, spec, CSV, bundle, artifact folder) are refused the
same way: exit 2, one ``Error:`` line that says what to do, and nothing written anywhere."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]
TR110 = ["reproduce", "--report", "tr110", "--backend", "sim", "--executor", "local", "--runs", "1"]


@dataclass(frozen=True)
class Case:
    """argv (``{tmp}`` is the case's folder), environment, a setup that makes inputs, and what the line says."""

    argv: list[str]
    says: str
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None


def _spec(edit: Callable[[str], str]) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        (tmp / "exp").mkdir()
        text = (ROOT / "experiments" / "tr110.toml").read_text()
        changed = edit(text)
        assert changed != text, "the edit must change the spec"
        (tmp / "exp" / "tr110.toml").write_text(changed)

    return make


def _file(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_bytes(data)


def _folder_with(name: str, data: bytes) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        (tmp / "dir").mkdir()
        (tmp / "dir" / name).write_bytes(data)

    return make


def _truncated_against(tmp: Path) -> None:
    for side in ("a", "b"):
        (tmp / side).mkdir()
    (tmp / "b" / "sweep.json").write_text('{"schema_version": 1, "artifact_id": "b", "rep')


SPEC_ENV = {"HARNESS_EXPERIMENTS_DIR": "{tmp}/exp"}
CASES: dict[str, Case] = {
    # command line
    "runs zero": Case([*TR110, "--runs", "0", "--out", "{tmp}/o"], "out of range"),
    "runs negative": Case([*TR110, "--runs", "-3", "--out", "{tmp}/o"], "out of range"),
    "runs huge": Case([*TR110, "--runs", "99999999999", "--out", "{tmp}/o"], "out of range"),
    "runs not a number": Case([*TR110, "--runs", "abc", "--out", "{tmp}/o"], "not an integer"),
    "time scale zero": Case([*TR110, "--time-scale", "0", "--out", "{tmp}/o"], "out of range"),
    "time scale inf": Case([*TR110, "--time-scale", "inf", "--out", "{tmp}/o"], "out of range"),
    "time scale nan": Case([*TR110, "--time-scale", "nan", "--out", "{tmp}/o"], "out of range"),
    "time scale negative": Case([*TR110, "--time-scale", "-1", "--out", "{tmp}/o"], "out of range"),
    "out empty": Case([*TR110, "--out", ""], "empty path"),
    "out root": Case([*TR110, "--out", "/"], "system folder"),
    "out /etc/x": Case([*TR110, "--out", "/etc/cfk-never"], "system folder"),
    "out a file": Case([*TR110, "--out", "{tmp}/f"], "is a file", setup=_file("f", b"x")),
    "out under a file": Case([*TR110, "--out", "{tmp}/f/sub"], "is a file", setup=_file("f", b"x")),
    "out inside the kit": Case([*TR110, "--out", str(ROOT / "harness" / "cfk-never")], "kit's own tree"),
    "out the kit itself": Case([*TR110, "--out", str(ROOT)], "kit's own tree"),
    "out holds other files": Case(
        [*TR110, "--out", "{tmp}/dir"], "not an artifact folder", setup=_folder_with("notes.txt", b"mine")
    ),
    "configs bad regex": Case([*TR110, "--configs", "(", "--out", "{tmp}/o"], "invalid regular expression"),
    "configs match none": Case([*TR110, "--configs", "^nope$", "--out", "{tmp}/o"], "matches no config"),
    "interleave seed negative": Case([*TR110, "--interleave-seed", "-1", "--out", "{tmp}/o"], "out of range"),
    "unknown report": Case(["reproduce", "--report", "tr999", "--out", "{tmp}/o"], "no experiment spec"),
    "agent read timeout zero": Case(
        ["agent", "single", "--output-dir", "{tmp}/o", "--read-timeout-s", "0"], "out of range"
    ),
    "agent pause inf": Case(["agent", "single", "--output-dir", "{tmp}/o", "--pause-s", "inf"], "out of range"),
    "stack port out of range": Case(["stack", "up", "--port", "70000"], "out of range"),
    "plan runs over the maximum": Case(["plan", "--report", "tr110", "--runs", "1001"], "out of range"),
    "bundle with a changed setting": Case(
        ["reproduce", "--bundle", "{tmp}/b.tar", "--runs", "2"], "cannot change it", setup=_file("b.tar", b"")
    ),
    "bundle with another llama.cpp device": Case(
        ["reproduce", "--bundle", "{tmp}/b.tar", "--llamacpp-device", "cpu"],
        "cannot change it",
        setup=_file("b.tar", b""),
    ),
    # settings
    "read timeout inf": Case([*TR110, "--out", "{tmp}/o"], "read_timeout_s", env={"HARNESS_READ_TIMEOUT_S": "inf"}),
    "connect timeout nan": Case(
        [*TR110, "--out", "{tmp}/o"], "connect_timeout_s", env={"HARNESS_CONNECT_TIMEOUT_S": "nan"}
    ),
    "call deadline zero": Case([*TR110, "--out", "{tmp}/o"], "call_deadline_s", env={"HARNESS_CALL_DEADLINE_S": "0"}),
    "time scale setting zero": Case([*TR110, "--out", "{tmp}/o"], "time_scale", env={"HARNESS_TIME_SCALE": "0"}),
    "sim seed negative": Case([*TR110, "--out", "{tmp}/o"], "sim_seed", env={"HARNESS_SIM_SEED": "-5"}),
    "retries too many": Case([*TR110, "--out", "{tmp}/o"], "retries_per_run", env={"HARNESS_RETRIES_PER_RUN": "99"}),
    "renamed timeout variable": Case(
        [*TR110, "--out", "{tmp}/o"], "HARNESS_CALL_DEADLINE_S", env={"HARNESS_REQUEST_TIMEOUT_S": "4"}
    ),
    "artifacts dir a system root": Case(TR110, "system folder", env={"HARNESS_ARTIFACTS_DIR": "/"}),
    "artifacts dir a file": Case(TR110, "is a file", env={"HARNESS_ARTIFACTS_DIR": "{tmp}/f"}, setup=_file("f", b"x")),
    # specs
    "spec runs huge": Case(
        ["plan", "--report", "tr110"], "runs", SPEC_ENV, _spec(lambda t: t.replace("runs = 5", "runs = 100000000"))
    ),
    "spec runs zero": Case(
        ["plan", "--report", "tr110"], "runs", SPEC_ENV, _spec(lambda t: t.replace("runs = 5", "runs = 0"))
    ),
    "spec not TOML": Case(["plan", "--report", "tr110"], "tr110.toml", SPEC_ENV, _spec(lambda t: t + "\n[[[ nope")),
    "spec port out of range": Case(
        ["plan", "--report", "tr110"], "ports", SPEC_ENV, _spec(lambda t: t.replace("11434", "70000", 1))
    ),
    "spec option nan": Case(
        ["plan", "--report", "tr110"],
        "temperature",
        SPEC_ENV,
        _spec(lambda t: t.replace("temperature = 0.8", "temperature = nan", 1)),
    ),
    # originals' CSV
    "csv missing": Case(["analyze", "--import", "{tmp}/none.csv", "--report", "tr110"], "no such file"),
    "csv garbage": Case(
        ["analyze", "--import", "{tmp}/g.csv", "--report", "tr110"], "g.csv", setup=_file("g.csv", b"\x00\x01 nope\n")
    ),
    # bundles
    "bundle missing": Case(["reproduce", "--bundle", "{tmp}/none.tar", "--out", "{tmp}/o"], "none.tar"),
    "bundle not a tar": Case(
        ["reproduce", "--bundle", "{tmp}/b.tar", "--out", "{tmp}/o"], "b.tar", setup=_file("b.tar", b"not a tar")
    ),
    # artifact folders
    "verify a non-artifact folder": Case(["verify", "{tmp}/dir"], "manifest", setup=_folder_with("x", b"1")),
    "verify against a truncated sweep": Case(
        ["verify", "{tmp}/a", "--against", "{tmp}/b"], "not a readable artifact folder", setup=_truncated_against
    ),
    "report of a non-artifact folder": Case(
        ["report", "{tmp}/dir"], "not an artifact folder", setup=_folder_with("x", b"1")
    ),
}


def _files(*roots: Path) -> set[str]:
    return {str(p) for root in roots if root.exists() for p in root.rglob("*")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input_is_refused_cleanly(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    monkeypatch.chdir(ROOT)
    for key in [k for k in os.environ if k.startswith("HARNESS_")]:
        monkeypatch.delenv(key)
    tmp = tmp_path / "case"
    tmp.mkdir()
    if case.setup is not None:
        case.setup(tmp)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value.replace("{tmp}", str(tmp)))
    before = _files(tmp, ROOT / "artifacts")
    argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses before main's own handling
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert code == 2, err
    assert len(errors) == 1, err
    assert case.says in errors[0], errors[0]
    assert "Traceback" not in err
    assert _files(tmp, ROOT / "artifacts") == before, "a refused input wrote something"


def test_the_table_covers_every_kind_of_input() -> None:
    assert len(CASES) >= 30
    kinds = {"reproduce", "agent", "stack", "plan", "analyze", "verify", "report"}
    assert kinds <= {c.argv[0] for c in CASES.values()}
