//! Chimeraforge Rust agents: the parts every async runtime shares.
//!
//! Record types (field for field the Python `harness.records` schema, version 1), the request body builder
//! (byte for byte `harness.ollama.request_body`), the corpus summary rule (`harness.corpus`), a small
//! HTTP/1.1 client over `futures-io`, and the agent workflow generic over a [`transport::Transport`].

pub mod body;
pub mod clock;
pub mod corpus;
pub mod error;
pub mod http;
pub mod records;
pub mod runner;
pub mod transport;
pub mod workflow;

pub use error::{AgentError, TransportError};
