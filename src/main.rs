//! The `phasebench` command: parse → plan → run → analyze → render.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Every allocation of the process goes through the counting allocator, which
/// counts only while a `profile: memory` run measures.
#[global_allocator]
static ALLOCATOR: phasebench::run::memory::CountingAllocator = phasebench::run::memory::CountingAllocator;

fn main() -> ExitCode {
    // Behave like other Unix tools when the reader goes away (`phasebench list | head`):
    // end quietly instead of panicking on a failed print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    let status = match args.command {
        cli::Command::Run(run) => cli::run::execute(run),
        cli::Command::Validate { file } => cli::validate(&file),
        cli::Command::List => cli::list(),
        cli::Command::Report(args) => cli::report::report(&args),
        cli::Command::Compare(args) => cli::report::compare(&args),
        cli::Command::Merge(args) => cli::merge::execute(&args),
        cli::Command::Serve(args) => cli::serve::execute(args),
        cli::Command::Inspect { what } => cli::inspect::execute(what),
        cli::Command::Vault { what } => cli::vault::execute(what),
        cli::Command::Launch { scheduler } => cli::launch::execute(scheduler),
        cli::Command::History { what } => cli::history::history(what),
        cli::Command::Completions { shell } => cli::completions::completions(shell),
        cli::Command::Man { out } => cli::completions::man(&out),
        cli::Command::Schema { scenario, out } => cli::editor::schema(scenario.as_deref(), out.as_deref()),
        cli::Command::Init { file, engine } => cli::editor::init(&file, &engine),
    };
    ExitCode::from(status as u8)
}
