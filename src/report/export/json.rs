//! JSON: the analysis itself, the data model the templates receive.

use crate::analysis::Analysis;

/// The analysis as pretty JSON.
pub fn json(analysis: &Analysis) -> String {
    serde_json::to_string_pretty(analysis).unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
}
