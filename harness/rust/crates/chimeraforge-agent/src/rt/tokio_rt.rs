//! tokio: a multi-thread runtime with the agents as `tokio::spawn` tasks, or (`tokio-local`) a
//! current-thread runtime with a `LocalSet` and `spawn_local`. HTTP via reqwest (plain HTTP, no TLS).
//!
//! One connection per call, as the hand-written path of smol and async-std (`Connection: close`): a server
//! may answer `Keep-Alive` and still close the connection after a response (llama.cpp's server does so after
//! every streamed one), and hyper does not resend a POST whose pooled connection turned out closed, so a
//! pooled second call failed with "connection closed before message completed" before the server saw it.

use std::pin::Pin;
use std::sync::Arc;

use chimeraforge_core::clock::{monotonic_ns, process_start_monotonic_ns};
use chimeraforge_core::error::{AgentError, TransportError};
use chimeraforge_core::records::{AgentRunRecord, MultiRunRecord, Role};
use chimeraforge_core::runner::{multi_record, run_single};
use chimeraforge_core::transport::{Head, Line, LineSource, LineSplitter, Transport};
use futures_lite::{Stream, StreamExt};

use super::{MultiJob, SingleJob, Timeouts};

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// reqwest bound to one server.
pub struct ReqwestTransport {
    client: reqwest::Client,
    base_url: String,
    deadline: std::time::Duration,
}

impl ReqwestTransport {
    pub fn new(base_url: &str, timeouts: Timeouts) -> Result<Self, AgentError> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read)
            .timeout(timeouts.deadline)
            .build()
            .map_err(|e| AgentError::Setup(format!("cannot build the HTTP client: {e}")))?;
        Ok(ReqwestTransport {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            deadline: timeouts.deadline,
        })
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn transport_error(e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout(describe(&e))
    } else if e.is_connect() {
        TransportError::Connect(describe(&e))
    } else {
        TransportError::Io(describe(&e))
    }
}

/// A streaming body split into lines as chunks arrive.
pub struct ReqwestLines {
    stream: ByteStream,
    splitter: LineSplitter,
    ended: bool,
}

impl LineSource for ReqwestLines {
    async fn next_line(&mut self) -> Result<Option<Line>, TransportError> {
        loop {
            if let Some(line) = self.splitter.pop() {
                return Ok(Some(line));
            }
            if self.ended {
                return Ok(None);
            }
            let next = self.stream.next().await;
            let now = monotonic_ns();
            match next {
                Some(Ok(bytes)) => self.splitter.push(&bytes, now),
                Some(Err(e)) => return Err(transport_error(e)),
                None => {
                    self.ended = true;
                    self.splitter.finish(now);
                }
            }
        }
    }
}

impl Transport for ReqwestTransport {
    type Lines = ReqwestLines;

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn call_deadline(&self) -> Option<std::time::Duration> {
        Some(self.deadline)
    }

    async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(Head, ReqwestLines), TransportError> {
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .header("content-type", "application/json")
            .header("connection", "close")
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        Ok(lines_of(response))
    }

    async fn get(&self, path: &str) -> Result<(Head, ReqwestLines), TransportError> {
        let response = self
            .client
            .get(format!("{}{path}", self.base_url))
            .header("connection", "close")
            .send()
            .await
            .map_err(transport_error)?;
        Ok(lines_of(response))
    }
}

fn lines_of(response: reqwest::Response) -> (Head, ReqwestLines) {
    {
        let head = Head {
            status: response.status().as_u16(),
            simulated: response
                .headers()
                .get("x-chimeraforge-simulated")
                .is_some_and(|v| v.as_bytes() == b"1"),
        };
        (
            head,
            ReqwestLines {
                stream: Box::pin(response.bytes_stream()),
                splitter: LineSplitter::new(0),
                ended: false,
            },
        )
    }
}

fn runtime(local: bool) -> Result<tokio::runtime::Runtime, AgentError> {
    let mut builder = if local {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| AgentError::Setup(format!("cannot start the tokio runtime: {e}")))
}

pub fn single(job: &SingleJob, local: bool) -> Result<Vec<AgentRunRecord>, AgentError> {
    let rt = runtime(local)?;
    let transport = ReqwestTransport::new(&job.base_url, job.timeouts)?;
    let run = run_single(
        &transport,
        &job.workload,
        &job.agents,
        &job.plan,
        tokio::time::sleep,
        &*job.sink,
    );
    if local {
        tokio::task::LocalSet::new().block_on(&rt, run)
    } else {
        rt.block_on(run)
    }
}

pub fn multi(job: MultiJob) -> Result<MultiRunRecord, AgentError> {
    let rt = runtime(false)?;
    rt.block_on(async move {
        let process_start = process_start_monotonic_ns();
        let a = Arc::new(ReqwestTransport::new(
            &job.plan.collector_url,
            job.timeouts,
        )?);
        let b = Arc::new(ReqwestTransport::new(&job.plan.insight_url, job.timeouts)?);
        let start_ns = monotonic_ns();
        let ta = tokio::spawn(job.side(Role::Collector, a.clone(), process_start));
        let tb = tokio::spawn(job.side(Role::Insight, b.clone(), process_start));
        let ra = ta.await.map_err(|e| e.to_string());
        let rb = tb.await.map_err(|e| e.to_string());
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

pub fn multi_local(job: MultiJob) -> Result<MultiRunRecord, AgentError> {
    let rt = runtime(true)?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let process_start = process_start_monotonic_ns();
        let a = Arc::new(ReqwestTransport::new(
            &job.plan.collector_url,
            job.timeouts,
        )?);
        let b = Arc::new(ReqwestTransport::new(&job.plan.insight_url, job.timeouts)?);
        let start_ns = monotonic_ns();
        let ta = tokio::task::spawn_local(job.side(Role::Collector, a.clone(), process_start));
        let tb = tokio::task::spawn_local(job.side(Role::Insight, b.clone(), process_start));
        let ra = ta.await.map_err(|e| e.to_string());
        let rb = tb.await.map_err(|e| e.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// Answers each connection's first request with a streamed body and `Keep-Alive`, then reads the next
    /// request on that connection and closes it unanswered: a server that promises keep-alive and does not keep it.
    fn broken_keep_alive_server(calls: usize) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut answered = 0;
            while answered < calls {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if read_request(&mut reader).is_none() {
                    continue;
                }
                let mut out = stream;
                let body = "data: {\"choices\":[{\"text\":\"x\",\"finish_reason\":\"length\"}],\"timings\":{}}\n\n";
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5, max=100\r\n\r\n";
                write!(out, "{head}{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).unwrap();
                out.flush().unwrap();
                answered += 1;
                let _ = read_request(&mut reader); // a reused connection's request: dropped unanswered
            }
            answered
        });
        (url, handle)
    }

    fn read_request(reader: &mut BufReader<std::net::TcpStream>) -> Option<()> {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().ok()?;
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()
    }

    #[test]
    fn a_second_call_never_rides_a_connection_the_server_closed() {
        let (url, server) = broken_keep_alive_server(2);
        let rt = runtime(false).unwrap();
        let transport = ReqwestTransport::new(&url, Timeouts::default()).unwrap();
        for call in 1..=2 {
            let obs = rt.block_on(chimeraforge_core::workflow::observe_engine(
                &transport,
                chimeraforge_core::workflow::Engine::LlamaCpp,
                b"{}".to_vec(),
                true,
            ));
            assert_eq!(obs.error, None, "call {call}");
            assert_eq!(obs.text, "x");
        }
        assert_eq!(server.join().unwrap(), 2);
    }
}
