//! async-std: `task::block_on` with the agents as `task::spawn` tasks, `async_std::net` TCP and the kit's
//! HTTP/1.1 client. `async-std-mutex` reproduces the original's coordinator, which held a lock across each
//! whole agent run, so the two agents ran one after the other (the published 50.00 %).

use std::sync::Arc;

use async_std::sync::Mutex;
use chimeraforge_core::clock::{monotonic_ns, process_start_monotonic_ns};
use chimeraforge_core::error::AgentError;
use chimeraforge_core::records::{AgentRunRecord, MultiRunRecord, Role};
use chimeraforge_core::runner::{multi_record, run_single};
use chimeraforge_core::transport::Transport;

use super::net::Sleep;
use super::net::{Connector, NetTransport};
use super::{MultiJob, SingleJob, Timeouts};

pub struct AsyncStdConnector(Timeouts);

impl Connector for AsyncStdConnector {
    type Stream = async_std::net::TcpStream;

    fn read_timeout(&self) -> std::time::Duration {
        self.0.read
    }

    fn call_deadline(&self) -> std::time::Duration {
        self.0.deadline
    }

    fn sleep(duration: std::time::Duration) -> Sleep {
        Box::pin(async_std::task::sleep(duration))
    }

    async fn connect(&self, authority: String) -> std::io::Result<Self::Stream> {
        async_std::io::timeout(
            self.0.connect,
            async_std::net::TcpStream::connect(authority.as_str()),
        )
        .await
    }
}

fn transport(url: &str, timeouts: Timeouts) -> Result<NetTransport<AsyncStdConnector>, AgentError> {
    NetTransport::new(AsyncStdConnector(timeouts), url, 0)
        .map_err(|e| AgentError::BadInput(e.to_string()))
}

pub fn single(job: &SingleJob) -> Result<Vec<AgentRunRecord>, AgentError> {
    let transport = transport(&job.base_url, job.timeouts)?;
    async_std::task::block_on(run_single(
        &transport,
        &job.workload,
        &job.agents,
        &job.plan,
        async_std::task::sleep,
        &*job.sink,
    ))
}

pub fn multi(job: MultiJob, coordinator_lock: bool) -> Result<MultiRunRecord, AgentError> {
    async_std::task::block_on(async move {
        let process_start = process_start_monotonic_ns();
        let a = Arc::new(transport(&job.plan.collector_url, job.timeouts)?);
        let b = Arc::new(transport(&job.plan.insight_url, job.timeouts)?);
        let lock = Arc::new(Mutex::new(()));
        let spawn = |t: Arc<NetTransport<AsyncStdConnector>>, role: Role| {
            let run = job.side(role, t, process_start);
            let lock = lock.clone();
            async_std::task::spawn(async move {
                // The flaw, kept on purpose for the diagnostic: the guard lives across the whole run.
                let _guard = if coordinator_lock {
                    Some(lock.lock().await)
                } else {
                    None
                };
                run.await
            })
        };
        let start_ns = monotonic_ns();
        let ta = spawn(a.clone(), Role::Collector);
        let tb = spawn(b.clone(), Role::Insight);
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
