//! Single-agent runner: baseline and/or chimera agent against one Ollama server.

use std::process::ExitCode;

use chimeraforge_agent::app;
use chimeraforge_agent::cli::SingleArgs;
use clap::Parser;

fn main() -> ExitCode {
    app::exit(app::run_single_agents(SingleArgs::parse()))
}
