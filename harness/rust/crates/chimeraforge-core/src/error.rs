//! Typed errors of the library; the binaries turn them into `anyhow` at the edge.

use thiserror::Error;

/// A transport or HTTP framing failure, recorded on the call (never raised past the workflow).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TransportError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("timed out ({0})")]
    Timeout(String),
    #[error("I/O error on the connection: {0}")]
    Io(String),
    #[error("invalid HTTP response: {0}")]
    Protocol(String),
    #[error("unsupported URL {0}: only http://HOST[:PORT][/PREFIX] is supported (Ollama speaks plain HTTP)")]
    Url(String),
}

impl From<std::io::Error> for TransportError {
    fn from(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::TimedOut {
            TransportError::Timeout(err.to_string())
        } else {
            TransportError::Io(err.to_string())
        }
    }
}

/// Failures that stop an agent process before or outside a call.
#[derive(Debug, Error)]
pub enum AgentError {
    /// Bad flags or inputs: exit code 2, nothing started.
    #[error("{0}")]
    BadInput(String),
    /// Missing prompts or corpus, or a failed control request: exit code 1.
    #[error("{0}")]
    Setup(String),
    #[error("unsupported option(s) {0}")]
    UnsupportedOption(String),
    #[error("cannot write records: {0}")]
    Sink(#[from] std::io::Error),
}
