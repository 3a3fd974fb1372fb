//! Single-agent and multi-agent runs, as `harness.agents.runner`. The single runner is generic over the
//! transport and a sleep; the concurrent join of the multi runner belongs to each runtime, which then builds
//! its [`MultiRunRecord`] with [`multi_record`].

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::body::{request_body, KeepAlive, Options};
use crate::error::AgentError;
use crate::records::{
    AgentRunRecord, Language, MultiRunRecord, Record, Role, Scenario, RECORD_SCHEMA_VERSION,
};
use crate::transport::{read_all, Transport};
use crate::workflow::{run_agent, Identity, RecordSink, Workload, GENERATE, PS};

/// One agent of a single-agent run.
#[derive(Debug, Clone)]
pub struct SingleAgent {
    pub role: Role,
    pub options: Option<Options>,
}

/// How a single run is paced.
#[derive(Debug, Clone, Default)]
pub struct SinglePlan {
    pub runs: u32,
    pub pause_s: f64,
    pub cooldown_s: f64,
    pub unload_between_runs: bool,
    pub run_id: Option<String>,
    pub runtime: String,
}

/// How long an unload may take before it is a failure, and how often `/api/ps` is asked meanwhile.
pub const UNLOAD_WAIT: Duration = Duration::from_secs(60);
pub const UNLOAD_POLL: Duration = Duration::from_millis(50);

/// Drop the model (`keep_alive: 0`) and wait until `/api/ps` no longer lists it.
///
/// Ollama answers before its scheduler has unloaded the runner (`server/sched.go`), so without the wait the
/// next call could meet the warm runner, or load while the GPU memory is still taken. Bounded by `wait`.
pub async fn unload<T, S, F>(
    transport: &T,
    model: &str,
    wait: Duration,
    sleep: &S,
) -> Result<(), AgentError>
where
    T: Transport,
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let body = request_body(model, Some(""), false, None, Some(&KeepAlive::Seconds(0)))?;
    let fail = |what: String| {
        AgentError::Setup(format!(
            "unload of {model} on {} failed: {what}",
            transport.base_url()
        ))
    };
    let (head, mut lines) = transport
        .post(GENERATE, body)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let detail = read_all(&mut lines)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if head.status != 200 {
        return Err(fail(format!("HTTP {}: {}", head.status, detail.trim())));
    }
    let started = Instant::now();
    loop {
        let (head, mut lines) = transport
            .get(PS)
            .await
            .map_err(|e| fail(format!("/api/ps: {e}")))?;
        let body = read_all(&mut lines)
            .await
            .map_err(|e| fail(format!("/api/ps: {e}")))?;
        if head.status != 200 {
            return Err(fail(format!(
                "/api/ps: HTTP {}: {}",
                head.status,
                body.trim()
            )));
        }
        if !ps_lists(&body, model).map_err(|e| fail(format!("/api/ps: {e}")))? {
            return Ok(());
        }
        if started.elapsed() >= wait {
            return Err(fail(format!(
                "still loaded {:.0} s after keep_alive: 0 (another client may be using it; see the server log)",
                wait.as_secs_f64()
            )));
        }
        sleep(UNLOAD_POLL).await;
    }
}

/// Whether an `/api/ps` body lists `model` (`gemma3` is listed as `gemma3:latest`).
pub fn ps_lists(body: &str, model: &str) -> Result<bool, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let models = value
        .get("models")
        .and_then(Value::as_array)
        .ok_or("no models list")?;
    let tagged = if model.rsplit('/').next().unwrap_or(model).contains(':') {
        model.to_owned()
    } else {
        format!("{model}:latest")
    };
    Ok(models.iter().any(|entry| {
        ["name", "model"].iter().any(|key| {
            entry
                .get(*key)
                .and_then(Value::as_str)
                .is_some_and(|n| n == model || n == tagged)
        })
    }))
}

/// The agents of one run one after the other against one server, `runs` times with a pause.
pub async fn run_single<T, S, F>(
    transport: &T,
    workload: &Workload,
    agents: &[SingleAgent],
    plan: &SinglePlan,
    sleep: S,
    sink: &dyn RecordSink,
) -> Result<Vec<AgentRunRecord>, AgentError>
where
    T: Transport,
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let process_start = crate::clock::process_start_monotonic_ns();
    let mut out: Vec<AgentRunRecord> = Vec::new();
    for index in 1..=plan.runs {
        if index > 1 && plan.pause_s > 0.0 {
            sleep(Duration::from_secs_f64(plan.pause_s)).await;
        }
        for (position, agent) in agents.iter().enumerate() {
            if plan.unload_between_runs && position == 0 {
                unload(transport, &workload.model, UNLOAD_WAIT, &sleep).await?;
            }
            if position > 0 && plan.cooldown_s > 0.0 {
                sleep(Duration::from_secs_f64(plan.cooldown_s)).await;
            }
            let who = Identity {
                role: agent.role,
                runtime: plan.runtime.clone(),
                run_id: plan.run_id.clone(),
            };
            let record = run_agent(
                transport,
                workload,
                &who,
                agent.options.as_ref(),
                index,
                if out.is_empty() { process_start } else { None },
                sink,
            )
            .await;
            out.push(record);
        }
    }
    Ok(out)
}

/// Everything a multi-agent run needs besides the runtime.
#[derive(Debug, Clone)]
pub struct MultiPlan {
    pub collector_url: String,
    pub insight_url: String,
    pub scenario: Scenario,
    pub collector_options: Option<Options>,
    pub insight_options: Option<Options>,
    pub run_id: Option<String>,
    pub runtime: String,
}

impl MultiPlan {
    pub fn identity(&self, role: Role) -> Identity {
        Identity {
            role,
            runtime: self.runtime.clone(),
            run_id: self.run_id.clone(),
        }
    }
}

/// What one agent task of a multi run ended with: its record, or why the task itself died.
pub type AgentOutcome = Result<AgentRunRecord, String>;

/// The join record; failures of one agent are recorded, never hidden by the other's success.
pub fn multi_record(
    plan: &MultiPlan,
    collector_url: &str,
    insight_url: &str,
    start_ns: i64,
    end_ns: i64,
    results: [&AgentOutcome; 2],
    sink: &dyn RecordSink,
) -> MultiRunRecord {
    let errors: Vec<String> = ["collector", "insight"]
        .into_iter()
        .zip(results)
        .filter_map(|(role, r)| match r {
            Err(e) => Some(format!("{role}: {e}")),
            Ok(rec) if !rec.ok => Some(format!(
                "{role}: {}",
                rec.error.as_deref().unwrap_or("failed")
            )),
            Ok(_) => None,
        })
        .collect();
    let record = MultiRunRecord {
        schema_version: RECORD_SCHEMA_VERSION,
        run_id: plan.run_id.clone(),
        role: Role::Collector,
        agent_run_index: 1,
        language: Language::Rust,
        runtime: plan.runtime.clone(),
        scenario: plan.scenario,
        collector_url: collector_url.to_owned(),
        insight_url: insight_url.to_owned(),
        start_ns,
        end_ns,
        ok: errors.is_empty(),
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    };
    sink.emit(&Record::MultiRun(record.clone()));
    record
}
