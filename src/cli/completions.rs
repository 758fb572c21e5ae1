//! `phasebench completions SHELL` and `phasebench man --out DIR`: both
//! generated from the command-line definition itself, so they list exactly
//! the commands and flags this binary takes.

use std::path::Path;

use clap::CommandFactory;

use phasebench::results::store;

use super::{Cli, Status};

/// Prints the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> Status {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "phasebench", &mut std::io::stdout());
    Status::Success
}

/// Writes `phasebench.1` and a page per subcommand, nested ones named by
/// their path (`phasebench-history-show.1`), into `out`.
pub fn man(out: &Path) -> Status {
    if let Err(error) = std::fs::create_dir_all(out) {
        eprintln!("error: cannot create {}: {error}", out.display());
        return Status::Error;
    }
    let mut pages = Vec::new();
    let mut command = Cli::command();
    command.build();
    collect(&command, "phasebench", &mut pages);
    for (name, page) in &pages {
        let path = out.join(format!("{name}.1"));
        if let Err(error) = store::write_atomic(&path, page) {
            eprintln!("error: cannot write {}: {error}", path.display());
            return Status::Error;
        }
    }
    println!("man: {} pages in {}", pages.len(), out.display());
    Status::Success
}

/// Renders `command`'s page as `name`, then its subcommands' (but `help`).
fn collect(command: &clap::Command, name: &str, pages: &mut Vec<(String, Vec<u8>)>) {
    let page = command.clone().name(name.to_string()).bin_name(name.replace('-', " "));
    let mut roff = Vec::new();
    // Rendering into a Vec<u8> cannot fail.
    let _ = clap_mangen::Man::new(page).render(&mut roff);
    pages.push((name.to_string(), roff));
    for sub in command.get_subcommands().filter(|sub| sub.get_name() != "help") {
        collect(sub, &format!("{name}-{}", sub.get_name()), pages);
    }
}
