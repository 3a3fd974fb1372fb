//! smol: `smol::block_on` with the agents as `smol::spawn` tasks on its global executor, `smol::net` TCP and
//! the kit's HTTP/1.1 client. `smol-1kb` keeps the original's flaw: no line is parsed before 1 KiB of body.

use std::sync::Arc;

use chimeraforge_core::clock::{monotonic_ns, process_start_monotonic_ns};
use chimeraforge_core::error::AgentError;
use chimeraforge_core::records::{AgentRunRecord, MultiRunRecord, Role};
use chimeraforge_core::runner::{multi_record, run_single};
use chimeraforge_core::transport::Transport;

use super::net::Sleep;
use super::net::{Connector, NetTransport};
use super::{MultiJob, SingleJob, Timeouts};

/// Body bytes the flawed `smol-1kb` agent buffers before it parses any line.
pub const FLAWED_MIN_BATCH: usize = 1024;

pub struct SmolConnector(Timeouts);

impl Connector for SmolConnector {
    type Stream = smol::net::TcpStream;

    fn read_timeout(&self) -> std::time::Duration {
        self.0.read
    }

    fn call_deadline(&self) -> std::time::Duration {
        self.0.deadline
    }

    fn sleep(duration: std::time::Duration) -> Sleep {
        Box::pin(async move {
            smol::Timer::after(duration).await;
        })
    }

    async fn connect(&self, authority: String) -> std::io::Result<Self::Stream> {
        let limit = self.0.connect;
        smol::future::or(
            smol::net::TcpStream::connect(authority.as_str()),
            async move {
                smol::Timer::after(limit).await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                ))
            },
        )
        .await
    }
}

fn transport(
    url: &str,
    min_batch: usize,
    timeouts: Timeouts,
) -> Result<NetTransport<SmolConnector>, AgentError> {
    NetTransport::new(SmolConnector(timeouts), url, min_batch)
        .map_err(|e| AgentError::BadInput(e.to_string()))
}

pub fn single(job: &SingleJob, min_batch: usize) -> Result<Vec<AgentRunRecord>, AgentError> {
    let transport = transport(&job.base_url, min_batch, job.timeouts)?;
    smol::block_on(run_single(
        &transport,
        &job.workload,
        &job.agents,
        &job.plan,
        |d| async move {
            smol::Timer::after(d).await;
        },
        &*job.sink,
    ))
}

pub fn multi(job: MultiJob, min_batch: usize) -> Result<MultiRunRecord, AgentError> {
    smol::block_on(async move {
        let process_start = process_start_monotonic_ns();
        let a = Arc::new(transport(&job.plan.collector_url, min_batch, job.timeouts)?);
        let b = Arc::new(transport(&job.plan.insight_url, min_batch, job.timeouts)?);
        let start_ns = monotonic_ns();
        let ta = smol::spawn(job.side(Role::Collector, a.clone(), process_start));
        let tb = smol::spawn(job.side(Role::Insight, b.clone(), process_start));
        let ra = Ok(ta.await);
        let rb = Ok(tb.await);
        let end_ns = monotonic_ns();
        Ok(multi_record(
            &job.plan,
            a.base_url(),
            b.base_url(),
            start_ns,
            end_ns,
            [&ra, &rb],
            &*job.sink,
        ))
    })
}
