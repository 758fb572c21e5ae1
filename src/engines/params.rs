//! Resolved option and parameter values, as engines receive them.

use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Serialize, Serializer};

use super::EngineError;
use crate::quantity::{format_value, Dim};

/// A checked value of a declared type.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A duration.
    Duration(Duration),
    /// A size in bytes.
    Bytes(u64),
    /// A whole number.
    Count(u64),
    /// A real number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A word or free text.
    Text(String),
    /// Events per second.
    Rate(f64),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Duration(d) => f.write_str(&format_value(d.as_secs_f64(), Dim::TIME)),
            Value::Bytes(b) => write!(f, "{b}B"),
            Value::Count(n) => write!(f, "{n}"),
            Value::Number(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Text(t) => f.write_str(t),
            Value::Rate(r) => write!(f, "{r}/s"),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Duration(d) => serializer.serialize_str(&format!("{}ns", d.as_nanos())),
            Value::Count(n) => serializer.serialize_u64(*n),
            Value::Number(x) => serializer.serialize_f64(*x),
            Value::Bool(b) => serializer.serialize_bool(*b),
            other => serializer.serialize_str(&other.to_string()),
        }
    }
}

/// Named values for an engine instance or one operation, defaults filled in.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Params(pub IndexMap<String, Value>);

impl Params {
    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// A duration parameter.
    pub fn duration(&self, name: &str) -> Result<Duration, EngineError> {
        match self.get(name) {
            Some(Value::Duration(d)) => Ok(*d),
            other => Err(mistyped(name, "a duration", other)),
        }
    }

    /// A count parameter.
    pub fn count(&self, name: &str) -> Result<u64, EngineError> {
        match self.get(name) {
            Some(Value::Count(n)) => Ok(*n),
            other => Err(mistyped(name, "a count", other)),
        }
    }

    /// A size parameter in bytes.
    pub fn bytes(&self, name: &str) -> Result<u64, EngineError> {
        match self.get(name) {
            Some(Value::Bytes(n)) => Ok(*n),
            other => Err(mistyped(name, "a size", other)),
        }
    }

    /// A real-number parameter (a share such as `20%` is 0.2).
    pub fn number(&self, name: &str) -> Result<f64, EngineError> {
        match self.get(name) {
            Some(Value::Number(x)) => Ok(*x),
            other => Err(mistyped(name, "a number", other)),
        }
    }

    /// A boolean parameter.
    pub fn flag(&self, name: &str) -> Result<bool, EngineError> {
        match self.get(name) {
            Some(Value::Bool(b)) => Ok(*b),
            other => Err(mistyped(name, "true or false", other)),
        }
    }

    /// A text or choice parameter.
    pub fn text(&self, name: &str) -> Result<&str, EngineError> {
        match self.get(name) {
            Some(Value::Text(t)) => Ok(t),
            other => Err(mistyped(name, "text", other)),
        }
    }
}

fn mistyped(name: &str, wanted: &str, found: Option<&Value>) -> EngineError {
    match found {
        Some(value) => EngineError::new(format!("parameter `{name}` should be {wanted}, found `{value}`")),
        None => EngineError::new(format!("parameter `{name}` is missing")),
    }
}
