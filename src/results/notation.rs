//! Expressions as a results file holds them: the text the scenario gave
//! (after variable substitution), and the tree that text stands for.
//!
//! The plan parsed and checked every target and experiment metric before a
//! run began; a results file keeps them in the expression language's own
//! notation, so a person can read the file. Reading the file back rebuilds
//! the tree here, once, the way a duration or a date is decoded from its
//! text, so `analysis` receives typed expressions and parses nothing. A
//! text that no longer parses (a hand-edited file, a grammar that changed)
//! is kept with its error, and the figure that needs it is reported as
//! unknown instead of refusing the whole file.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::expr::{self, Comparison, Expr, MetricRef};

/// A value written in the expression language, with the text it was written as.
#[derive(Clone, Debug, PartialEq)]
pub struct Written<T> {
    /// The text, as the scenario gave it.
    pub text: String,
    /// The tree, or why the text does not give one.
    pub parsed: Result<T, String>,
}

/// A target as a results file holds it: `ttft.p99 < 100ms`.
pub type TargetRecord = Written<Comparison>;

/// A metric reference as a results file holds it: `ttft.p99`.
pub type MetricRefRecord = Written<MetricRef>;

/// How a value is read from its notation.
pub trait Notation: Sized {
    /// The value `text` stands for, or why it stands for none.
    fn read(text: &str) -> Result<Self, String>;
}

impl Notation for Comparison {
    fn read(text: &str) -> Result<Self, String> {
        expr::parse_comparison(text).map_err(|error| format!("target does not parse: {}", error.message))
    }
}

impl Notation for MetricRef {
    fn read(text: &str) -> Result<Self, String> {
        match expr::parse_expr(text) {
            Ok(Expr::Metric(metric, _)) => Ok(metric),
            Ok(_) => Err(format!("`{text}` is not a metric")),
            Err(error) => Err(format!("metric does not parse: {}", error.message)),
        }
    }
}

impl<T: Notation> Written<T> {
    /// Reads `text`.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let parsed = T::read(&text);
        Written { text, parsed }
    }
}

impl<T> Written<T> {
    /// A value whose tree is already known (the plan checked it).
    pub fn checked(text: impl Into<String>, value: T) -> Self {
        Written { text: text.into(), parsed: Ok(value) }
    }
}

impl<T> fmt::Display for Written<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<T> Serialize for Written<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de, T: Notation> Deserialize<'de> for Written<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Written::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_round_trips_through_its_text() {
        let target = TargetRecord::new("ttft.p99 < 100ms");
        let json = serde_json::to_string(&target).unwrap();
        assert_eq!(json, "\"ttft.p99 < 100ms\"");
        let back: TargetRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.text, "ttft.p99 < 100ms");
        assert_eq!(back.parsed.unwrap().to_string(), "ttft.p99 < 100ms");
    }

    #[test]
    fn text_that_does_not_parse_is_kept_with_its_error() {
        let target: TargetRecord = serde_json::from_str("\"ttft.p99 <\"").unwrap();
        assert_eq!(target.text, "ttft.p99 <");
        assert!(target.parsed.unwrap_err().starts_with("target does not parse: "));
        let metric: MetricRefRecord = serde_json::from_str("\"2 * ttft\"").unwrap();
        assert_eq!(metric.parsed.unwrap_err(), "`2 * ttft` is not a metric");
        let metric: MetricRefRecord = serde_json::from_str("\"ttft.p99\"").unwrap();
        assert_eq!(metric.parsed.unwrap().to_string(), "ttft.p99");
    }
}
