"""Records round-trip, and unknown schema versions are refused with a way forward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import ArtifactError, SchemaVersionError
from harness.records import MultiRunRecord, dump_record, parse_record, read_records


def _multi() -> MultiRunRecord:
    return MultiRunRecord(
        run_id="abc",
        language="rust",
        runtime="tokio",
        scenario="chimera_homo",
        collector_url="http://a",
        insight_url="http://b",
        start_ns=1,
        end_ns=2,
        ok=True,
    )


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(dump_record(_multi()) + "\n\n")
    assert read_records(path) == [_multi()]


def test_unknown_schema_version_is_refused() -> None:
    body = json.loads(dump_record(_multi()))
    body["schema_version"] = 2
    with pytest.raises(SchemaVersionError, match="schema_version 2 is not supported"):
        parse_record(body)


def test_unknown_field_is_refused_with_its_name() -> None:
    body = json.loads(dump_record(_multi())) | {"tokens_per_s": 3}
    with pytest.raises(ArtifactError, match="tokens_per_s"):
        parse_record(body, where="x.jsonl:1")
