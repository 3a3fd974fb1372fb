//! A transport over any runtime's TCP stream that speaks `futures-io`, using the kit's HTTP/1.1 client.

use std::future::Future;

use chimeraforge_core::error::TransportError;
use chimeraforge_core::http::{self, BodyLines, Endpoint};
use chimeraforge_core::transport::{Head, Transport};
use futures_lite::io::{AsyncRead, AsyncWrite};

/// Opens a TCP connection on a particular runtime, with its own timer for the connect timeout.
pub trait Connector: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

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
    type Lines = BodyLines<C::Stream>;

    fn base_url(&self) -> &str {
        &self.endpoint.base_url
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<(Head, Self::Lines), TransportError> {
        let stream = self
            .connector
            .connect(self.endpoint.authority())
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => TransportError::Timeout("connect".into()),
                _ => TransportError::Connect(format!("{}: {e}", self.endpoint.authority())),
            })?;
        http::post(stream, &self.endpoint, path, &body, self.min_batch).await
    }
}
