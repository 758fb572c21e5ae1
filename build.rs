//! Records the git commit phasebench is built from, for results files.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".into());
    // A build from a working tree with uncommitted changes says so, so that
    // results never claim a commit they were not measured with.
    let modified = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no", "--", "src", "templates", "kernels", "Cargo.toml"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .is_some_and(|output| !output.stdout.is_empty());
    let commit = if modified && commit != "unknown" { format!("{commit}-modified") } else { commit };
    println!("cargo:rustc-env=PHASEBENCH_COMMIT={commit}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-changed=.git/index");
    for tree in ["src", "templates", "kernels", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={tree}");
    }
}
