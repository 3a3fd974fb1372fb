//! Multi-agent runner: the collector and insight agents concurrently, on the runtime named by `--runtime`.

use std::process::ExitCode;

use chimeraforge_agent::app;
use chimeraforge_agent::cli::MultiArgs;
use clap::Parser;

fn main() -> ExitCode {
    app::exit(app::run_multi_agents(MultiArgs::parse()))
}
