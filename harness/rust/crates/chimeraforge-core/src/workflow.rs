//! One agent's workload, as `harness.agents.workflow`: ingest the corpus, call Ollama for an analysis,
//! then for a report whose prompt embeds the analysis. Each call becomes a [`CallRecord`], the pass an
//! [`AgentRunRecord`]; a failed call ends the pass but is still recorded.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::body::{completion_body, request_body, sha256_hex, OptionValue, Options};
use crate::clock::{monotonic_ns, peak_rss_bytes, unix_ns};
use crate::corpus::{corpus_sha256, describe, read_corpus, render, summarize, CorpusFile};
use crate::error::{AgentError, TransportError};
use crate::records::{
    AgentRunRecord, CallRecord, Language, Record, Role, Stage, RECORD_SCHEMA_VERSION,
};
use crate::transport::{read_all, LineSource, Transport};

pub const GENERATE: &str = "/api/generate";
/// Loaded models: polled after an unload until the model is gone.
pub const PS: &str = "/api/ps";
pub const COMPLETIONS: &str = "/v1/completions";

/// The server API an agent speaks (`harness.agents.workflow.Engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// Ollama's `/api/generate`, NDJSON stream
    #[default]
    Ollama,
    /// llama.cpp's OpenAI-compatible `/v1/completions`, SSE stream with the engine's `timings`
    LlamaCpp,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Ollama => "ollama",
            Engine::LlamaCpp => "llamacpp",
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Engine::Ollama => GENERATE,
            Engine::LlamaCpp => COMPLETIONS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workflow {
    SingleCall,
    OneCall,
    TwoCall,
}

/// What an agent does, identical for every agent of a run; loaded once per process.
#[derive(Debug, Clone)]
pub struct Workload {
    pub model: String,
    pub workflow: Workflow,
    pub streaming: bool,
    pub analysis_template: String,
    pub report_template: String,
    pub single_prompt: String,
    pub corpus_dir: Option<PathBuf>,
    pub engine: Engine,
    /// Explicit per-call token budget (sent as `num_predict` / `max_tokens`).
    pub max_tokens: Option<i64>,
}

impl Workload {
    /// Read the prompts (at run time, never embedded) and check the corpus folder.
    pub fn load(
        model: &str,
        workflow: Workflow,
        streaming: bool,
        prompts_dir: &Path,
        corpus_dir: Option<&Path>,
    ) -> Result<Workload, AgentError> {
        let read = |rel: &str| {
            std::fs::read_to_string(prompts_dir.join(rel)).map_err(|e| {
                AgentError::Setup(format!(
                    "cannot read prompts in {}: {e} (pass --prompts experiments/prompts)",
                    prompts_dir.display()
                ))
            })
        };
        let analysis_template = read("analysis.txt")?;
        let report_template = read("report.txt")?;
        let single_prompt = read("tr108/prompt1.txt")?;
        if workflow != Workflow::SingleCall && !corpus_dir.is_some_and(Path::is_dir) {
            return Err(AgentError::Setup(format!(
                "corpus folder {} not found (pass --corpus experiments/corpus)",
                corpus_dir.map_or("None".into(), |p| p.display().to_string())
            )));
        }
        Ok(Workload {
            model: model.to_owned(),
            workflow,
            streaming,
            analysis_template,
            report_template,
            single_prompt,
            corpus_dir: corpus_dir.map(Path::to_path_buf),
            engine: Engine::Ollama,
            max_tokens: None,
        })
    }

    /// The same workload against another engine, with an explicit token budget.
    pub fn with_engine(
        mut self,
        engine: Engine,
        max_tokens: Option<i64>,
    ) -> Result<Workload, AgentError> {
        if let Some(n) = max_tokens.filter(|n| *n < 1) {
            return Err(AgentError::Setup(format!(
                "token budget {n} is not positive (pass --max-tokens 1 or more)"
            )));
        }
        self.engine = engine;
        self.max_tokens = max_tokens;
        Ok(self)
    }

    /// The options a call sends: the run's token budget as `num_predict`, if any.
    pub fn sent_options(&self, options: Option<&Options>) -> Option<Options> {
        match self.max_tokens {
            None => options.cloned(),
            Some(n) => {
                let mut out = options.cloned().unwrap_or_default();
                out.insert("num_predict".into(), OptionValue::Int(n));
                Some(out)
            }
        }
    }

    /// The exact request bytes of one call for this workload's engine.
    pub fn body(&self, prompt: &str, options: Option<&Options>) -> Result<Vec<u8>, AgentError> {
        let sent = self.sent_options(options);
        match self.engine {
            Engine::Ollama => request_body(
                &self.model,
                Some(prompt),
                self.streaming,
                sent.as_ref(),
                None,
            ),
            Engine::LlamaCpp => completion_body(&self.model, prompt, self.streaming, sent.as_ref()),
        }
    }
}

/// Who this agent is in the records.
#[derive(Debug, Clone)]
pub struct Identity {
    pub role: Role,
    pub runtime: String,
    pub run_id: Option<String>,
}

/// Where records go as they are made (a crash keeps completed calls).
pub trait RecordSink: Send + Sync {
    fn emit(&self, record: &Record);
}

/// A sink that drops everything.
pub struct NoSink;

impl RecordSink for NoSink {
    fn emit(&self, _record: &Record) {}
}

/// What one generate call looked like from the client (`harness.ollama.CallObservation`).
#[derive(Debug, Clone, Default)]
pub struct CallObservation {
    pub endpoint: String,
    pub request_sha256: String,
    pub start_ns: i64,
    pub start_unix_ns: i64,
    pub end_ns: i64,
    pub first_chunk_ns: Option<i64>,
    pub chunk_offsets_ns: Vec<i64>,
    pub text: String,
    pub final_chunk: Option<serde_json::Map<String, Value>>,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub simulated: bool,
}

impl CallObservation {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// A streamed piece read at `now`: the first stamps the TTFT, each keeps its offset (Python's `add_piece`).
    fn add_piece(&mut self, text: &str, now: i64, parts: &mut String) {
        if self.first_chunk_ns.is_none() {
            self.first_chunk_ns = Some(now);
        }
        self.chunk_offsets_ns.push(now - self.start_ns);
        parts.push_str(text);
    }

    /// One line's JSON object, or `None` with the malformed-chunk error recorded (the call then stops).
    fn parse_chunk(&mut self, bytes: &[u8]) -> Option<serde_json::Map<String, Value>> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Some(map),
            Ok(_) => {
                self.error = Some("malformed chunk: not a JSON object".into());
                None
            }
            Err(e) => {
                self.error = Some(format!("malformed chunk: {e}"));
                None
            }
        }
    }
}

/// Python's `_error_text`: the `error` field of a JSON body, else the trimmed text (300 characters).
fn error_text(detail: &str) -> String {
    match serde_json::from_str::<Value>(detail) {
        Ok(Value::Object(map)) => match map.get("error") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => Value::Object(map).to_string(),
        },
        Ok(other) => other.to_string(),
        Err(_) => detail.trim().chars().take(300).collect(),
    }
}

/// Engine milliseconds to ns, rounded half up (`harness.engines.llamacpp.ms_to_ns`).
pub fn ms_to_ns(ms: f64) -> i64 {
    (ms * 1_000_000.0 + 0.5).floor() as i64
}

/// llama.cpp's last chunk in the record's terms (Ollama's names), as `final_from_timings` in Python.
fn final_from_timings(
    timings: &serde_json::Map<String, Value>,
    finish_reason: Option<&str>,
) -> serde_json::Map<String, Value> {
    let num = |k: &str| timings.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let (prompt_ms, predicted_ms) = (num("prompt_ms"), num("predicted_ms"));
    let mut out = serde_json::Map::new();
    out.insert("done".into(), Value::Bool(true));
    out.insert(
        "done_reason".into(),
        finish_reason.map_or(Value::Null, |r| Value::String(r.into())),
    );
    out.insert("prompt_eval_count".into(), (num("prompt_n") as i64).into());
    out.insert("prompt_eval_duration".into(), ms_to_ns(prompt_ms).into());
    out.insert("eval_count".into(), (num("predicted_n") as i64).into());
    out.insert("eval_duration".into(), ms_to_ns(predicted_ms).into());
    out.insert(
        "total_duration".into(),
        ms_to_ns(prompt_ms + predicted_ms).into(),
    );
    out
}

/// The payload of one SSE line: `None` for comments, other fields, blank lines and `[DONE]`.
fn sse_payload(bytes: &[u8]) -> Option<&[u8]> {
    let line = bytes.trim_ascii();
    let data = match line.strip_prefix(b"data:") {
        Some(rest) => rest.trim_ascii(),
        None if line.starts_with(b"{") => line,
        None => return None,
    };
    (!data.is_empty() && data != b"[DONE]").then_some(data)
}

/// A line that arrived after the whole-call deadline ends the call, on either engine's stream. Every transport
/// bounds its waits by the deadline too; this names it for one that only bounds reads.
fn within_deadline(
    now_ns: i64,
    start_ns: i64,
    deadline: Option<std::time::Duration>,
) -> Result<(), TransportError> {
    let Some(d) = deadline else {
        return Ok(());
    };
    let limit_ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    if now_ns - start_ns > limit_ns {
        return Err(TransportError::Timeout(format!(
            "call deadline of {} s exceeded",
            d.as_secs_f64()
        )));
    }
    Ok(())
}

async fn stream_sse<L: LineSource>(
    lines: &mut L,
    obs: &mut CallObservation,
    parts: &mut String,
    deadline: Option<std::time::Duration>,
) -> Result<(), TransportError> {
    let mut finish: Option<String> = None;
    while let Some(line) = lines.next_line().await? {
        let now = line.arrival_ns;
        within_deadline(now, obs.start_ns, deadline)?;
        let Some(data) = sse_payload(&line.bytes) else {
            continue;
        };
        let Some(chunk) = obs.parse_chunk(data) else {
            return Ok(());
        };
        if let Some(err) = chunk.get("error") {
            let msg = err.get("message").unwrap_or(err);
            let msg = msg.as_str().map_or_else(|| msg.to_string(), str::to_owned);
            obs.error = Some(format!("server error mid-stream: {msg}"));
            return Ok(());
        }
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first());
        if let Some(text) = choice
            .and_then(|c| c.get("text"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            obs.add_piece(text, now, parts);
        }
        let reason = choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty());
        if let Some(r) = reason {
            finish = Some(r.to_owned());
        }
        if let (Some(Value::Object(timings)), Some(_)) = (chunk.get("timings"), reason) {
            obs.final_chunk = Some(final_from_timings(timings, finish.as_deref()));
        }
    }
    if obs.final_chunk.is_none() {
        obs.error = Some("stream ended without a final chunk (done=true)".into());
    }
    Ok(())
}

async fn stream_body<L: LineSource>(
    lines: &mut L,
    obs: &mut CallObservation,
    parts: &mut String,
    deadline: Option<std::time::Duration>,
) -> Result<(), TransportError> {
    while let Some(line) = lines.next_line().await? {
        let now = line.arrival_ns;
        within_deadline(now, obs.start_ns, deadline)?;
        if line.bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Some(chunk) = obs.parse_chunk(&line.bytes) else {
            return Ok(());
        };
        if let Some(err) = chunk.get("error") {
            let msg = err.as_str().map_or_else(|| err.to_string(), str::to_owned);
            obs.error = Some(format!("server error mid-stream: {msg}"));
            return Ok(());
        }
        if let Some(text) = chunk
            .get("response")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            obs.add_piece(text, now, parts);
        }
        let done = match chunk.get("done") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Null) | None => false,
            Some(_) => true,
        };
        if done {
            obs.final_chunk = Some(chunk);
        }
    }
    if obs.final_chunk.is_none() {
        obs.error = Some("stream ended without a final chunk (done=true)".into());
    }
    Ok(())
}

/// POST one generate body and observe it; failures are recorded on the observation, never returned.
pub async fn observe<T: Transport>(transport: &T, body: Vec<u8>, stream: bool) -> CallObservation {
    observe_engine(transport, Engine::Ollama, body, stream).await
}

/// [`observe`] against either engine's API.
pub async fn observe_engine<T: Transport>(
    transport: &T,
    engine: Engine,
    body: Vec<u8>,
    stream: bool,
) -> CallObservation {
    let mut obs = CallObservation {
        endpoint: engine.path().into(),
        request_sha256: sha256_hex(&body),
        start_unix_ns: unix_ns(),
        ..CallObservation::default()
    };
    let mut parts = String::new();
    obs.start_ns = monotonic_ns();
    let result = async {
        let (head, mut lines) = transport.post(engine.path(), body).await?;
        obs.http_status = Some(head.status);
        obs.simulated = head.simulated;
        if head.status != 200 {
            let detail = read_all(&mut lines).await.unwrap_or_default();
            obs.error = Some(format!("HTTP {}: {}", head.status, error_text(&detail)));
            return Ok(());
        }
        let deadline = transport.call_deadline();
        match engine {
            Engine::Ollama => stream_body(&mut lines, &mut obs, &mut parts, deadline).await,
            Engine::LlamaCpp => stream_sse(&mut lines, &mut obs, &mut parts, deadline).await,
        }
    }
    .await;
    if let Err(e) = result {
        obs.error = Some(e.to_string());
    }
    obs.end_ns = monotonic_ns();
    obs.text = parts;
    if !stream && obs.ok() {
        // One body: the "first chunk" is the whole answer, as a non-streaming client sees it.
        let has_text = !obs.text.is_empty();
        obs.chunk_offsets_ns = if has_text {
            vec![obs.end_ns - obs.start_ns]
        } else {
            Vec::new()
        };
        obs.first_chunk_ns = has_text.then_some(obs.end_ns);
    }
    obs
}

fn int_field(chunk: &Option<serde_json::Map<String, Value>>, key: &str) -> Option<i64> {
    chunk.as_ref()?.get(key)?.as_i64()
}

#[allow(clippy::too_many_arguments)]
fn call_record(
    obs: &CallObservation,
    who: &Identity,
    index: u32,
    call_index: u32,
    stage: Stage,
    base_url: &str,
    model: &str,
    options: Option<&Options>,
    workload: &Workload,
) -> CallRecord {
    let streaming = workload.streaming;
    let fin = &obs.final_chunk;
    CallRecord {
        schema_version: RECORD_SCHEMA_VERSION,
        run_id: who.run_id.clone(),
        role: who.role,
        agent_run_index: index,
        language: Language::Rust,
        runtime: who.runtime.clone(),
        call_index,
        stage,
        endpoint: obs.endpoint.clone(),
        base_url: base_url.to_owned(),
        model: model.to_owned(),
        options: options.cloned(),
        streaming,
        request_sha256: obs.request_sha256.clone(),
        start_ns: obs.start_ns,
        first_chunk_ns: obs.first_chunk_ns,
        end_ns: obs.end_ns,
        start_unix_ns: obs.start_unix_ns,
        chunk_count: obs.chunk_offsets_ns.len() as u64,
        chunk_offsets_ns: obs.chunk_offsets_ns.clone(),
        response_chars: obs.text.chars().count() as u64,
        ok: obs.ok(),
        error: obs.error.clone(),
        http_status: obs.http_status,
        done_reason: fin
            .as_ref()
            .and_then(|c| c.get("done_reason"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        total_duration_ns: int_field(fin, "total_duration"),
        load_duration_ns: int_field(fin, "load_duration"),
        prompt_eval_count: int_field(fin, "prompt_eval_count"),
        prompt_eval_duration_ns: int_field(fin, "prompt_eval_duration"),
        eval_count: int_field(fin, "eval_count"),
        eval_duration_ns: int_field(fin, "eval_duration"),
        server_simulated: obs.simulated,
        engine: workload.engine.as_str().into(),
        max_tokens: workload.max_tokens,
    }
}

/// Read the corpus: entries in path order and the corpus hash.
pub fn ingest(dir: &Path) -> std::io::Result<(Vec<CorpusFile>, String)> {
    let files = read_corpus(dir)?;
    Ok((describe(&files), corpus_sha256(&files)))
}

/// One pass of the workflow; records go to `sink` as they are made.
#[allow(clippy::too_many_arguments)]
pub async fn run_agent<T: Transport>(
    transport: &T,
    workload: &Workload,
    who: &Identity,
    options: Option<&Options>,
    index: u32,
    process_start_ns: Option<i64>,
    sink: &dyn RecordSink,
) -> AgentRunRecord {
    let start_ns = monotonic_ns();
    let mut entries = Vec::new();
    let mut corpus_hash = None;
    let mut error: Option<String> = None;
    if workload.workflow != Workflow::SingleCall {
        if let Some(dir) = &workload.corpus_dir {
            match ingest(dir) {
                Ok((e, h)) => {
                    entries = e;
                    corpus_hash = Some(h);
                }
                Err(e) => error = Some(format!("cannot read corpus {}: {e}", dir.display())),
            }
        }
    }
    let ingest_ns = monotonic_ns() - start_ns;
    let values = summarize(&entries);

    let steps: Vec<(Stage, &str)> = match workload.workflow {
        Workflow::SingleCall => vec![(Stage::Single, workload.single_prompt.as_str())],
        Workflow::OneCall => vec![(Stage::Analysis, workload.analysis_template.as_str())],
        Workflow::TwoCall => vec![
            (Stage::Analysis, workload.analysis_template.as_str()),
            (Stage::Report, workload.report_template.as_str()),
        ],
    };

    let mut analysis_ns = None;
    let mut report_ns = None;
    let (mut calls_ok, mut calls_failed) = (0u32, 0u32);
    let mut first_request_ns = None;
    let mut analysis_text = String::new();
    let steps = if error.is_some() { Vec::new() } else { steps };
    for (call_index, (stage, template)) in (1u32..).zip(steps) {
        let prompt = match stage {
            Stage::Single => template.to_owned(),
            Stage::Analysis => render(template, &values),
            Stage::Report => {
                let mut with_analysis = values.clone();
                with_analysis.push(("analysis".into(), std::mem::take(&mut analysis_text)));
                render(template, &with_analysis)
            }
        };
        let body = match workload.body(&prompt, options) {
            Ok(b) => b,
            Err(e) => {
                error = Some(format!("{} call failed: {e}", stage.as_str()));
                calls_failed += 1;
                break;
            }
        };
        if first_request_ns.is_none() {
            first_request_ns = Some(monotonic_ns());
        }
        let obs = observe_engine(transport, workload.engine, body, workload.streaming).await;
        let took = Some(obs.end_ns - obs.start_ns);
        match stage {
            Stage::Report => report_ns = took,
            _ => analysis_ns = took,
        }
        sink.emit(&Record::Call(call_record(
            &obs,
            who,
            index,
            call_index,
            stage,
            transport.base_url(),
            &workload.model,
            options,
            workload,
        )));
        if let Some(e) = &obs.error {
            calls_failed += 1;
            error = Some(format!("{} call failed: {e}", stage.as_str()));
            break;
        }
        calls_ok += 1;
        analysis_text = obs.text;
    }
    let end_ns = monotonic_ns();
    let record = AgentRunRecord {
        schema_version: RECORD_SCHEMA_VERSION,
        run_id: who.run_id.clone(),
        role: who.role,
        agent_run_index: index,
        language: Language::Rust,
        runtime: who.runtime.clone(),
        base_url: transport.base_url().to_owned(),
        model: workload.model.clone(),
        options: options.cloned(),
        files_ingested: entries.len() as u64,
        corpus_sha256: corpus_hash,
        start_ns,
        end_ns,
        ingest_duration_ns: ingest_ns,
        analysis_duration_ns: analysis_ns,
        report_duration_ns: report_ns,
        calls_ok,
        calls_failed,
        process_start_to_first_request_ns: match (process_start_ns, first_request_ns) {
            (Some(p), Some(f)) => Some(f - p),
            _ => None,
        },
        peak_rss_bytes: peak_rss_bytes(),
        ok: error.is_none(),
        error,
    };
    sink.emit(&Record::AgentRun(record.clone()));
    record
}

#[cfg(test)]
mod deadline_tests {
    use super::*;
    use crate::transport::{Head, Line};
    use std::collections::VecDeque;
    use std::time::Duration;

    /// Lines stamped as if they arrived `gap` apart: no clock is waited on.
    struct Stamped(VecDeque<Line>);

    impl LineSource for Stamped {
        async fn next_line(&mut self) -> Result<Option<Line>, TransportError> {
            Ok(self.0.pop_front())
        }
    }

    struct Dripping {
        deadline: Option<Duration>,
        chunk: &'static [u8],
    }

    impl Transport for Dripping {
        type Lines = Stamped;

        fn base_url(&self) -> &str {
            "http://fake"
        }

        fn call_deadline(&self) -> Option<Duration> {
            self.deadline
        }

        async fn post(
            &self,
            _path: &str,
            _body: Vec<u8>,
        ) -> Result<(Head, Stamped), TransportError> {
            let start = monotonic_ns();
            let chunk = self.chunk.to_vec();
            let lines = (1..=5)
                .map(|i| Line {
                    bytes: chunk.clone(),
                    arrival_ns: start + i * 1_000_000_000,
                })
                .collect();
            let head = Head {
                status: 200,
                simulated: true,
            };
            Ok((head, Stamped(lines)))
        }

        /// The deadline test never polls `/api/ps`: an empty body, should it ever be asked.
        async fn get(&self, _path: &str) -> Result<(Head, Stamped), TransportError> {
            let head = Head {
                status: 200,
                simulated: true,
            };
            Ok((head, Stamped(VecDeque::new())))
        }
    }

    const NDJSON: &[u8] = br#"{"response":"x","done":false}"#;
    const SSE: &[u8] = br#"data: {"choices":[{"text":"x","finish_reason":null}]}"#;

    #[test]
    fn an_sse_stream_that_keeps_coming_is_ended_by_the_call_deadline() {
        let dripping = |deadline| Dripping {
            deadline,
            chunk: SSE,
        };
        let cut = futures_lite::future::block_on(observe_engine(
            &dripping(Some(Duration::from_millis(2500))),
            Engine::LlamaCpp,
            b"{}".to_vec(),
            true,
        ));
        let error = cut.error.unwrap_or_default();
        assert!(error.contains("call deadline of 2.5 s exceeded"), "{error}");
        assert_eq!(
            cut.chunk_offsets_ns.len(),
            2,
            "the chunks before the deadline are kept"
        );
        let whole = futures_lite::future::block_on(observe_engine(
            &dripping(None),
            Engine::LlamaCpp,
            b"{}".to_vec(),
            true,
        ));
        assert_eq!(whole.chunk_offsets_ns.len(), 5);
        assert_eq!(
            whole.error.as_deref(),
            Some("stream ended without a final chunk (done=true)")
        );
    }

    #[test]
    fn a_stream_that_keeps_coming_is_ended_by_the_call_deadline() {
        let cut = futures_lite::future::block_on(observe(
            &Dripping {
                deadline: Some(Duration::from_millis(2500)),
                chunk: NDJSON,
            },
            b"{}".to_vec(),
            true,
        ));
        let error = cut.error.unwrap_or_default();
        assert!(error.contains("call deadline of 2.5 s exceeded"), "{error}");
        let whole = futures_lite::future::block_on(observe(
            &Dripping {
                deadline: None,
                chunk: NDJSON,
            },
            b"{}".to_vec(),
            true,
        ));
        assert_eq!(
            whole.error.as_deref(),
            Some("stream ended without a final chunk (done=true)")
        );
    }
}

#[cfg(test)]
mod sse_tests {
    use super::*;

    #[test]
    fn sse_lines_and_timings() {
        assert_eq!(sse_payload(b"data: {\"a\":1}"), Some(&b"{\"a\":1}"[..]));
        assert_eq!(sse_payload(b"data: [DONE]"), None);
        assert_eq!(sse_payload(b": keep-alive"), None);
        assert_eq!(sse_payload(b"event: x"), None);
        assert_eq!(
            sse_payload(b"{\"whole\":true}"),
            Some(&b"{\"whole\":true}"[..])
        );
        let timings: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"prompt_n":12,"prompt_ms":3.25,"predicted_n":3,"predicted_ms":1.5000004}"#,
        )
        .unwrap();
        let fin = final_from_timings(&timings, Some("length"));
        assert_eq!(fin["eval_count"], 3);
        assert_eq!(fin["eval_duration"], 1_500_000);
        assert_eq!(fin["prompt_eval_duration"], 3_250_000);
        assert_eq!(fin["done_reason"], "length");
        assert_eq!(ms_to_ns(0.0000005), 1);
    }
}
