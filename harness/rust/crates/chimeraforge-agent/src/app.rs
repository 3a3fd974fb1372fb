//! The edge: flags to jobs, `Error:` messages and exit codes (0 ok, 1 run failures, 2 bad input).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chimeraforge_core::body::Options;
use chimeraforge_core::error::AgentError;
use chimeraforge_core::http::Endpoint;
use chimeraforge_core::records::{Role, Scenario};
use chimeraforge_core::runner::{MultiPlan, SingleAgent, SinglePlan};
use chimeraforge_core::workflow::Workload;

use crate::cli::{Common, MultiArgs, SingleArgs};
use crate::rt::{self, MultiJob, SingleJob, Timeouts};
use crate::sink::FileSink;

fn bad(msg: impl Into<String>) -> anyhow::Error {
    AgentError::BadInput(msg.into()).into()
}

/// Exit code for a finished command: 0 when every run succeeded, 1 when one failed, 2 on bad input.
pub fn exit(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("Error: {e:#}");
            match e.downcast_ref::<AgentError>() {
                Some(AgentError::BadInput(_)) => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}

fn check_url(url: &str) -> anyhow::Result<()> {
    Endpoint::parse(url).map_err(|e| bad(e.to_string()))?;
    Ok(())
}

fn check_runtime(common: &Common) -> anyhow::Result<()> {
    if !rt::compiled_in(common.runtime) {
        return Err(bad(format!(
            "runtime {} is not compiled into this binary (build with its cargo feature)",
            common.runtime.as_str()
        )));
    }
    Ok(())
}

fn load(common: &Common) -> anyhow::Result<(Workload, Arc<FileSink>)> {
    let workload = Workload::load(
        &common.model,
        common.workflow.into(),
        !common.no_stream,
        &common.prompts,
        Some(&common.corpus),
    )?
    .with_engine(common.engine.into(), common.max_tokens)?;
    let sink = FileSink::open(&common.output_dir)
        .with_context(|| format!("cannot write records in {}", common.output_dir.display()))?;
    Ok((workload, Arc::new(sink)))
}

fn sink_ok(sink: &FileSink) -> anyhow::Result<()> {
    match sink.take_error() {
        Some(e) => Err(anyhow::Error::new(AgentError::Sink(e))),
        None => Ok(()),
    }
}

/// `chimeraforge-agent`: the agents of each run one after the other against one server.
pub fn run_single_agents(args: SingleArgs) -> anyhow::Result<bool> {
    check_runtime(&args.common)?;
    check_url(&args.base_url)?;
    let roles: Vec<&str> = args
        .agents
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    let bad_roles: Vec<&str> = roles
        .iter()
        .copied()
        .filter(|r| !matches!(*r, "baseline" | "chimera" | "collector" | "insight"))
        .collect();
    if roles.is_empty() || !bad_roles.is_empty() {
        return Err(bad(format!(
            "--agents: unknown role(s) {:?}: use baseline and/or chimera (or collector/insight)",
            if bad_roles.is_empty() {
                &roles
            } else {
                &bad_roles
            }
        )));
    }
    let pace_ok = |s: f64| s.is_finite() && s >= 0.0;
    if !pace_ok(args.pause_s) || !pace_ok(args.cooldown_s) {
        return Err(bad(
            "--pause-s and --cooldown-s must be finite and non-negative",
        ));
    }
    let chimera = args.chimera.options();
    let agents = roles
        .iter()
        // Every role but baseline sends the --chimera-* options, as the Python agent does (an isolated
        // collector or insight run is one side of a multi-agent config measured alone).
        .map(|r| SingleAgent {
            role: match *r {
                "chimera" => Role::Chimera,
                "collector" => Role::Collector,
                "insight" => Role::Insight,
                _ => Role::Baseline,
            },
            options: if *r == "baseline" {
                None
            } else {
                chimera.clone()
            },
        })
        .collect();
    let (workload, sink) = load(&args.common)?;
    let job = SingleJob {
        base_url: args.base_url.clone(),
        workload,
        agents,
        plan: SinglePlan {
            runs: args.runs,
            pause_s: args.pause_s,
            cooldown_s: args.cooldown_s,
            unload_between_runs: args.unload_between_runs,
            run_id: args.common.run_id.clone(),
            runtime: args.common.runtime.as_str().to_owned(),
        },
        sink: sink.clone(),
        timeouts: timeouts(&args.common)?,
    };
    let records = rt::single(args.common.runtime, &job)?;
    sink_ok(&sink)?;
    Ok(records.iter().all(|r| r.ok))
}

/// The transports' timeouts from the flags; zero, negative or non-finite values are bad input.
fn timeouts(common: &Common) -> Result<Timeouts, AgentError> {
    let seconds = |flag: &str, value: f64| {
        if value.is_finite() && value > 0.0 {
            Ok(std::time::Duration::from_secs_f64(value))
        } else {
            Err(AgentError::BadInput(format!(
                "{flag} must be a positive number of seconds, not {value}"
            )))
        }
    };
    Ok(Timeouts {
        connect: seconds("--connect-timeout-s", common.connect_timeout_s)?,
        read: seconds("--read-timeout-s", common.read_timeout_s)?,
        deadline: seconds("--call-deadline-s", common.call_deadline_s)?,
    })
}

/// Scenario mapping of `harness.agents.command._multi_options`: bvc A sends nothing; homo both the chimera options;
/// hetero B its own.
pub fn multi_options(
    scenario: Scenario,
    chimera: Option<Options>,
    chimera2: Option<Options>,
) -> Result<(Option<Options>, Option<Options>), AgentError> {
    let chimera = chimera.ok_or_else(|| {
        AgentError::BadInput(format!(
            "--scenario {} needs chimera options: pass --chimera-num-gpu etc.",
            scenario.as_str()
        ))
    })?;
    match scenario {
        Scenario::BaselineVsChimera => Ok((None, Some(chimera))),
        Scenario::ChimeraHomo => Ok((Some(chimera.clone()), Some(chimera))),
        Scenario::ChimeraHetero => {
            let chimera2 = chimera2.ok_or_else(|| {
                AgentError::BadInput(
                    "chimera_hetero needs the insight agent's options: pass --chimera2-num-gpu etc."
                        .into(),
                )
            })?;
            Ok((Some(chimera), Some(chimera2)))
        }
    }
}

/// `chimeraforge-multi`: collector and insight concurrently.
pub fn run_multi_agents(args: MultiArgs) -> anyhow::Result<bool> {
    check_runtime(&args.common)?;
    check_url(&args.collector_ollama_url)?;
    check_url(&args.insight_ollama_url)?;
    let (a, b) = multi_options(
        args.scenario,
        args.chimera.options(),
        args.chimera2.options(),
    )?;
    let (workload, sink) = load(&args.common)?;
    let job = MultiJob {
        workload: Arc::new(workload),
        plan: MultiPlan {
            collector_url: args.collector_ollama_url.clone(),
            insight_url: args.insight_ollama_url.clone(),
            scenario: args.scenario,
            collector_options: a,
            insight_options: b,
            run_id: args.common.run_id.clone(),
            runtime: args.common.runtime.as_str().to_owned(),
        },
        sink: sink.clone(),
        timeouts: timeouts(&args.common)?,
    };
    let record = rt::multi(args.common.runtime, job)?;
    sink_ok(&sink)?;
    Ok(record.ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chimeraforge_core::body::OptionValue;

    #[test]
    fn scenario_mapping_like_python() {
        let mut c = Options::new();
        c.insert("num_gpu".into(), OptionValue::Int(80));
        let mut c2 = Options::new();
        c2.insert("num_gpu".into(), OptionValue::Int(100));
        let (a, b) = multi_options(Scenario::BaselineVsChimera, Some(c.clone()), None).unwrap();
        assert_eq!((a, b.as_ref()), (None, Some(&c)));
        let (a, b) =
            multi_options(Scenario::ChimeraHomo, Some(c.clone()), Some(c2.clone())).unwrap();
        assert_eq!((a.as_ref(), b.as_ref()), (Some(&c), Some(&c)));
        let (a, b) =
            multi_options(Scenario::ChimeraHetero, Some(c.clone()), Some(c2.clone())).unwrap();
        assert_eq!((a.as_ref(), b.as_ref()), (Some(&c), Some(&c2)));
        assert!(multi_options(Scenario::ChimeraHetero, Some(c), None).is_err());
        assert!(multi_options(Scenario::ChimeraHomo, None, Some(c2)).is_err());
    }
}
