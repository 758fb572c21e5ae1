//! Shell completions and man pages, generated from the command line's own
//! definition: bash completes `phasebench r<TAB>` to the commands that
//! start so, and the man pages cover every subcommand.

mod common;

use std::process::Command;

use common::{phasebench, status};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn script(shell: &str) -> String {
    let output = phasebench().args(["completions", shell]).output().expect("phasebench completions");
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    stdout(&output)
}

/// What bash's completion offers for the words of `line` (the last one
/// being completed), with the generated script sourced.
fn bash_completes(script_file: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
    let program = format!(
        r#"source '{file}'
complete -p phasebench >/dev/null || exit 9
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
function=$(complete -p phasebench | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
"$function" phasebench "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        file = script_file.display(),
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let output = Command::new("bash").arg("--norc").arg("-c").arg(program).output().expect("bash");
    assert!(output.status.success(), "bash: {}", String::from_utf8_lossy(&output.stderr));
    stdout(&output).lines().map(|line| line.trim().to_string()).filter(|line| !line.is_empty()).collect()
}

#[test]
fn bash_completes_commands_subcommands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("phasebench.bash");
    std::fs::write(&file, script("bash")).unwrap();

    let mut offered = bash_completes(&file, &["phasebench", "r"]);
    offered.sort();
    assert_eq!(offered, ["report", "run"]);
    assert_eq!(bash_completes(&file, &["phasebench", "history", "i"]), ["import"]);
    let flags = bash_completes(&file, &["phasebench", "run", "--v"]);
    assert_eq!(flags, ["--var"], "{flags:?}");
    // What no command starts with is offered nothing: the check can fail.
    assert_eq!(bash_completes(&file, &["phasebench", "zz"]), Vec::<String>::new());
}

#[test]
fn every_shell_gets_a_script_that_names_every_command() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let text = script(shell);
        for command in ["run", "validate", "report", "compare", "history", "completions", "man"] {
            assert!(text.contains(command), "{shell}: no `{command}`");
        }
    }
    // Where the shell is installed, its own parser accepts the script.
    for (shell, check) in [("zsh", &["-n"][..]), ("fish", &["--no-execute"][..])] {
        if Command::new(shell).arg("-c").arg("true").output().is_ok_and(|o| o.status.success()) {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join(format!("phasebench.{shell}"));
            std::fs::write(&file, script(shell)).unwrap();
            let output = Command::new(shell).args(check).arg(&file).output().unwrap();
            assert!(output.status.success(), "{shell}: {}", String::from_utf8_lossy(&output.stderr));
        }
    }
}

#[test]
fn an_unknown_shell_is_refused_with_status_2() {
    let output = phasebench().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(status(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("tcsh"));
}

#[test]
fn man_pages_cover_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let output = phasebench().arg("man").arg("--out").arg(&out).output().unwrap();
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    for name in
        ["phasebench", "phasebench-run", "phasebench-history", "phasebench-history-show", "phasebench-vault-put"]
    {
        let page = std::fs::read_to_string(out.join(format!("{name}.1"))).unwrap_or_else(|_| panic!("{name}.1"));
        assert!(page.contains(".TH"), "{name}.1 has no title line");
    }
    let run = std::fs::read_to_string(out.join("phasebench-run.1")).unwrap();
    for flag in ["var", "out", "smoke", "history"] {
        assert!(run.contains(&format!("\\-\\-{flag}")), "phasebench-run.1 lacks --{flag}");
    }
    assert!(!out.join("phasebench-help.1").exists(), "a page for `help`");
    // Where man is installed, it renders the page.
    if Command::new("man").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let output = Command::new("man").arg("-l").arg(out.join("phasebench-run.1")).env("MANPAGER", "cat").output();
        let output = output.unwrap();
        assert!(stdout(&output).contains("phasebench-run - Run a scenario"), "{}", stdout(&output));
    }
}
