//! Binary-level tests against the simulated Ollama (`python -m harness.sim`, time-scaled, few tokens): every
//! runtime, single and multi; records valid, counted, consistent with what the server received; and the
//! originals' efficiency formula separating `async-std-mutex` from the runtimes done right.
//! Skipped with a message when the repository's `.venv` is missing.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use serde_json::Value;

const RUNTIMES: [&str; 6] = [
    "tokio",
    "tokio-local",
    "smol",
    "smol-1kb",
    "async-std",
    "async-std-mutex",
];

/// Timing-sensitive tests run one at a time (the machine has few cores).
static SERIAL: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../..")
}

fn python() -> Option<PathBuf> {
    let p = repo_root().join(".venv/bin/python");
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} not found; create the repository's virtualenv to run the simulator tests",
            p.display()
        );
        None
    }
}

struct Sim {
    child: Child,
    url: String,
}

impl Sim {
    fn start(python: &Path) -> Sim {
        let mut child = Command::new(python)
            .args([
                "-m",
                "harness.sim",
                "--port",
                "0",
                "--preload",
                "gemma3:latest",
                "--tokens",
                "40",
                "--decode-tps",
                "800",
                "--load-ms",
                "30",
            ])
            .current_dir(repo_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the simulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("simulator said {line:?}"))
            .to_owned();
        Sim { child, url }
    }

    /// sha256 of every request body the simulator received.
    fn body_hashes(&self) -> HashSet<String> {
        let authority = self.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(authority).unwrap();
        write!(s, "GET /sim/requests HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_str(body).unwrap();
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["body_sha256"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(bin: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run the agent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON"))
        .collect()
}

fn of_kind<'a>(recs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    recs.iter().filter(|r| r["kind"] == kind).collect()
}

fn check_calls(recs: &[Value], runtime: &str, sent: &HashSet<String>) {
    for r in recs {
        assert_eq!(r["schema_version"], 1);
        assert_eq!(r["language"], "rust");
        assert_eq!(r["runtime"], runtime);
        assert_eq!(r["ok"], true, "{r}");
    }
    for c in of_kind(recs, "call") {
        let start = c["start_ns"].as_i64().unwrap();
        let first = c["first_chunk_ns"].as_i64().unwrap();
        let end = c["end_ns"].as_i64().unwrap();
        assert!(start <= first && first <= end, "{c}");
        let offsets = c["chunk_offsets_ns"].as_array().unwrap();
        assert_eq!(c["chunk_count"].as_u64().unwrap(), offsets.len() as u64);
        assert_eq!(offsets[0].as_i64().unwrap(), first - start);
        assert!(c["response_chars"].as_u64().unwrap() > 0);
        assert_eq!(c["server_simulated"], true);
        // 40 streamed tokens, and Ollama's eval_count also counts the end-of-sequence token (the simulator too)
        assert_eq!(c["chunk_count"], 40);
        assert_eq!(c["eval_count"], 41);
        assert_eq!(c["http_status"], 200);
        let sha = c["request_sha256"].as_str().unwrap();
        assert!(sent.contains(sha), "{runtime}: server never saw body {sha}");
    }
    for a in of_kind(recs, "agent_run") {
        assert_eq!(a["files_ingested"], 101);
        assert_eq!(a["calls_ok"], 2);
        assert!(a["peak_rss_bytes"].as_i64().unwrap() > 0);
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn single_agent_on_every_runtime() {
    let Some(py) = python() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sim = Sim::start(&py);
    for runtime in RUNTIMES {
        let dir = tmp(&format!("single-{runtime}"));
        let (code, err) = run(
            env!("CARGO_BIN_EXE_chimeraforge-agent"),
            &[
                "--base-url",
                &sim.url,
                "--runtime",
                runtime,
                "--runs",
                "1",
                "--pause-s",
                "0",
                "--output-dir",
                dir.to_str().unwrap(),
                "--chimera-num-gpu",
                "80",
                "--chimera-num-ctx",
                "512",
                "--chimera-temperature",
                "1.0",
                "--run-id",
                "test-single",
            ],
        );
        assert_eq!(code, 0, "{runtime}: {err}");
        let recs = records(&dir);
        assert_eq!(of_kind(&recs, "call").len(), 4, "{runtime}");
        let runs = of_kind(&recs, "agent_run");
        assert_eq!(runs.len(), 2, "{runtime}");
        assert_eq!(runs[0]["role"], "baseline");
        assert_eq!(runs[0]["options"], Value::Null);
        assert_eq!(runs[1]["role"], "chimera");
        assert_eq!(runs[1]["options"]["temperature"], 1.0);
        assert!(
            runs[0]["process_start_to_first_request_ns"]
                .as_i64()
                .unwrap()
                > 0
        );
        assert_eq!(runs[1]["process_start_to_first_request_ns"], Value::Null);
        check_calls(&recs, runtime, &sim.body_hashes());
    }
}

/// The originals' formula: (exec_A + exec_B) / wall / 2 x 100.
fn original_efficiency(recs: &[Value]) -> f64 {
    let dur = |r: &Value| (r["end_ns"].as_i64().unwrap() - r["start_ns"].as_i64().unwrap()) as f64;
    let multi = of_kind(recs, "multi_run");
    assert_eq!(multi.len(), 1);
    let exec: f64 = of_kind(recs, "agent_run").into_iter().map(dur).sum();
    exec / dur(multi[0]) / 2.0 * 100.0
}

#[test]
fn multi_agent_on_every_runtime_and_the_mutex_flaw() {
    let Some(py) = python() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (Sim::start(&py), Sim::start(&py));
    let mut figures = Vec::new();
    for runtime in RUNTIMES {
        let dir = tmp(&format!("multi-{runtime}"));
        let (code, err) = run(
            env!("CARGO_BIN_EXE_chimeraforge-multi"),
            &[
                "--collector-ollama-url",
                &a.url,
                "--insight-ollama-url",
                &b.url,
                "--runtime",
                runtime,
                "--scenario",
                "chimera-homo",
                "--chimera-num-gpu",
                "80",
                "--chimera-num-ctx",
                "512",
                "--chimera-temperature",
                "1.0",
                "--output-dir",
                dir.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{runtime}: {err}");
        let recs = records(&dir);
        assert_eq!(of_kind(&recs, "call").len(), 4, "{runtime}");
        assert_eq!(of_kind(&recs, "agent_run").len(), 2, "{runtime}");
        let multi = of_kind(&recs, "multi_run")[0].clone();
        assert_eq!(multi["scenario"], "chimera_homo");
        assert_eq!(multi["collector_url"], a.url.as_str());
        let mut sent = a.body_hashes();
        sent.extend(b.body_hashes());
        check_calls(&recs, runtime, &sent);
        figures.push((runtime, original_efficiency(&recs)));
    }
    eprintln!("originals' efficiency (%): {figures:?}");
    for (runtime, eff) in figures {
        match runtime {
            "async-std-mutex" => assert!(eff < 60.0, "{runtime}: {eff:.1} %"),
            "tokio" | "async-std" => assert!(eff > 80.0, "{runtime}: {eff:.1} %"),
            _ => assert!(eff > 60.0, "{runtime}: {eff:.1} %"),
        }
    }
}

#[test]
fn bad_flags_exit_2_and_failed_calls_are_recorded() {
    let agent = env!("CARGO_BIN_EXE_chimeraforge-agent");
    let multi = env!("CARGO_BIN_EXE_chimeraforge-multi");
    let dir = tmp("bad");
    let out = dir.to_str().unwrap();
    assert_eq!(
        run(agent, &["--output-dir", out, "--runtime", "gevent"]).0,
        2
    );
    assert_eq!(run(agent, &["--output-dir", out, "--agents", "judge"]).0, 2);
    assert_eq!(
        run(agent, &["--output-dir", out, "--chimera-num-gpu", "8.5"]).0,
        2
    );
    assert_eq!(
        run(multi, &["--output-dir", out, "--scenario", "homo"]).0,
        2
    );
    let (code, err) = run(
        multi,
        &[
            "--output-dir",
            out,
            "--scenario",
            "chimera_hetero",
            "--chimera-num-gpu",
            "80",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.starts_with("Error: chimera_hetero needs"), "{err}");
    assert!(
        !dir.join("records.jsonl").exists(),
        "bad input must write nothing"
    );

    // A server that refuses connections: the failed call is recorded, the exit code is 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for runtime in ["tokio", "smol"] {
        let dir = tmp(&format!("refused-{runtime}"));
        let url = format!("http://127.0.0.1:{port}");
        let (code, _) = run(
            agent,
            &[
                "--base-url",
                &url,
                "--agents",
                "baseline",
                "--runtime",
                runtime,
                "--output-dir",
                dir.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 1, "{runtime}");
        let recs = records(&dir);
        let calls = of_kind(&recs, "call");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0]["ok"], false);
        assert!(
            calls[0]["error"]
                .as_str()
                .unwrap()
                .starts_with("connection failed"),
            "{}",
            calls[0]
        );
        assert_eq!(calls[0]["http_status"], Value::Null);
        let run = &of_kind(&recs, "agent_run")[0];
        assert_eq!(
            (run["calls_failed"].as_u64(), run["ok"].as_bool()),
            (Some(1), Some(false))
        );
    }
}

/// A server that answers with a streaming head and then sends nothing, keeping the connection open.
fn stalling_server() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        // One connection per runtime below; each is answered, then held open until the test ends.
        for stream in listener.incoming().take(RUNTIMES.len()) {
            let mut stream = stream.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            held.push(stream);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    });
    (url, handle)
}

#[test]
fn a_stalled_stream_fails_after_the_read_timeout_on_every_runtime() {
    let agent = env!("CARGO_BIN_EXE_chimeraforge-agent");
    let dir = tmp("bad-timeout");
    let bad = run(
        agent,
        &[
            "--output-dir",
            dir.to_str().unwrap(),
            "--read-timeout-s",
            "0",
        ],
    );
    assert_eq!(bad.0, 2, "{}", bad.1);
    assert!(bad.1.contains("--read-timeout-s must be a positive"));

    let (url, server) = stalling_server();
    for runtime in RUNTIMES {
        let dir = tmp(&format!("stalled-{runtime}"));
        let (code, err) = run(
            agent,
            &[
                "--base-url",
                &url,
                "--agents",
                "baseline",
                "--workflow",
                "single_call",
                "--runtime",
                runtime,
                "--read-timeout-s",
                "0.3",
                "--output-dir",
                dir.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 1, "{runtime}: {err}");
        let recs = records(&dir);
        let calls = of_kind(&recs, "call");
        assert_eq!(calls.len(), 1, "{runtime}");
        assert_eq!(calls[0]["ok"], false);
        let error = calls[0]["error"].as_str().unwrap();
        assert!(error.contains("timed out"), "{runtime}: {error}");
    }
    server.join().unwrap();
}
