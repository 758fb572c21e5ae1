//! JSON: the analysis itself, the data model the templates receive.

use crate::analysis::Analysis;

use crate::report::format::FormatDecl;

/// `--format json`.
pub static FORMAT: FormatDecl = FormatDecl { name: "json", help: "The analysis as JSON (the data model templates receive)", render: |inputs| Ok(json(inputs.analysis)) };

/// The analysis as pretty JSON.
pub fn json(analysis: &Analysis) -> String {
    serde_json::to_string_pretty(analysis).unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
}
