//! JSON Lines records, schema version 1: field for field `harness.records` (`CallRecord`, `AgentRunRecord`,
//! `MultiRunRecord`). Every field is written, `None` as `null`, and lines are written with sorted keys and
//! compact separators like Python's `dump_record`.

use serde::{Deserialize, Serialize};

use crate::body::Options;

pub const RECORD_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Baseline,
    Chimera,
    Collector,
    Insight,
    Inference,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Baseline => "baseline",
            Role::Chimera => "chimera",
            Role::Collector => "collector",
            Role::Insight => "insight",
            Role::Inference => "inference",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Rust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Analysis,
    Report,
    Single,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Analysis => "analysis",
            Stage::Report => "report",
            Stage::Single => "single",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    BaselineVsChimera,
    ChimeraHetero,
    ChimeraHomo,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [
        Scenario::BaselineVsChimera,
        Scenario::ChimeraHetero,
        Scenario::ChimeraHomo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::BaselineVsChimera => "baseline_vs_chimera",
            Scenario::ChimeraHetero => "chimera_hetero",
            Scenario::ChimeraHomo => "chimera_homo",
        }
    }

    /// `baseline-vs-chimera` and `baseline_vs_chimera` both name a scenario (Python's `_scenario`).
    pub fn parse(value: &str) -> Option<Scenario> {
        let name = value.replace('-', "_");
        Scenario::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// One request to Ollama as the client saw it, plus the server's final timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRecord {
    pub schema_version: u32,
    pub run_id: Option<String>,
    pub role: Role,
    pub agent_run_index: u32,
    pub language: Language,
    pub runtime: String,
    pub call_index: u32,
    pub stage: Stage,
    pub endpoint: String,
    pub base_url: String,
    pub model: String,
    pub options: Option<Options>,
    pub streaming: bool,
    pub request_sha256: String,
    pub start_ns: i64,
    pub first_chunk_ns: Option<i64>,
    pub end_ns: i64,
    pub start_unix_ns: i64,
    pub chunk_count: u64,
    pub chunk_offsets_ns: Vec<i64>,
    pub response_chars: u64,
    pub ok: bool,
    pub error: Option<String>,
    pub http_status: Option<u16>,
    pub done_reason: Option<String>,
    pub total_duration_ns: Option<i64>,
    pub load_duration_ns: Option<i64>,
    pub prompt_eval_count: Option<i64>,
    pub prompt_eval_duration_ns: Option<i64>,
    pub eval_count: Option<i64>,
    pub eval_duration_ns: Option<i64>,
    pub server_simulated: bool,
    /// The server API spoken: `ollama` (`/api/generate`) or `llamacpp` (`/v1/completions`).
    #[serde(default = "default_engine")]
    pub engine: String,
    /// The explicit token budget the call sent, if any.
    #[serde(default)]
    pub max_tokens: Option<i64>,
}

fn default_engine() -> String {
    "ollama".into()
}

/// One pass of an agent's workflow (ingest, analysis call, report call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRunRecord {
    pub schema_version: u32,
    pub run_id: Option<String>,
    pub role: Role,
    pub agent_run_index: u32,
    pub language: Language,
    pub runtime: String,
    pub base_url: String,
    pub model: String,
    pub options: Option<Options>,
    pub files_ingested: u64,
    pub corpus_sha256: Option<String>,
    pub start_ns: i64,
    pub end_ns: i64,
    pub ingest_duration_ns: i64,
    pub analysis_duration_ns: Option<i64>,
    pub report_duration_ns: Option<i64>,
    pub calls_ok: u32,
    pub calls_failed: u32,
    pub process_start_to_first_request_ns: Option<i64>,
    pub peak_rss_bytes: Option<i64>,
    pub ok: bool,
    pub error: Option<String>,
}

/// The concurrent join of the collector and insight agents (the originals' `concurrent_wall`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiRunRecord {
    pub schema_version: u32,
    pub run_id: Option<String>,
    pub role: Role,
    pub agent_run_index: u32,
    pub language: Language,
    pub runtime: String,
    pub scenario: Scenario,
    pub collector_url: String,
    pub insight_url: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub ok: bool,
    pub error: Option<String>,
}

/// Any record, tagged by `kind` like the Python discriminated union.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Record {
    #[serde(rename = "call")]
    Call(CallRecord),
    #[serde(rename = "agent_run")]
    AgentRun(AgentRunRecord),
    #[serde(rename = "multi_run")]
    MultiRun(MultiRunRecord),
}

/// Why a line is not a record this kit reads.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("record schema_version {0} is not supported (this kit reads 1)")]
    Version(u32),
}

impl Record {
    pub fn schema_version(&self) -> u32 {
        match self {
            Record::Call(r) => r.schema_version,
            Record::AgentRun(r) => r.schema_version,
            Record::MultiRun(r) => r.schema_version,
        }
    }

    /// One JSON line without the newline: sorted keys, compact, every field present.
    pub fn to_line(&self) -> String {
        // `serde_json::Value` objects are sorted maps (no `preserve_order`), which sorts keys at every level.
        let value = serde_json::to_value(self).expect("records always serialise");
        serde_json::to_string(&value).expect("values always serialise")
    }

    pub fn parse(line: &str) -> Result<Record, RecordError> {
        let record: Record = serde_json::from_str(line)?;
        match record.schema_version() {
            RECORD_SCHEMA_VERSION => Ok(record),
            other => Err(RecordError::Version(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_accepts_dashes_and_underscores() {
        assert_eq!(
            Scenario::parse("baseline-vs-chimera"),
            Some(Scenario::BaselineVsChimera)
        );
        assert_eq!(Scenario::parse("chimera_homo"), Some(Scenario::ChimeraHomo));
        assert_eq!(Scenario::parse("homo"), None);
    }

    #[test]
    fn unknown_fields_and_versions_are_refused() {
        let line = r#"{"kind":"multi_run","schema_version":1,"run_id":null,"role":"collector","agent_run_index":1,"language":"rust","runtime":"tokio","scenario":"chimera_homo","collector_url":"a","insight_url":"b","start_ns":1,"end_ns":2,"ok":true,"error":null}"#;
        let rec = Record::parse(line).unwrap();
        let back: serde_json::Value = serde_json::from_str(&rec.to_line()).unwrap();
        let orig: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(back, orig);
        assert!(Record::parse(&line.replace("\"ok\":true", "\"ok\":true,\"extra\":1")).is_err());
        assert!(matches!(
            Record::parse(&line.replace("\"schema_version\":1", "\"schema_version\":2")),
            Err(RecordError::Version(2))
        ));
    }
}
