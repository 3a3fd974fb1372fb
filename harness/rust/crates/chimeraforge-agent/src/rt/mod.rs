//! The runtimes, each the way its ecosystem intends; all behind cargo features (all on by default).

use std::sync::Arc;

use chimeraforge_core::error::AgentError;
use chimeraforge_core::records::{AgentRunRecord, MultiRunRecord, Role};
use chimeraforge_core::runner::{MultiPlan, SingleAgent, SinglePlan};
use chimeraforge_core::transport::Transport;
use chimeraforge_core::workflow::{run_agent, RecordSink, Workload};

use crate::cli::RuntimeName;

#[cfg(any(feature = "smol", feature = "async-std"))]
pub mod net;

#[cfg(feature = "async-std")]
pub mod async_std_rt;
#[cfg(feature = "smol")]
pub mod smol_rt;
#[cfg(feature = "tokio")]
pub mod tokio_rt;

/// How long a transport waits: to connect, for each read of a response (the per-read idle timeout, httpx's
/// read timeout in the Python agent), and for one call in all (the whole-call deadline). The defaults are the
/// Python agent's; the harness passes its HARNESS_* settings as flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    pub connect: std::time::Duration,
    pub read: std::time::Duration,
    pub deadline: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: std::time::Duration::from_secs(10),
            read: std::time::Duration::from_secs(600),
            deadline: std::time::Duration::from_secs(1800),
        }
    }
}

/// A single-agent run: agents one after the other against one server.
pub struct SingleJob {
    pub base_url: String,
    pub workload: Workload,
    pub agents: Vec<SingleAgent>,
    pub plan: SinglePlan,
    pub sink: Arc<dyn RecordSink>,
    pub timeouts: Timeouts,
}

/// A multi-agent run: collector and insight concurrently.
pub struct MultiJob {
    pub workload: Arc<Workload>,
    pub plan: MultiPlan,
    pub sink: Arc<dyn RecordSink>,
    pub timeouts: Timeouts,
}

impl MultiJob {
    /// One side of the run (collector or insight, with its own options) as an owned future a runtime can spawn.
    pub(crate) fn side<T: Transport + 'static>(
        &self,
        role: Role,
        transport: Arc<T>,
        process_start_ns: Option<i64>,
    ) -> impl std::future::Future<Output = AgentRunRecord> + 'static {
        let options = match role {
            Role::Collector => self.plan.collector_options.clone(),
            _ => self.plan.insight_options.clone(),
        };
        let workload = self.workload.clone();
        let who = self.plan.identity(role);
        let sink = self.sink.clone();
        async move {
            run_agent(
                &*transport,
                &workload,
                &who,
                options.as_ref(),
                1,
                process_start_ns,
                &*sink,
            )
            .await
        }
    }
}

/// Whether this build has the runtime.
pub fn compiled_in(runtime: RuntimeName) -> bool {
    match runtime {
        RuntimeName::Tokio | RuntimeName::TokioLocal => cfg!(feature = "tokio"),
        RuntimeName::Smol | RuntimeName::Smol1kb => cfg!(feature = "smol"),
        RuntimeName::AsyncStd | RuntimeName::AsyncStdMutex => cfg!(feature = "async-std"),
    }
}

fn not_compiled(runtime: RuntimeName) -> AgentError {
    AgentError::BadInput(format!(
        "runtime {} is not compiled into this binary (build with its cargo feature)",
        runtime.as_str()
    ))
}

pub fn single(runtime: RuntimeName, job: &SingleJob) -> Result<Vec<AgentRunRecord>, AgentError> {
    match runtime {
        #[cfg(feature = "tokio")]
        RuntimeName::Tokio => tokio_rt::single(job, false),
        #[cfg(feature = "tokio")]
        RuntimeName::TokioLocal => tokio_rt::single(job, true),
        #[cfg(feature = "smol")]
        RuntimeName::Smol => smol_rt::single(job, 0),
        #[cfg(feature = "smol")]
        RuntimeName::Smol1kb => smol_rt::single(job, smol_rt::FLAWED_MIN_BATCH),
        #[cfg(feature = "async-std")]
        RuntimeName::AsyncStd | RuntimeName::AsyncStdMutex => async_std_rt::single(job),
        #[allow(unreachable_patterns)]
        other => Err(not_compiled(other)),
    }
}

pub fn multi(runtime: RuntimeName, job: MultiJob) -> Result<MultiRunRecord, AgentError> {
    match runtime {
        #[cfg(feature = "tokio")]
        RuntimeName::Tokio => tokio_rt::multi(job),
        #[cfg(feature = "tokio")]
        RuntimeName::TokioLocal => tokio_rt::multi_local(job),
        #[cfg(feature = "smol")]
        RuntimeName::Smol => smol_rt::multi(job, 0),
        #[cfg(feature = "smol")]
        RuntimeName::Smol1kb => smol_rt::multi(job, smol_rt::FLAWED_MIN_BATCH),
        #[cfg(feature = "async-std")]
        RuntimeName::AsyncStd => async_std_rt::multi(job, false),
        #[cfg(feature = "async-std")]
        RuntimeName::AsyncStdMutex => async_std_rt::multi(job, true),
        #[allow(unreachable_patterns)]
        other => Err(not_compiled(other)),
    }
}
