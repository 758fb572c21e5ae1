//! `phasebench schema` and `phasebench init`: what an editor needs to check
//! a scenario as it is typed, and a first scenario to start from.

use std::fmt::Write as _;
use std::path::Path;

use phasebench::engines::catalog::{EngineDecl, OptionDecl};
use phasebench::engines::{find, registry};
use phasebench::results::store;
use phasebench::{dsl, plan, schema};

use super::Status;

/// Prints the scenario JSON Schema, or writes it to `out`; with `scenario`,
/// the schema narrowed to that scenario's engine instances.
pub fn schema(scenario: Option<&Path>, out: Option<&Path>) -> Status {
    let text = match scenario {
        None => schema::text(),
        Some(file) => match instances(file) {
            Ok((name, instances)) => schema::to_text(&schema::for_instances(&name, &instances)),
            Err(message) => {
                eprintln!("error: {}: {message}", file.display());
                eprintln!("  hint: --for reads the scenario's `engines:` mapping, `NAME: {{ kind: KIND, … }}`");
                return Status::InvalidInput;
            }
        },
    };
    match out {
        None => {
            print!("{text}");
            Status::Success
        }
        Some(path) => match store::write_atomic(path, text.as_bytes()) {
            Ok(()) => {
                println!("schema: {}", path.display());
                Status::Success
            }
            Err(error) => {
                eprintln!("error: cannot write {}: {error}", path.display());
                Status::Error
            }
        },
    }
}

/// The scenario's name and its engine instances (name, kind), read leniently:
/// only `scenario:` and `engines:` need to make sense, so a file half
/// written in the editor still gives its instances.
fn instances(file: &Path) -> Result<(String, Vec<(String, String)>), String> {
    let text = std::fs::read_to_string(file).map_err(|error| format!("cannot read the scenario: {error}"))?;
    let document: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|error| format!("not YAML: {error}"))?;
    let name = document.get("scenario").and_then(serde_yaml::Value::as_str).unwrap_or_default().to_owned();
    let Some(engines) = document.get("engines").and_then(serde_yaml::Value::as_mapping) else {
        return Err("no `engines:` mapping".into());
    };
    let mut found = Vec::new();
    for (key, engine) in engines {
        let (Some(instance), Some(kind)) = (key.as_str(), engine.get("kind").and_then(serde_yaml::Value::as_str))
        else {
            continue;
        };
        found.push((instance.to_owned(), kind.to_owned()));
    }
    Ok((name, found))
}

/// The schema file `init` writes beside the scenario, which the scenario's
/// first line names for the editor.
pub const SCHEMA_BESIDE: &str = "phasebench.schema.json";

/// Writes a commented starter scenario for engine `kind` to `file`, which
/// must not exist, after checking that it validates; and the schema beside
/// it (`phasebench.schema.json`, this version's), which its first line names.
pub fn init(file: &Path, kind: &str) -> Status {
    let Some(engine) = find(kind) else {
        let kinds: Vec<&str> = registry().iter().map(|kind| kind.decl().kind).collect();
        eprintln!("error: --engine: unknown engine kind `{kind}`");
        eprintln!("  hint: one of {}", kinds.join(", "));
        return Status::InvalidInput;
    };
    if file.exists() {
        eprintln!("error: {} already exists; phasebench init writes a new file only", file.display());
        eprintln!("  hint: name another file, such as `phasebench init --engine {kind} mine.yaml`");
        return Status::InvalidInput;
    }
    let text = starter(engine.decl(), SCHEMA_BESIDE);
    // The starter is generated from the catalog; it is checked like any
    // scenario before it is written, so it never hands out one that fails.
    let checked = dsl::parse(&file.display().to_string(), text.clone())
        .and_then(|document| plan::build(&document, &plan::PlanOptions::default()));
    if let Err(diagnostics) = checked {
        eprint!("{diagnostics}");
        eprintln!("error: the starter scenario for `{kind}` does not validate; this is a bug in phasebench");
        return Status::Error;
    }
    let beside = file.parent().unwrap_or(Path::new("")).join(SCHEMA_BESIDE);
    for (path, bytes) in [(beside.as_path(), schema::text().into_bytes()), (file, text.into_bytes())] {
        if let Err(error) = store::write_atomic(path, &bytes) {
            eprintln!("error: cannot write {}: {error}", path.display());
            return Status::Error;
        }
    }
    println!(
        "init: wrote {} (engine `{kind}`) and its schema {}; run it with `phasebench run {}`",
        file.display(),
        beside.display(),
        file.display()
    );
    Status::Success
}

/// A value that validates for a required option or parameter: its type's
/// least surprising one, or for text the example its documentation gives
/// (`e.g. http://127.0.0.1:8000/v1`).
fn required_value(option: &OptionDecl) -> String {
    use phasebench::engines::ValueType;
    match option.ty {
        ValueType::Duration => "1ms".into(),
        ValueType::Size => "4KiB".into(),
        ValueType::Count { min, .. } => min.max(1).to_string(),
        ValueType::Number { min, max } => ((min + max) / 2.0).to_string(),
        ValueType::Bool => "false".into(),
        ValueType::Choice(choices) => choices.first().copied().unwrap_or_default().into(),
        ValueType::Rate => "100/s".into(),
        ValueType::Text | ValueType::Steps => option
            .doc
            .split_once("e.g. ")
            .and_then(|(_, example)| example.split_whitespace().next())
            .map_or_else(|| "CHANGE-ME".to_owned(), |example| example.trim_end_matches([',', ';', ')']).to_owned()),
    }
}

/// `name: value` lines for `decls`: required ones set, the others commented out at their default.
fn option_lines(out: &mut String, decls: &[OptionDecl], indent: &str) {
    // Inside a comment already, the default is not commented twice.
    let off = if indent.trim_start().starts_with('#') { "" } else { "# " };
    for option in decls {
        let _ = writeln!(out, "{indent}# {} ({})", option.doc, option.ty.describe());
        match option.default {
            Some(default) => {
                let _ = writeln!(out, "{indent}{off}{}: {}", option.name, yaml_scalar(default));
            }
            None => {
                let _ = writeln!(out, "{indent}{}: {}", option.name, yaml_scalar(&required_value(option)));
            }
        }
    }
}

/// `text` as a YAML scalar: quoted when YAML would read it otherwise.
fn yaml_scalar(text: &str) -> String {
    let plain = !text.is_empty()
        && !text.starts_with(|c: char| "[]{}#&*!|>'\"%@`-?:,".contains(c) || c.is_whitespace())
        && !text.contains(": ")
        && !text.contains(" #")
        && !text.ends_with(|c: char| c.is_whitespace() || c == ':');
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

/// The starter scenario for `engine`: one instance, one phase measuring its
/// first operation, a target, and comments that say what to change.
fn starter(engine: &'static EngineDecl, schema: &str) -> String {
    let op = &engine.ops[0];
    let mut out = String::new();
    let _ = writeln!(out, "# yaml-language-server: $schema={schema}");
    let _ = writeln!(out, "# A phasebench scenario, written by `phasebench init --engine {}`.", engine.kind);
    let _ = writeln!(out, "# Check it with `phasebench validate FILE`; run it with `phasebench run FILE`.");
    let _ = writeln!(out, "# `phasebench list` shows every engine, option, operation and metric.");
    let _ = writeln!(out, "scenario: my-{}", engine.kind);
    let _ = writeln!(out, "description: what this campaign measures, and why");
    let _ = writeln!(out, "# Every random choice derives from the seed: the same seed, the same operations.");
    let _ = writeln!(out, "seed: 1");
    let _ = writeln!(out);
    let _ = writeln!(out, "engines:");
    let _ = writeln!(out, "  # {}", engine.doc);
    let _ = writeln!(out, "  main:");
    let _ = writeln!(out, "    kind: {}", engine.kind);
    option_lines(&mut out, engine.options, "    ");
    let _ = writeln!(out);
    let _ = writeln!(out, "phases:");
    let _ = writeln!(out, "  - name: baseline");
    let _ = writeln!(out, "    workloads:");
    let _ = writeln!(out, "      - name: {}", op.name);
    let _ = writeln!(out, "        engine: main");
    let _ = writeln!(out, "        # {}", op.doc);
    let _ = writeln!(out, "        op: {}", op.name);
    if op.params.iter().any(|param| param.default.is_none()) {
        let _ = writeln!(out, "        with:");
        option_lines(&mut out, op.params, "          ");
    } else {
        if !op.params.is_empty() {
            let _ = writeln!(out, "        # Its parameters, at their defaults; write one into `with:` to change it:");
            option_lines(&mut out, op.params, "        #   ");
        }
        let _ = writeln!(out, "        with: {{}}");
    }
    let _ = writeln!(out, "        warmup: 5x");
    let _ = writeln!(out, "        # Measure a count of operations (`iterations`) or a time (`duration: 10s`);");
    let _ = writeln!(out, "        # a p99 needs 1,000 operations at least.");
    let _ = writeln!(out, "        iterations: 50");
    let _ = writeln!(
        out,
        "        # Closed loop: workers back to back. Open loop: `{{ rate: 500/s, max_in_flight: 64 }}`."
    );
    let _ = writeln!(out, "        load: {{ concurrency: 1 }}");
    let _ = writeln!(out, "        # Conditions every run must meet; `phasebench run` exits 1 when one is missed.");
    let _ = writeln!(out, "        targets: [ \"errors == 0\" ]");
    let _ = writeln!(out);
    let _ = writeln!(out, "# An optimization to measure A/B against the workload as written:");
    let _ = writeln!(out, "# experiments:");
    let _ = writeln!(out, "#   - name: my-change");
    let _ = writeln!(out, "#     workload: {}", op.name);
    let _ = writeln!(out, "#     metric: latency.p50");
    let _ = writeln!(out, "#     variants:");
    let _ = writeln!(out, "#       changed: {{ engine: {{ OPTION: VALUE }} }}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_has_a_starter_that_validates() {
        for kind in registry() {
            let text = starter(kind.decl(), SCHEMA_BESIDE);
            let document = dsl::parse("starter.yaml", text.clone()).unwrap_or_else(|error| panic!("{error}\n{text}"));
            plan::build(&document, &plan::PlanOptions::default()).unwrap_or_else(|error| panic!("{error}\n{text}"));
        }
    }

    proptest::proptest! {
        /// `--for` reads whatever the editor has saved: any text gives
        /// instances or a refusal, never a panic.
        #[test]
        fn any_text_gives_instances_or_a_refusal(text in "(scenario: s\n)?(engines:)?[ -~\n]{0,120}") {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("s.yaml");
            std::fs::write(&file, &text).unwrap();
            let _ = instances(&file);
        }
    }

    #[test]
    fn instances_are_read_from_a_half_written_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(&file, "scenario: s\nengines:\n  a: { kind: vault }\n  b: {}\n  c: 3\nphases:\n  - name:\n")
            .unwrap();
        assert_eq!(instances(&file), Ok(("s".into(), vec![("a".into(), "vault".into())])));
    }

    #[test]
    fn scalars_that_yaml_would_misread_are_quoted() {
        assert_eq!(yaml_scalar("250us"), "250us");
        assert_eq!(yaml_scalar(""), "''");
        assert_eq!(yaml_scalar("a: b"), "'a: b'");
        assert_eq!(yaml_scalar("it's # x"), "'it''s # x'");
        assert_eq!(yaml_scalar("-> x"), "'-> x'");
    }
}
