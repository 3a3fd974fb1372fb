"""The golden record file both languages validate: the Python loader reads it and writes the same bytes."""

from __future__ import annotations

from pathlib import Path

from harness.records import AgentRunRecord, CallRecord, MultiRunRecord, dump_record, read_records

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "records.jsonl"


def test_golden_records_load_and_round_trip_byte_for_byte() -> None:
    records = read_records(GOLDEN)
    assert {type(r) for r in records} == {CallRecord, AgentRunRecord, MultiRunRecord}
    lines = [line for line in GOLDEN.read_text().splitlines() if line.strip()]
    assert [dump_record(r) for r in records] == lines
