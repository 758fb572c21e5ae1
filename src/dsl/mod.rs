//! The scenario language: YAML documents and the expressions inside them.
//!
//! [`load`] turns a file into a [`Document`]: the raw serde structs
//! ([`raw`]), the position of every node ([`spans`]) and the file's hash.
//! Quantities with units live in [`crate::quantity`], metric expressions and targets
//! in [`crate::expr`]. This stage checks syntax and shape only; meaning (engines,
//! metrics, units against declarations) is checked by the plan.

pub mod raw;
pub mod spans;

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::diagnostic::{hint_from, Diagnostic, Diagnostics, Location};
pub use raw::{RawScenario, Scalar};
pub use spans::SpanIndex;

/// A parsed scenario file with the positions of its nodes.
#[derive(Debug)]
pub struct Document {
    /// The scenario as written.
    pub raw: RawScenario,
    /// Node positions for diagnostics.
    pub spans: SpanIndex,
    /// The source text.
    pub source: String,
    /// The file as the user named it.
    pub file: String,
    /// SHA-256 of the source, hex.
    pub sha256: String,
}

/// Reads and parses a scenario file.
pub fn load(path: &Path) -> Result<Document, Diagnostics> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|error| {
        Diagnostics::one(
            Diagnostic::new(&file, "", format!("cannot read the scenario: {error}"))
                .with_hint(Some("check the path and that the file is UTF-8 text".into())),
        )
    })?;
    parse(&file, source)
}

/// Parses scenario text; `file` names it in diagnostics.
pub fn parse(file: &str, source: String) -> Result<Document, Diagnostics> {
    let spans = SpanIndex::build(file, &source);
    if source.trim().is_empty() {
        return Err(Diagnostics::one(
            Diagnostic::new(file, "", "the scenario file is empty")
                .with_hint(Some("start with `scenario: NAME` and a list of `phases:`".into())),
        ));
    }
    let deserializer = serde_yaml::Deserializer::from_str(&source);
    let raw: RawScenario = serde_path_to_error::deserialize(deserializer)
        .map_err(|error| Diagnostics::one(serde_diagnostic(&spans, &error)))?;
    let sha256 = format!("{:x}", Sha256::digest(source.as_bytes()));
    Ok(Document { raw, spans, source, file: file.to_owned(), sha256 })
}

/// Turns a serde_yaml error into a located diagnostic with a hint.
fn serde_diagnostic(spans: &SpanIndex, error: &serde_path_to_error::Error<serde_yaml::Error>) -> Diagnostic {
    let path = error.path().to_string();
    // serde_path_to_error writes `?` for a map key it could not read and `.`
    // for the root; neither names a node, so they are dropped.
    let mut path = if path == "." { String::new() } else { path };
    while path == "?" || path.ends_with(".?") {
        path.truncate(path.len().saturating_sub(2));
    }
    let inner = error.inner();
    let raw_message = inner.to_string();
    // serde_yaml appends " at line L column C"; the location is shown separately.
    let message = match raw_message.find(" at line ") {
        Some(cut) => raw_message[..cut].to_owned(),
        None => raw_message.clone(),
    };
    // serde_yaml also starts some messages with the path, which is shown separately.
    let message = match message.strip_prefix(&format!("{path}: ")) {
        Some(rest) if !path.is_empty() => rest.to_owned(),
        _ => message,
    };
    let location = match inner.location() {
        Some(at) => Location { line: at.line(), column: at.column(), width: 1 },
        None => spans.value(&path),
    };
    let mut diagnostic = spans.diagnostic(&path, location, message.clone());
    diagnostic.hint = hint_for_serde_message(&message);
    // serde names the mapping that lacks the field; the path of the field
    // itself says what to add and where.
    if let Some(missing) = quoted_after(&message, "missing field `") {
        diagnostic.path = if path.is_empty() { missing.to_owned() } else { format!("{path}.{missing}") };
    }
    if let Some(unknown) = quoted_after(&message, "unknown field `") {
        diagnostic.location.width = unknown.chars().count().max(1);
        diagnostic.message = format!("unknown key `{unknown}`");
    }
    diagnostic
}

/// Hints for the messages serde produces.
fn hint_for_serde_message(message: &str) -> Option<String> {
    if let Some(unknown) = quoted_after(message, "unknown field `") {
        let expected: Vec<&str> = match message.find("expected one of ") {
            Some(at) => message[at..].split('`').skip(1).step_by(2).collect(),
            None => match message.find("expected `") {
                Some(at) => message[at..].split('`').skip(1).step_by(2).collect(),
                None => Vec::new(),
            },
        };
        return hint_from(unknown, &expected);
    }
    if let Some(missing) = quoted_after(message, "missing field `") {
        return Some(format!("add `{missing}:`"));
    }
    if message.contains("invalid type") {
        return Some("check the value's type against the scenario reference in README.md".into());
    }
    if message.contains("expected ',' or '}'") {
        return Some("a `{ … }` mapping is not closed, or its entries lack a `,` between them".into());
    }
    if message.contains("expected ',' or ']'") {
        return Some("a `[ … ]` list is not closed, or its items lack a `,` between them".into());
    }
    if message.contains("unexpected end of stream") {
        return Some("a quote, `[` or `{` is not closed before the end of the file".into());
    }
    if message.contains("tab character") {
        return Some("indent with spaces; YAML does not allow tabs in indentation".into());
    }
    if message.contains("did not find expected") || message.contains("mapping values are not allowed") {
        return Some("check indentation and that `key: value` pairs and `- item` lists line up".into());
    }
    // Every diagnostic carries a hint; this is the last resort for YAML
    // errors not recognised above.
    Some("check the YAML syntax at this position; README.md describes the scenario format".into())
}

fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let start = message.find(prefix)? + prefix.len();
    let rest = &message[start..];
    rest.find('`').map(|end| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(source: &str) -> Diagnostic {
        parse("t.yaml", source.to_owned()).unwrap_err().0.remove(0)
    }

    #[test]
    fn unknown_key_points_at_the_key_with_a_suggestion() {
        let d = error_of("scenario: s\nphases:\n  - name: p\n    workloads:\n      - name: w\n        engine: e\n        op: noop\n        iteratons: 5\n");
        assert_eq!(d.message, "unknown key `iteratons`");
        assert_eq!(d.path, "phases[0].workloads[0].iteratons");
        assert_eq!((d.location.line, d.location.column), (8, 9));
        assert_eq!(d.hint.as_deref(), Some("did you mean `iterations`?"));
    }

    #[test]
    fn wrong_type_names_the_path() {
        let d = error_of("scenario: s\nphases: 3\n");
        assert_eq!(d.path, "phases");
        assert!(d.message.contains("invalid type"), "{}", d.message);
        assert_eq!(d.location.line, 2);
    }

    #[test]
    fn syntax_error_has_a_position() {
        let d = error_of("scenario: s\nphases:\n  - name: [unclosed\n");
        assert!(d.location.line >= 3, "{d:?}");
    }
}
