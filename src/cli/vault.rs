//! `phasebench vault`: the vault store for people and scripts.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::Subcommand;

use phasebench::engines::vault::{self, store, SyncPolicy, Vault, VaultError, VaultOptions};

use super::Status;

/// Vault commands.
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Read `key<TAB>value` lines from stdin; print each key once it is durable under --sync.
    Put {
        /// The vault directory (created if new or empty).
        dir: PathBuf,
        /// always, group(2ms) or none (with none a key is printed once written, not synced).
        #[arg(long, default_value = "always")]
        sync: String,
    },
    /// Print the value of a key (exit 1 if it has none).
    Get {
        /// The vault directory.
        dir: PathBuf,
        /// The key.
        key: String,
    },
    /// Verify every record; print counts; exit 1 on corruption.
    Check {
        /// The vault directory.
        dir: PathBuf,
    },
    /// Rewrite the live records into fresh segments and drop the rest.
    Compact {
        /// The vault directory.
        dir: PathBuf,
    },
}

/// Runs a vault command.
pub fn execute(command: VaultCommand) -> Status {
    let result = match command {
        VaultCommand::Put { dir, sync } => put(&dir, &sync),
        VaultCommand::Get { dir, key } => get(&dir, &key),
        VaultCommand::Check { dir } => check(&dir),
        VaultCommand::Compact { dir } => compact(&dir),
    };
    result.unwrap_or_else(|(status, message)| {
        eprintln!("error: {message}");
        status
    })
}

type Outcome = Result<Status, (Status, String)>;

fn refused(error: VaultError) -> (Status, String) {
    (Status::InvalidInput, error.to_string())
}

fn open(dir: &std::path::Path, sync: SyncPolicy) -> Result<Vault, (Status, String)> {
    if dir.exists() && !dir.is_dir() {
        return Err((Status::InvalidInput, format!("{} is a file, not a vault directory", dir.display())));
    }
    Vault::open(dir, VaultOptions { sync, ..VaultOptions::default() }).map_err(refused)
}

fn put(dir: &std::path::Path, sync: &str) -> Outcome {
    let sync = vault::parse_sync(sync).map_err(|message| (Status::InvalidInput, format!("--sync: {message}")))?;
    let vault = open(dir, sync)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|error| (Status::InvalidInput, format!("stdin line {}: {error}", number + 1)))?;
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('\t') else {
            return Err((Status::InvalidInput, format!("stdin line {}: expected `key<TAB>value`", number + 1)));
        };
        vault
            .put(key.as_bytes(), value.as_bytes())
            .map_err(|error| (Status::InvalidInput, format!("{key}: {error}")))?;
        // Acknowledged only now, after the write (and its sync) returned.
        if writeln!(out, "{key}").and_then(|()| out.flush()).is_err() {
            // Nobody is listening any more; what was written stays written.
            return Ok(Status::Success);
        }
    }
    Ok(Status::Success)
}

fn get(dir: &std::path::Path, key: &str) -> Outcome {
    if !dir.join(vault::format::MARKER).is_file() {
        return Err(refused(VaultError::NotAVault(dir.to_owned())));
    }
    let vault = open(dir, SyncPolicy::Always)?;
    match vault.get(key.as_bytes()) {
        Ok(Some(value)) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&value).and_then(|()| out.write_all(b"\n"));
            Ok(Status::Success)
        }
        Ok(None) => Err((Status::Failed, format!("no value for key `{key}`"))),
        Err(error @ VaultError::Corrupt { .. }) => Err((Status::Failed, error.to_string())),
        Err(error) => Err(refused(error)),
    }
}

fn check(dir: &std::path::Path) -> Outcome {
    match store::check(dir) {
        Ok(report) => {
            println!(
                "{}: ok — {} segments, {} bytes, {} values, {} tombstones, {} live keys",
                dir.display(),
                report.segments,
                report.bytes,
                report.values,
                report.tombstones,
                report.live_keys
            );
            if let Some((offset, bytes)) = report.torn_tail {
                println!("torn tail: {bytes} bytes at offset {offset} of the active segment (cut on the next open)");
            }
            Ok(Status::Success)
        }
        Err(error @ VaultError::Corrupt { .. }) => Err((Status::Failed, error.to_string())),
        Err(error) => Err(refused(error)),
    }
}

fn compact(dir: &std::path::Path) -> Outcome {
    if !dir.join(vault::format::MARKER).is_file() {
        return Err(refused(VaultError::NotAVault(dir.to_owned())));
    }
    let vault = open(dir, SyncPolicy::Always)?;
    let reclaimed = vault.compact().map_err(refused)?;
    println!("{}: compacted, {reclaimed} bytes reclaimed", dir.display());
    Ok(Status::Success)
}
