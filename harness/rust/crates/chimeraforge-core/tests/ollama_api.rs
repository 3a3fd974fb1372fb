//! The Rust parser against the Ollama API contract fixtures (`tests/fixtures/ollama-api/`, written from Ollama's
//! documented examples): a generate stream and its final chunk, an in-stream error line, and the unload that
//! waits until `/api/ps` no longer lists the model. The transport serves fixture bodies in order.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use chimeraforge_core::error::{AgentError, TransportError};
use chimeraforge_core::runner::{ps_lists, unload};
use chimeraforge_core::transport::{Head, Line, LineSource, Transport};
use chimeraforge_core::workflow::{observe, GENERATE, PS};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../../tests/fixtures/ollama-api")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Lines(VecDeque<Line>);

impl LineSource for Lines {
    async fn next_line(&mut self) -> Result<Option<Line>, TransportError> {
        Ok(self.0.pop_front())
    }
}

fn lines_of(body: &str) -> Lines {
    Lines(
        body.lines()
            .enumerate()
            .map(|(i, l)| Line {
                bytes: l.as_bytes().to_vec(),
                arrival_ns: i as i64 + 1,
            })
            .collect(),
    )
}

/// Answers POST /api/generate with one fixture and each GET /api/ps with the next of a list.
struct FixtureTransport {
    generate: String,
    ps: RefCell<VecDeque<String>>,
    asked_ps: RefCell<u32>,
}

impl FixtureTransport {
    fn new(generate: &str, ps: &[&str]) -> Self {
        FixtureTransport {
            generate: fixture(generate),
            ps: RefCell::new(ps.iter().map(|n| fixture(n)).collect()),
            asked_ps: RefCell::new(0),
        }
    }
}

impl Transport for FixtureTransport {
    type Lines = Lines;

    fn base_url(&self) -> &str {
        "http://fixture"
    }

    async fn post(&self, path: &str, _body: Vec<u8>) -> Result<(Head, Lines), TransportError> {
        assert_eq!(path, GENERATE);
        let head = Head {
            status: 200,
            simulated: false,
        };
        Ok((head, lines_of(&self.generate)))
    }

    async fn get(&self, path: &str) -> Result<(Head, Lines), TransportError> {
        assert_eq!(path, PS);
        *self.asked_ps.borrow_mut() += 1;
        let mut queue = self.ps.borrow_mut();
        let body = if queue.len() > 1 {
            queue.pop_front().unwrap()
        } else {
            queue.front().cloned().unwrap()
        };
        let head = Head {
            status: 200,
            simulated: false,
        };
        Ok((head, lines_of(&body)))
    }
}

async fn no_sleep(_: Duration) {}

#[test]
fn generate_stream_and_final_chunk() {
    let transport = FixtureTransport::new("generate-stream.ndjson", &["ps-empty.json"]);
    let obs = futures_lite::future::block_on(observe(&transport, b"{}".to_vec(), true));
    assert!(obs.ok(), "{:?}", obs.error);
    assert_eq!(obs.text, "The sky is");
    assert_eq!(obs.chunk_offsets_ns.len(), 3);
    let last = obs.final_chunk.expect("final chunk");
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["eval_count"], 4); // three chunks plus the end-of-sequence token
    assert_eq!(last["load_duration"], 2_559_292);
}

#[test]
fn error_line_after_output_is_a_failed_call() {
    let transport = FixtureTransport::new("generate-error-midstream.ndjson", &["ps-empty.json"]);
    let obs = futures_lite::future::block_on(observe(&transport, b"{}".to_vec(), true));
    assert_eq!(obs.text, "The sky");
    let error = obs.error.expect("an error");
    assert!(
        error.starts_with("server error mid-stream: an error was encountered"),
        "{error}"
    );
}

#[test]
fn ps_fixtures_list_the_model_under_either_name() {
    assert!(ps_lists(&fixture("ps.json"), "gemma3").unwrap());
    assert!(ps_lists(&fixture("ps.json"), "gemma3:latest").unwrap());
    assert!(!ps_lists(&fixture("ps.json"), "gemma3:270m").unwrap());
    assert!(!ps_lists(&fixture("ps-empty.json"), "gemma3").unwrap());
    assert!(ps_lists("{}", "gemma3").is_err());
}

#[test]
fn unload_waits_until_ps_no_longer_lists_the_model() {
    let transport = FixtureTransport::new(
        "generate-unload.json",
        &["ps.json", "ps.json", "ps-empty.json"],
    );
    futures_lite::future::block_on(unload(
        &transport,
        "gemma3:latest",
        Duration::from_secs(5),
        &no_sleep,
    ))
    .expect("unloaded");
    assert_eq!(*transport.asked_ps.borrow(), 3);
}

#[test]
fn unload_that_never_completes_fails_clearly() {
    let transport = FixtureTransport::new("generate-unload.json", &["ps.json"]);
    let err =
        futures_lite::future::block_on(unload(&transport, "gemma3", Duration::ZERO, &no_sleep))
            .expect_err("still loaded");
    assert!(matches!(err, AgentError::Setup(_)));
    assert!(err.to_string().contains("still loaded"), "{err}");
}
