//! Parity with the Python side, against fixtures produced once by `harness.ollama.request_body` and
//! `harness.corpus` (see `harness/rust/tests/fixtures/README.md`).

use std::path::PathBuf;

use chimeraforge_core::body::{request_body, KeepAlive, OptionValue, Options};
use chimeraforge_core::corpus::{render, summarize};
use chimeraforge_core::workflow::ingest;
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../..")
}

fn fixture(name: &str) -> String {
    let path = repo_root().join("harness/rust/tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn corpus_values() -> Vec<(String, String)> {
    let (entries, _) = ingest(&repo_root().join("experiments/corpus")).expect("corpus");
    summarize(&entries)
}

#[test]
fn corpus_summary_matches_python() {
    let want: Value = serde_json::from_str(&fixture("corpus_summary.json")).unwrap();
    let (entries, sha) = ingest(&repo_root().join("experiments/corpus")).expect("corpus");
    assert_eq!(
        entries.len() as u64,
        want["files_ingested"].as_u64().unwrap()
    );
    assert_eq!(sha, want["corpus_sha256"].as_str().unwrap());
    let want_values: Vec<(String, String)> = want["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(summarize(&entries), want_values);
}

fn options_of(v: &Value) -> Option<Options> {
    let map = v.as_object()?;
    Some(
        map.iter()
            .map(|(k, n)| {
                let value = if n.is_i64() {
                    OptionValue::Int(n.as_i64().unwrap())
                } else {
                    OptionValue::Float(n.as_f64().expect("number"))
                };
                (k.clone(), value)
            })
            .collect(),
    )
}

#[test]
fn request_bodies_are_byte_identical_to_python() {
    let prompts = repo_root().join("experiments/prompts");
    let analysis = std::fs::read_to_string(prompts.join("analysis.txt")).unwrap();
    let report = std::fs::read_to_string(prompts.join("report.txt")).unwrap();
    let values = corpus_values();
    let mut seen = 0;
    for line in fixture("request_bodies.jsonl").lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let name = case["name"].as_str().unwrap();
        let prompt = match case.get("render").and_then(Value::as_str) {
            Some("analysis") => Some(render(&analysis, &values)),
            Some("report") => {
                let mut v = values.clone();
                v.push((
                    "analysis".into(),
                    case["analysis_text"].as_str().unwrap().to_owned(),
                ));
                Some(render(&report, &v))
            }
            _ => case["prompt"].as_str().map(str::to_owned),
        };
        let keep_alive = match &case.get("keep_alive") {
            Some(Value::String(s)) => Some(KeepAlive::Text(s.clone())),
            Some(Value::Number(n)) => Some(KeepAlive::Seconds(n.as_i64().unwrap())),
            _ => None,
        };
        let body = request_body(
            case["model"].as_str().unwrap(),
            prompt.as_deref(),
            case["stream"].as_bool().unwrap(),
            options_of(&case["options"]).as_ref(),
            keep_alive.as_ref(),
        )
        .unwrap();
        let want = case["body"].as_str().unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            want,
            "case {name}: body differs from Python's request_body"
        );
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} cases");
}
