//! The Rust agents' binaries, one per role: `chimeraforge-agent` (single) and `chimeraforge-multi`
//! (collector + insight concurrently), each on the async runtime chosen with `--runtime`.

pub mod app;
pub mod cli;
pub mod rt;
pub mod sink;
