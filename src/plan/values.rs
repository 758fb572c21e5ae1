//! Checking one scalar against a declared type, giving a typed [`Value`].

use std::time::Duration;

use crate::diagnostic::hint_from;
use crate::dsl::Scalar;
use crate::engines::{Value, ValueType};
use crate::plan::Arrival;
use crate::quantity::{parse_quantity, Dim, Quantity};

/// Why a scalar does not fit its type; `start..end` locates the problem in its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueError {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// Byte range inside the scalar's text, when known.
    pub range: Option<(usize, usize)>,
}

impl ValueError {
    fn new(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        ValueError { message: message.into(), hint: hint.into(), range: None }
    }
}

/// Parses `scalar` as `ty`.
pub fn parse_value(scalar: &Scalar, ty: ValueType) -> Result<Value, ValueError> {
    match ty {
        ValueType::Duration => Ok(Value::Duration(duration(scalar)?)),
        ValueType::Size => size(scalar).map(Value::Bytes),
        ValueType::Count { min, max } => {
            let n = count(scalar)?;
            if n < min || n > max {
                return Err(ValueError::new(format!("{n} is out of range"), Some(ty.describe())));
            }
            Ok(Value::Count(n))
        }
        ValueType::Number { min, max } => {
            let x = number(scalar)?;
            if !(min..=max).contains(&x) {
                return Err(ValueError::new(format!("{x} is out of range"), Some(ty.describe())));
            }
            Ok(Value::Number(x))
        }
        ValueType::Bool => match scalar {
            Scalar::Bool(b) => Ok(Value::Bool(*b)),
            Scalar::Text(t) if matches!(t.as_str(), "on" | "yes" | "true") => Ok(Value::Bool(true)),
            Scalar::Text(t) if matches!(t.as_str(), "off" | "no" | "false") => Ok(Value::Bool(false)),
            other => Err(ValueError::new(format!("`{other}` is not a boolean"), Some("write true or false".into()))),
        },
        ValueType::Choice(choices) => {
            let text = scalar.to_string();
            if choices.contains(&text.as_str()) {
                Ok(Value::Text(text))
            } else {
                Err(ValueError::new(format!("`{text}` is not one of the choices"), hint_from(&text, choices)))
            }
        }
        ValueType::Text => Ok(Value::Text(scalar.to_string())),
        ValueType::Steps => Ok(Value::Text(scalar.to_string().trim().to_string())),
        ValueType::Rate => rate(scalar).map(Value::Rate),
    }
}

/// A positive or zero duration with a unit.
pub fn duration(scalar: &Scalar) -> Result<Duration, ValueError> {
    let quantity = quantity(scalar, Dim::TIME, "a duration", "250us, 10ms or 2s")?;
    let seconds = quantity.base_value();
    if seconds < 0.0 {
        return Err(ValueError::new(format!("`{scalar}` is negative"), Some("durations are zero or more".into())));
    }
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| ValueError::new(format!("`{scalar}` is too long"), Some("use a duration under a year".into())))
}

/// A whole count: `5`, `5x`.
pub fn count(scalar: &Scalar) -> Result<u64, ValueError> {
    let value = match scalar {
        Scalar::Int(n) => *n as f64,
        Scalar::Float(x) => *x,
        Scalar::Text(_) => quantity(scalar, Dim::NONE, "a count", "5 or 5x")?.base_value(),
        Scalar::Bool(_) => {
            return Err(ValueError::new(
                format!("`{scalar}` is not a count"),
                Some("write a whole number such as 5".into()),
            ))
        }
    };
    if value < 0.0 || value.fract() != 0.0 || value > u64::MAX as f64 {
        return Err(ValueError::new(
            format!("`{scalar}` is not a whole number of zero or more"),
            Some("write a whole number such as 5".into()),
        ));
    }
    Ok(value as u64)
}

fn number(scalar: &Scalar) -> Result<f64, ValueError> {
    match scalar {
        Scalar::Int(n) => Ok(*n as f64),
        Scalar::Float(x) => Ok(*x),
        Scalar::Text(_) => Ok(quantity(scalar, Dim::NONE, "a number", "0.5 or 50%")?.base_value()),
        Scalar::Bool(_) => Err(ValueError::new(format!("`{scalar}` is not a number"), None)),
    }
}

fn size(scalar: &Scalar) -> Result<u64, ValueError> {
    let bytes = match scalar {
        Scalar::Int(n) => *n as f64,
        _ => quantity(scalar, Dim::BYTES, "a size", "4KiB or 64MiB")?.base_value(),
    };
    if bytes < 0.0 || !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(ValueError::new(
            format!("`{scalar}` is not a size"),
            Some("sizes are zero or more, such as 4KiB".into()),
        ));
    }
    Ok(bytes.round() as u64)
}

/// Most burstiness `gamma(B)` takes (above it the gaps are even to within 3%).
pub const MAX_BURSTINESS: f64 = 1000.0;

/// An open loop's arrival process: `constant`, `poisson` or `gamma(B)` with
/// `0 < B <= MAX_BURSTINESS`.
pub fn arrival(scalar: &Scalar) -> Result<Arrival, ValueError> {
    let text = scalar.to_string();
    let text = text.trim();
    let refuse = |message: String| {
        ValueError::new(
            message,
            Some("write `constant`, `poisson` or `gamma(B)` with a burstiness B such as 0.5".into()),
        )
    };
    match text {
        "constant" => return Ok(Arrival::Constant),
        "poisson" => return Ok(Arrival::Poisson),
        _ => {}
    }
    let Some(inner) = text.strip_prefix("gamma(").and_then(|rest| rest.strip_suffix(')')) else {
        return Err(refuse(format!("`{text}` is not an arrival process")));
    };
    match inner.trim().parse::<f64>() {
        Ok(burstiness) if burstiness > 0.0 && burstiness <= MAX_BURSTINESS => Ok(Arrival::Gamma { burstiness }),
        _ => Err(refuse(format!("`{inner}` is not a burstiness above 0 and at most {MAX_BURSTINESS}"))),
    }
}

/// The slowest open-loop rate: one operation a day. Slower schedules are
/// not benchmarks, and their intervals would not fit a `Duration` for long.
pub const MIN_RATE: f64 = 1.0 / 86_400.0;

/// Operations per second (`2000/s`, or a plain number), at least [`MIN_RATE`].
pub fn rate(scalar: &Scalar) -> Result<f64, ValueError> {
    let per_second = match scalar {
        Scalar::Int(n) => *n as f64,
        Scalar::Float(x) => *x,
        _ => quantity(scalar, Dim::PER_TIME, "a rate", "2000/s")?.base_value(),
    };
    if per_second <= 0.0 || !per_second.is_finite() {
        return Err(ValueError::new(
            format!("`{scalar}` is not a positive rate"),
            Some("write a rate such as 2000/s".into()),
        ));
    }
    if per_second < MIN_RATE {
        return Err(ValueError::new(
            format!("`{scalar}` is less than one operation a day"),
            Some("write a rate of at least 1/day (0.0000116/s), such as 2000/s".into()),
        ));
    }
    Ok(per_second)
}

/// A bound in dimension `dim`, in base units (`200ms` is 0.2); `what` names
/// it in errors. Zero is allowed (an SLO of no errors), negative is not.
pub fn bound(scalar: &Scalar, dim: Dim, what: &str) -> Result<f64, ValueError> {
    let value = match scalar {
        Scalar::Int(n) if dim == Dim::NONE => *n as f64,
        Scalar::Float(x) if dim == Dim::NONE => *x,
        _ => quantity(scalar, dim, what, &example_of(dim))?.base_value(),
    };
    if value < 0.0 || !value.is_finite() {
        return Err(ValueError::new(format!("`{scalar}` is negative; {what} cannot be"), None));
    }
    Ok(value)
}

/// A value of dimension `dim` to show in a hint.
fn example_of(dim: Dim) -> String {
    match dim {
        Dim::TIME => "200ms".into(),
        Dim::BYTES => "4KiB".into(),
        Dim::PER_TIME => "100/s".into(),
        Dim::NONE => "0.5".into(),
        other => crate::quantity::format_value(1.0, other),
    }
}

/// A quantity of dimension `dim`; unitless numbers are accepted only for dimensionless types.
fn quantity(scalar: &Scalar, dim: Dim, what: &str, example: &str) -> Result<Quantity, ValueError> {
    let text = scalar.to_string();
    let quantity = parse_quantity(&text).map_err(|error| ValueError {
        message: format!("`{text}` is not {what}: {}", error.message),
        hint: error.hint.or_else(|| Some(format!("write {what} such as {example}"))),
        range: Some((error.offset, error.offset + error.len)),
    })?;
    if quantity.dim() != dim {
        let found = if quantity.unit.is_none() { "a plain number".to_owned() } else { quantity.dim().describe() };
        return Err(ValueError::new(
            format!("`{text}` is {found}, but {what} is expected here"),
            Some(format!("write {what} such as {example}")),
        ));
    }
    Ok(quantity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Scalar {
        Scalar::Text(s.into())
    }

    #[test]
    fn parses_each_type() {
        let ok = [
            (text("2ms"), ValueType::Duration, Value::Duration(Duration::from_millis(2))),
            (text("4KiB"), ValueType::Size, Value::Bytes(4096)),
            (Scalar::Int(512), ValueType::Size, Value::Bytes(512)),
            (text("5x"), ValueType::Count { min: 0, max: 10 }, Value::Count(5)),
            (Scalar::Int(5), ValueType::Count { min: 0, max: 10 }, Value::Count(5)),
            (text("50%"), ValueType::Number { min: 0.0, max: 1.0 }, Value::Number(0.5)),
            (text("on"), ValueType::Bool, Value::Bool(true)),
            (text("flash"), ValueType::Choice(&["naive", "flash"]), Value::Text("flash".into())),
            (text("2000/s"), ValueType::Rate, Value::Rate(2000.0)),
        ];
        for (scalar, ty, expected) in ok {
            assert_eq!(parse_value(&scalar, ty).unwrap(), expected, "{scalar}");
        }
    }

    #[test]
    fn rejects_mismatches_with_a_hint() {
        let bad = [
            (text("4KiB"), ValueType::Duration),
            (Scalar::Int(5), ValueType::Duration),
            (text("-1s"), ValueType::Duration),
            (text("2.5x"), ValueType::Count { min: 0, max: 10 }),
            (Scalar::Int(11), ValueType::Count { min: 0, max: 10 }),
            (text("flsh"), ValueType::Choice(&["naive", "flash"])),
            (text("0/s"), ValueType::Rate),
            (text("5ms"), ValueType::Rate),
            (text("maybe"), ValueType::Bool),
        ];
        for (scalar, ty) in bad {
            let error = parse_value(&scalar, ty).unwrap_err();
            assert!(error.hint.is_some(), "{scalar}: {error:?}");
        }
        let choice = parse_value(&text("flsh"), ValueType::Choice(&["naive", "flash"])).unwrap_err();
        assert_eq!(choice.hint.as_deref(), Some("did you mean `flash`?"));
    }
}
