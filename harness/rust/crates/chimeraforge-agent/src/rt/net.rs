//! A transport over any runtime's TCP stream that speaks `futures-io`, using the kit's HTTP/1.1 client.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use chimeraforge_core::error::TransportError;
use chimeraforge_core::http::{self, BodyLines, Endpoint};
use chimeraforge_core::transport::{Head, Transport};
use futures_lite::io::{AsyncRead, AsyncWrite};

/// A runtime's own timer future.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Opens a TCP connection on a particular runtime, with its own timer for the connect and read timeouts.
pub trait Connector: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// How long one read may wait for bytes (httpx's read timeout in the Python agent).
    fn read_timeout(&self) -> Duration;

    /// How long one call may take in all, its response stream included.
    fn call_deadline(&self) -> Duration;

    /// The runtime's timer: the read timeout is armed with it, so no other runtime's reactor is involved.
    fn sleep(duration: Duration) -> Sleep;

    fn connect(
        &self,
        authority: String,
    ) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

/// One server, one connection per request (`Connection: close`).
pub struct NetTransport<C> {
    connector: C,
    endpoint: Endpoint,
    min_batch: usize,
}

impl<C: Connector> NetTransport<C> {
    pub fn new(connector: C, base_url: &str, min_batch: usize) -> Result<Self, TransportError> {
        Ok(NetTransport {
            connector,
            endpoint: Endpoint::parse(base_url)?,
            min_batch,
        })
    }
}

impl<C: Connector> Transport for NetTransport<C> {
    type Lines = BodyLines<ReadTimeout<C>>;

    fn base_url(&self) -> &str {
        &self.endpoint.base_url
    }

    fn call_deadline(&self) -> Option<Duration> {
        Some(self.connector.call_deadline())
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<(Head, Self::Lines), TransportError> {
        let stream = self.open().await?;
        http::post(stream, &self.endpoint, path, &body, self.min_batch).await
    }

    async fn get(&self, path: &str) -> Result<(Head, Self::Lines), TransportError> {
        let stream = self.open().await?;
        http::get(stream, &self.endpoint, path).await
    }
}

impl<C: Connector> NetTransport<C> {
    async fn open(&self) -> Result<ReadTimeout<C>, TransportError> {
        let stream = self
            .connector
            .connect(self.endpoint.authority())
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => TransportError::Timeout("connect".into()),
                _ => TransportError::Connect(format!("{}: {e}", self.endpoint.authority())),
            })?;
        let stream = ReadTimeout {
            inner: stream,
            limit: self.connector.read_timeout(),
            deadline: Instant::now() + self.connector.call_deadline(),
            timer: None,
        };
        Ok(stream)
    }
}

/// A stream whose reads fail with `TimedOut` after waiting `limit` for bytes; the timer restarts with every
/// read that returns, so a long stream that keeps producing never trips it (as httpx's read timeout). No wait
/// runs past `deadline`, the call's whole-call deadline: a stream that keeps producing still ends there.
pub struct ReadTimeout<C: Connector> {
    inner: C::Stream,
    limit: Duration,
    deadline: Instant,
    timer: Option<Sleep>,
}

impl<C: Connector> AsyncRead for ReadTimeout<C> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Poll::Ready(result) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            this.timer = None;
            return Poll::Ready(result);
        }
        let limit = this.limit;
        let left = this.deadline.saturating_duration_since(Instant::now());
        let by_deadline = left < limit;
        let timer = this
            .timer
            .get_or_insert_with(|| C::sleep(if by_deadline { left } else { limit }));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.timer = None;
                let why = if Instant::now() >= this.deadline {
                    "the call deadline passed".to_owned()
                } else {
                    format!("no response bytes for {} s", limit.as_secs_f64())
                };
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<C: Connector> AsyncWrite for ReadTimeout<C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
