//! Diagnostics: what went wrong in a scenario, where, and how to fix it.
//!
//! Every stage that reads user input reports through [`Diagnostic`], so the
//! command line prints one shape of error whatever found the mistake: the file,
//! line and column, the path inside the document, the offending text with a
//! caret under it, and a hint when one can be guessed.

use std::fmt;

/// A place in a scenario file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// 1-based line; 0 when the position is unknown.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// How many characters the caret should underline (at least 1).
    pub width: usize,
}

/// One mistake found in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it.
    pub file: String,
    /// Where in the file; `line == 0` when unknown.
    pub location: Location,
    /// The path inside the document, such as `phases[0].workloads[1].targets[0]`.
    pub path: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it, when a fix can be guessed.
    pub hint: Option<String>,
    /// The source line the location points into, for the caret display.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with no position yet.
    pub fn new(file: impl Into<String>, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            location: Location::default(),
            path: path.into(),
            message: message.into(),
            hint: None,
            source_line: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        let at = if self.location.line > 0 {
            format!("{}:{}:{}", self.file, self.location.line, self.location.column)
        } else {
            self.file.clone()
        };
        if self.path.is_empty() {
            writeln!(f, "  --> {at}")?;
        } else {
            writeln!(f, "  --> {at} (at `{}`)", self.path)?;
        }
        if let (Some(line), true) = (&self.source_line, self.location.line > 0) {
            let number = self.location.line.to_string();
            let pad = " ".repeat(number.len());
            let indent: String = line
                .chars()
                .take(self.location.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} |")?;
            writeln!(f, "{number} | {line}")?;
            writeln!(f, "{pad} | {indent}{}", "^".repeat(self.location.width.max(1)))?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "  = hint: {hint}")?;
        }
        Ok(())
    }
}

/// All the mistakes found in one pass over the input; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Wraps a single diagnostic.
    pub fn one(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        if self.0.len() > 1 {
            writeln!(f, "\n{} errors", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Closest candidate to a misspelt name, for "did you mean" hints.
pub fn did_you_mean<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let best = candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(wrong, candidate), candidate))
        .min_by_key(|(distance, _)| *distance)?;
    let limit = (wrong.chars().count() / 3).max(2);
    (best.0 <= limit).then(|| format!("did you mean `{}`?", best.1))
}

/// A hint listing what is allowed, with a "did you mean" first when one is close.
pub fn hint_from(wrong: &str, candidates: &[&str]) -> Option<String> {
    if let Some(close) = did_you_mean(wrong, candidates.iter().copied()) {
        return Some(close);
    }
    if candidates.is_empty() {
        None
    } else {
        let listed: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
        Some(format!("expected one of {}", listed.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("ttf", ["ttft", "itl", "e2e"]), Some("did you mean `ttft`?".into()));
        assert_eq!(did_you_mean("zzzzzz", ["ttft", "itl"]), None);
        assert_eq!(hint_from("zzzzzz", &["a", "b"]), Some("expected one of `a`, `b`".into()));
    }

    #[test]
    fn renders_caret_under_the_column() {
        let mut d = Diagnostic::new("s.yaml", "phases[0].name", "bad name");
        d.location = Location { line: 3, column: 5, width: 3 };
        d.source_line = Some("    foo: 1".into());
        d.hint = Some("try bar".into());
        let text = d.to_string();
        assert!(text.contains("s.yaml:3:5 (at `phases[0].name`)"), "{text}");
        assert!(text.contains("3 |     foo: 1\n  |     ^^^"), "{text}");
        assert!(text.contains("= hint: try bar"), "{text}");
    }
}
