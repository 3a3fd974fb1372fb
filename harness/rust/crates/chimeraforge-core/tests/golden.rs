//! The golden record file shared with the Python loader (`tests/golden/records.jsonl`, one record of each
//! kind): every line deserialises into the Rust types and re-serialises to the same JSON, and even to the
//! same bytes as Python's `dump_record` (sorted keys, compact).

use std::path::PathBuf;

use chimeraforge_core::records::Record;
use serde_json::Value;

#[test]
fn golden_records_round_trip() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../tests/golden/records.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut kinds = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let record = Record::parse(line).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
        let again = record.to_line();
        let want: Value = serde_json::from_str(line).unwrap();
        let got: Value = serde_json::from_str(&again).unwrap();
        assert_eq!(got, want, "line {} changed in a round trip", n + 1);
        assert_eq!(
            again,
            line,
            "line {}: not byte-identical to dump_record",
            n + 1
        );
        kinds.push(want["kind"].as_str().unwrap().to_owned());
    }
    kinds.sort();
    assert_eq!(kinds, ["agent_run", "call", "multi_run"]);
}
