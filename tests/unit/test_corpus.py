"""The committed corpus is exactly what the generator makes, in the originals' shape."""

from __future__ import annotations

from pathlib import Path

from harness.agents.workflow import ingest
from harness.protocol import corpus

CORPUS = Path(__file__).resolve().parents[2] / "experiments" / "corpus"


def test_committed_corpus_matches_the_generator() -> None:
    entries, digest = ingest(CORPUS)
    files = corpus.generate()
    assert digest == corpus.corpus_sha256(files)
    assert len(entries) == 101
    assert {k: sum(e.kind == k for e in entries) for k in ("csv", "json", "md")} == {
        "csv": 28,
        "json": 44,
        "md": 29,
    }


def test_generation_is_deterministic_and_seeded() -> None:
    assert corpus.generate() == corpus.generate()
    assert corpus.generate(seed=1) != corpus.generate()


def test_summary_lines_follow_path_byte_order() -> None:
    entries = corpus.describe({"b.md": b"x\n", "a.csv": b"1\n2\n", "B.json": b"{}"})
    values = corpus.summarize(entries)
    assert values["file_summary"].splitlines() == [
        "- B.json (json, 2 bytes, 0 lines)",
        "- a.csv (csv, 4 bytes, 2 lines)",
        "- b.md (md, 2 bytes, 1 lines)",
    ]
    assert corpus.render("{{file_count}} files, {{nope}}", values) == "3 files, {{nope}}"
