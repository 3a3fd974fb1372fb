"""Golden report and manifest: fixed inputs rebuilt by this kit must give the committed bytes.

The inputs are committed: ``tests/fixtures/artifact-tr110-local/`` (a ``reproduce --executor local`` folder of
tr110 config 013, made once; report and manifest removed) and the originals' tr110 CSV. The goldens in
``tests/golden/`` were produced by the kit before the architecture refactor (commit 7def203), so this test is
what shows the refactor changed no byte of a report or a manifest. A deliberate change to the report's content
regenerates them, and the diff of ``report.md`` shows what changed::

    python -m tests.unit.test_golden_report --write
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest

from harness.analysis.frames import format_summary, import_and_summarize
from harness.analysis.report import build_report, build_report_from_import
from harness.evidence import manifest
from harness.protocol.spec import load_spec
from harness.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "artifact-tr110-local"
ORIGINAL_CSV = ROOT / "tests" / "fixtures" / "reference-data" / "tr110_python_multiagent.csv"
GOLDEN = ROOT / "tests" / "golden"
WRITTEN_AT = "2026-01-01T00:00:00+00:00"
COMMAND = ["harness", "reproduce", "--report", "tr110"]


def _settings() -> Settings:
    """Every field given, so no HARNESS_* variable of the machine running the test reaches the manifest."""
    return Settings(
        experiments_dir=Path("experiments"),
        artifacts_dir=Path("artifacts"),
        backend="sim",
        time_scale=0.01,
        sim_seed=1234,
        request_timeout_s=600.0,
        connect_timeout_s=10.0,
        retries_per_run=1,
        log_level="INFO",
    )


def rebuild_artifact(work: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Copy the fixture folder, build its report, write its manifest at a fixed time; returns the folder."""
    folder = work / FIXTURE.name.removeprefix("artifact-")
    shutil.copytree(FIXTURE, folder)
    build_report(folder)
    monkeypatch.setattr(manifest, "_now", lambda: WRITTEN_AT)
    manifest.write_manifest(folder, command=COMMAND, settings=_settings())
    return folder


def rebuild_import(work: Path) -> tuple[str, Path]:
    """``analyze --import``: the summary it prints and the report folder it writes."""
    spec = load_spec(ROOT / "experiments" / "tr110.toml")
    summary = format_summary(import_and_summarize(ORIGINAL_CSV, spec.id, spec=spec))
    out = work / "import-report"
    build_report_from_import(ORIGINAL_CSV, spec, out)
    return summary, out


def sha256sums(folder: Path) -> str:
    """``sha256sum`` lines of every file under ``folder`` (sorted, relative as ``./path``)."""
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  ./{rel}\n")
    return "".join(lines)


def test_artifact_report_and_manifest_match_the_golden_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    folder = rebuild_artifact(tmp_path, monkeypatch)
    golden = GOLDEN / "tr110-local"
    assert (folder / "report" / "report.md").read_text() == (golden / "report.md").read_text()
    # The manifest hashes every file of the folder, report.html, figures, summary and verdicts included.
    assert (folder / "manifest.json").read_bytes() == (golden / "manifest.json").read_bytes()


def test_imported_report_matches_the_golden_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    summary, out = rebuild_import(tmp_path)
    golden = GOLDEN / "import-tr110"
    assert summary == (golden / "summary.txt").read_text()
    assert (out / "report.md").read_text() == (golden / "report.md").read_text()
    assert sha256sums(out) == (golden / "sha256sums.txt").read_text()


def _write_goldens() -> None:
    """Regenerate the goldens with this kit (after a deliberate change to what a report says)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        folder = rebuild_artifact(Path(tmp), mp)
        golden = GOLDEN / "tr110-local"
        shutil.copyfile(folder / "report" / "report.md", golden / "report.md")
        shutil.copyfile(folder / "manifest.json", golden / "manifest.json")
        summary, out = rebuild_import(Path(tmp))
        golden = GOLDEN / "import-tr110"
        (golden / "summary.txt").write_text(summary)
        shutil.copyfile(out / "report.md", golden / "report.md")
        (golden / "sha256sums.txt").write_text(sha256sums(out))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.unit.test_golden_report --write")
    _write_goldens()
