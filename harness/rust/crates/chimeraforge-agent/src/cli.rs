//! Flags, compatible with `harness agent single|multi` and with the original Rust agents.

use std::path::PathBuf;

use chimeraforge_core::body::{OptionValue, Options};
use chimeraforge_core::records::Scenario;
use chimeraforge_core::workflow::{Engine, Workflow};
use clap::{Args, Parser, ValueEnum};

/// The async runtime that drives the agents; every record carries its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeName {
    /// multi-thread tokio runtime, agents as `tokio::spawn` tasks, reqwest
    #[value(name = "tokio")]
    Tokio,
    /// current-thread tokio runtime, `LocalSet` + `spawn_local`, reqwest
    #[value(name = "tokio-local")]
    TokioLocal,
    /// smol executor and `smol::net`, the kit's HTTP/1.1 client
    #[value(name = "smol")]
    Smol,
    /// smol, but no line is parsed before 1 KiB of body is buffered (the original's flaw)
    #[value(name = "smol-1kb")]
    Smol1kb,
    /// async-std tasks and `async_std::net`, the kit's HTTP/1.1 client
    #[value(name = "async-std")]
    AsyncStd,
    /// async-std with the original's coordinator lock held across each whole agent run
    #[value(name = "async-std-mutex")]
    AsyncStdMutex,
}

impl RuntimeName {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeName::Tokio => "tokio",
            RuntimeName::TokioLocal => "tokio-local",
            RuntimeName::Smol => "smol",
            RuntimeName::Smol1kb => "smol-1kb",
            RuntimeName::AsyncStd => "async-std",
            RuntimeName::AsyncStdMutex => "async-std-mutex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkflowArg {
    #[value(name = "two_call")]
    TwoCall,
    #[value(name = "one_call")]
    OneCall,
    #[value(name = "single_call")]
    SingleCall,
}

impl From<WorkflowArg> for Workflow {
    fn from(w: WorkflowArg) -> Workflow {
        match w {
            WorkflowArg::TwoCall => Workflow::TwoCall,
            WorkflowArg::OneCall => Workflow::OneCall,
            WorkflowArg::SingleCall => Workflow::SingleCall,
        }
    }
}

/// The server API the agents speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// Ollama's /api/generate (NDJSON)
    #[value(name = "ollama")]
    Ollama,
    /// llama.cpp's /v1/completions (SSE, engine timings)
    #[value(name = "llamacpp")]
    LlamaCpp,
}

impl From<EngineArg> for Engine {
    fn from(e: EngineArg) -> Engine {
        match e {
            EngineArg::Ollama => Engine::Ollama,
            EngineArg::LlamaCpp => Engine::LlamaCpp,
        }
    }
}

/// Flags both binaries share (`harness agent single|multi`).
#[derive(Debug, Clone, Args)]
pub struct Common {
    #[arg(long, default_value = "gemma3:latest")]
    pub model: String,
    /// records.jsonl is appended here; '-' writes the records to stdout
    #[arg(long)]
    pub output_dir: PathBuf,
    #[arg(long, default_value = "experiments/prompts")]
    pub prompts: PathBuf,
    #[arg(long, default_value = "experiments/corpus")]
    pub corpus: PathBuf,
    #[arg(long, value_enum, default_value = "two_call")]
    pub workflow: WorkflowArg,
    /// non-streaming calls (TR109)
    #[arg(long)]
    pub no_stream: bool,
    /// server API: ollama or llamacpp
    #[arg(long, value_enum, default_value = "ollama")]
    pub engine: EngineArg,
    /// explicit token budget of every call
    #[arg(long)]
    pub max_tokens: Option<i64>,
    /// plan run id to stamp on every record
    #[arg(long)]
    pub run_id: Option<String>,
    /// async runtime
    #[arg(long, value_enum, default_value = "tokio")]
    pub runtime: RuntimeName,
    /// seconds to wait for a TCP connection (HARNESS_CONNECT_TIMEOUT_S)
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout_s: f64,
    /// per-read idle timeout: seconds one read of a response may wait for bytes (HARNESS_READ_TIMEOUT_S)
    #[arg(long, default_value_t = 600.0)]
    pub read_timeout_s: f64,
    /// whole-call deadline: seconds one call may take, its stream included (HARNESS_CALL_DEADLINE_S)
    #[arg(long, default_value_t = 1800.0)]
    pub call_deadline_s: f64,
}

/// The chimera agent's options (agent A in multi-agent hetero/homo).
#[derive(Debug, Clone, Default, Args)]
pub struct ChimeraOptions {
    #[arg(long = "chimera-num-gpu", id = "chimera_num_gpu")]
    pub num_gpu: Option<i64>,
    #[arg(long = "chimera-num-ctx", id = "chimera_num_ctx")]
    pub num_ctx: Option<i64>,
    #[arg(long = "chimera-temperature", id = "chimera_temperature")]
    pub temperature: Option<f64>,
    #[arg(long = "chimera-top-p", id = "chimera_top_p")]
    pub top_p: Option<f64>,
    #[arg(long = "chimera-top-k", id = "chimera_top_k")]
    pub top_k: Option<i64>,
    #[arg(long = "chimera-repeat-penalty", id = "chimera_repeat_penalty")]
    pub repeat_penalty: Option<f64>,
    #[arg(long = "chimera-num-predict", id = "chimera_num_predict")]
    pub num_predict: Option<i64>,
    #[arg(long = "chimera-seed", id = "chimera_seed")]
    pub seed: Option<i64>,
}

/// The insight agent B's options in chimera-hetero.
#[derive(Debug, Clone, Default, Args)]
pub struct Chimera2Options {
    #[arg(long = "chimera2-num-gpu", id = "chimera2_num_gpu")]
    pub num_gpu: Option<i64>,
    #[arg(long = "chimera2-num-ctx", id = "chimera2_num_ctx")]
    pub num_ctx: Option<i64>,
    #[arg(long = "chimera2-temperature", id = "chimera2_temperature")]
    pub temperature: Option<f64>,
    #[arg(long = "chimera2-top-p", id = "chimera2_top_p")]
    pub top_p: Option<f64>,
    #[arg(long = "chimera2-top-k", id = "chimera2_top_k")]
    pub top_k: Option<i64>,
    #[arg(long = "chimera2-repeat-penalty", id = "chimera2_repeat_penalty")]
    pub repeat_penalty: Option<f64>,
    #[arg(long = "chimera2-num-predict", id = "chimera2_num_predict")]
    pub num_predict: Option<i64>,
    #[arg(long = "chimera2-seed", id = "chimera2_seed")]
    pub seed: Option<i64>,
}

fn options(ints: [(&str, Option<i64>); 5], floats: [(&str, Option<f64>); 3]) -> Option<Options> {
    let mut out = Options::new();
    for (k, v) in ints {
        if let Some(v) = v {
            out.insert(k.into(), OptionValue::Int(v));
        }
    }
    for (k, v) in floats {
        if let Some(v) = v {
            out.insert(k.into(), OptionValue::Float(v));
        }
    }
    (!out.is_empty()).then_some(out)
}

impl ChimeraOptions {
    /// `None` when no flag was given (Python's `_options`).
    pub fn options(&self) -> Option<Options> {
        options(
            [
                ("num_gpu", self.num_gpu),
                ("num_ctx", self.num_ctx),
                ("top_k", self.top_k),
                ("num_predict", self.num_predict),
                ("seed", self.seed),
            ],
            [
                ("temperature", self.temperature),
                ("top_p", self.top_p),
                ("repeat_penalty", self.repeat_penalty),
            ],
        )
    }
}

impl Chimera2Options {
    pub fn options(&self) -> Option<Options> {
        options(
            [
                ("num_gpu", self.num_gpu),
                ("num_ctx", self.num_ctx),
                ("top_k", self.top_k),
                ("num_predict", self.num_predict),
                ("seed", self.seed),
            ],
            [
                ("temperature", self.temperature),
                ("top_p", self.top_p),
                ("repeat_penalty", self.repeat_penalty),
            ],
        )
    }
}

/// `chimeraforge-agent`: baseline and/or chimera agent against one server.
#[derive(Debug, Clone, Parser)]
#[command(name = "chimeraforge-agent", version, about)]
pub struct SingleArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub chimera: ChimeraOptions,
    #[arg(long, default_value = "http://127.0.0.1:11434")]
    pub base_url: String,
    /// roles in order, e.g. chimera,baseline
    #[arg(long, default_value = "baseline,chimera")]
    pub agents: String,
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// pause between runs (the originals: 2 s)
    #[arg(long, default_value_t = 2.0)]
    pub pause_s: f64,
    /// pause between the agents of one run
    #[arg(long, default_value_t = 0.0)]
    pub cooldown_s: f64,
    #[arg(long)]
    pub unload_between_runs: bool,
}

fn parse_scenario(value: &str) -> Result<Scenario, String> {
    Scenario::parse(value).ok_or_else(|| {
        format!(
            "unknown scenario {value:?}; allowed: baseline_vs_chimera, chimera_hetero, chimera_homo"
        )
    })
}

/// `chimeraforge-multi`: collector and insight agents concurrently.
#[derive(Debug, Clone, Parser)]
#[command(name = "chimeraforge-multi", version, about)]
pub struct MultiArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub chimera: ChimeraOptions,
    #[command(flatten)]
    pub chimera2: Chimera2Options,
    #[arg(long, default_value = "http://127.0.0.1:11434")]
    pub collector_ollama_url: String,
    #[arg(long, default_value = "http://127.0.0.1:11435")]
    pub insight_ollama_url: String,
    /// baseline-vs-chimera | chimera-hetero | chimera-homo (underscores too)
    #[arg(long, value_parser = parse_scenario, default_value = "baseline_vs_chimera")]
    pub scenario: Scenario,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn parsers_are_consistent() {
        SingleArgs::command().debug_assert();
        MultiArgs::command().debug_assert();
    }

    #[test]
    fn floats_stay_floats_and_ints_ints() {
        let a = SingleArgs::try_parse_from([
            "x",
            "--output-dir",
            "o",
            "--chimera-num-gpu",
            "80",
            "--chimera-temperature",
            "1",
            "--chimera-num-predict",
            "64",
            "--chimera-seed",
            "7",
        ])
        .unwrap();
        let o = a.chimera.options().unwrap();
        assert_eq!(o["num_gpu"], OptionValue::Int(80));
        assert_eq!(o["temperature"], OptionValue::Float(1.0));
        assert_eq!(o["num_predict"], OptionValue::Int(64));
        assert_eq!(o["seed"], OptionValue::Int(7));
        let m = MultiArgs::try_parse_from([
            "x",
            "--output-dir",
            "o",
            "--scenario",
            "chimera-hetero",
            "--runtime",
            "smol-1kb",
        ])
        .unwrap();
        assert_eq!(m.scenario, Scenario::ChimeraHetero);
        assert_eq!(m.common.runtime, RuntimeName::Smol1kb);
        assert!(
            MultiArgs::try_parse_from(["x", "--output-dir", "o", "--scenario", "homo"]).is_err()
        );
    }
}
