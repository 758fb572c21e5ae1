//! The layering ARCHITECTURE.md states, enforced: every module of the
//! library names only the modules its row of the `layers` table allows, and
//! only the stages that read scenario text name a parser.
//!
//! The check reads the source, not the compiled crate: it resolves every
//! `crate::` path (grouped `use crate::{a, b::c}` included) and every
//! `super::` path that climbs out of a top-level module, in code outside
//! comments. Each rule is also shown to catch a file that breaks it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The `layers` block of ARCHITECTURE.md: module → modules it may use.
fn layers() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let block = text.split("```layers\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a ```layers block");
    let mut layers = BTreeMap::new();
    for line in block.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
        let (module, allowed) = line.split_once(':').unwrap_or_else(|| panic!("`{line}`: expected `module: uses…`"));
        let allowed = allowed.split_whitespace().filter(|word| *word != "-").map(str::to_owned).collect();
        assert!(layers.insert(module.trim().to_owned(), allowed).is_none(), "`{module}` appears twice");
    }
    layers
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The library's source files with their module path (`src/plan/lower/mod.rs` → `plan::lower`).
fn library_files() -> Vec<(Vec<String>, PathBuf)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path);
            }
        }
    }
    let src = root().join("src");
    let mut paths = Vec::new();
    walk(&src, &mut paths);
    let mut files: Vec<_> = paths
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&src).ok()?.with_extension("");
            let mut module: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
            if module.last().is_some_and(|last| last == "mod") {
                module.pop();
            }
            // The binary (main.rs, cli/) may use every module; lib.rs only declares them.
            let binary = matches!(module[0].as_str(), "main" | "lib" | "cli");
            (!binary).then_some((module, path))
        })
        .collect();
    files.sort();
    files
}

/// Source without comments (doc links to later stages are not dependencies).
fn code_of(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn identifier_at(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// The top-level modules `code`, in module `module`, names.
fn modules_named(module: &[String], code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::b, c}`: the heads at the group's top level.
            let mut depth = 0;
            let mut head_next = true;
            for (index, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => head_next = true,
                    c if head_next && (c.is_alphanumeric() || c == '_') => {
                        named.insert(identifier_at(&group[index..]).to_owned());
                        head_next = false;
                    }
                    _ => {}
                }
            }
        } else {
            named.insert(identifier_at(rest).to_owned());
        }
    }
    // `super::` chains that climb to the crate's root from this file.
    for (at, _) in code.match_indices("super::") {
        if at >= "super::".len() && code[..at].ends_with("super::") {
            continue;
        }
        let mut rest = &code[at..];
        let mut climbs = 0;
        while let Some(next) = rest.strip_prefix("super::") {
            climbs += 1;
            rest = next;
        }
        if climbs >= module.len() {
            named.insert(identifier_at(rest).to_owned());
        }
    }
    named.retain(|name| known.contains(name) && name != &module[0]);
    named
}

/// Every way `module`'s code breaks the layering.
fn violations(
    module: &[String],
    code: &str,
    layers: &BTreeMap<String, BTreeSet<String>>,
    parsers_allowed: &[&str],
) -> Vec<String> {
    let known: BTreeSet<String> = layers.keys().cloned().collect();
    let Some(allowed) = layers.get(&module[0]) else {
        return vec![format!("module `{}` has no row in the layers table", module[0])];
    };
    let mut found: Vec<String> = modules_named(module, code, &known)
        .into_iter()
        .filter(|name| !allowed.contains(name))
        .map(|name| format!("uses `{name}`, which its layer may not"))
        .collect();
    let path = module.join("::");
    let may_parse = parsers_allowed.iter().any(|allowed| path == *allowed || path.starts_with(&format!("{allowed}::")));
    for parser in ["parse_comparison", "parse_expr", "dsl::"] {
        if !may_parse && code.contains(parser) {
            found.push(format!("names the parser `{parser}`: only the stages up to `plan` read scenario text"));
        }
    }
    found
}

/// The modules that read scenario text: the language, the expression
/// grammar, the planner, and the results file's decoding of the
/// expressions it keeps.
const PARSERS_ALLOWED: &[&str] = &["dsl", "expr", "plan", "results::notation"];

#[test]
fn no_module_uses_a_later_stage_or_parses_after_plan() {
    let layers = layers();
    let files = library_files();
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut broken = Vec::new();
    for (module, path) in &files {
        let code = code_of(&std::fs::read_to_string(path).expect("source"));
        for violation in violations(module, &code, &layers, PARSERS_ALLOWED) {
            broken.push(format!("{}: {violation}", path.strip_prefix(root()).unwrap_or(path).display()));
        }
    }
    assert!(broken.is_empty(), "the layering in ARCHITECTURE.md is broken:\n{}", broken.join("\n"));
}

#[test]
fn every_layer_uses_only_earlier_ones() {
    // The table is an order: no row names a module listed after it.
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let block = text.split("```layers\n").nth(1).and_then(|rest| rest.split("```").next()).expect("layers block");
    let order: Vec<&str> = block
        .lines()
        .filter_map(|line| line.split_once(':').map(|(module, _)| module.trim()))
        .filter(|module| !module.starts_with('#'))
        .collect();
    for (module, allowed) in layers() {
        let position = order.iter().position(|m| *m == module).expect("listed");
        for used in &allowed {
            let used_at = order.iter().position(|m| m == used).unwrap_or_else(|| panic!("`{used}` has no row"));
            assert!(used_at < position, "`{module}` may use `{used}`, which comes after it");
        }
    }
}

#[test]
fn the_check_catches_a_broken_layering() {
    let layers = layers();
    let analysis = |file: &[&str]| file.iter().map(|part| part.to_string()).collect::<Vec<_>>();
    let cases: [(&[&str], &str, &str); 6] = [
        (&["analysis", "roadmap"], "use crate::plan::Risk;", "uses `plan`"),
        (&["analysis", "roadmap"], "use crate::{quantity::Dim, run::execute_plan};", "uses `run`"),
        (&["analysis"], "fn f() -> crate::report::Format { todo!() }", "uses `report`"),
        (&["results", "store"], "use super::super::analysis::Analysis;", "uses `analysis`"),
        (&["analysis", "targets"], "let c = expr::parse_comparison(text);", "names the parser `parse_comparison`"),
        (&["report"], "use crate::dsl::load;", "uses `dsl`"),
    ];
    for (module, code, expected) in cases {
        let found = violations(&analysis(module), code, &layers, PARSERS_ALLOWED);
        assert!(found.iter().any(|v| v.contains(expected)), "`{code}` in {module:?} not caught: {found:?}");
    }
    // What is allowed passes, and comments are not code.
    let fine = code_of("use crate::results::{Results, RunRecord};\n/// See [`crate::report`].\nuse super::stats;");
    assert_eq!(
        violations(&analysis(&["analysis", "experiments"]), &fine, &layers, PARSERS_ALLOWED),
        Vec::<String>::new()
    );
}
