//! The `phasebench` command: parse → plan → run → analyze → render.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let status = match args.command {
        cli::Command::Run(run) => cli::run::execute(run),
        cli::Command::Validate { file } => cli::validate(&file),
        cli::Command::List => cli::list(),
    };
    ExitCode::from(status as u8)
}
