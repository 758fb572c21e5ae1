//! Given values checked against declarations, defaults filled in.
//!
//! Engine options, operation parameters and workflow steps' parameters all go
//! through `check_params`: an unknown name is refused with a did-you-mean
//! hint, a value must parse as its declared type, and a missing value without
//! a default is reported at the container that should hold it (or at the key
//! that asked for it). `invalid` places an engine's own objection to checked
//! values at the value it names.

use super::{Located, Lowering};
use crate::diagnostic::hint_from;
use crate::dsl::Scalar;
use crate::engines::{self, OptionDecl, Params};
use crate::plan::values::parse_value;

impl Lowering<'_> {
    /// Reports an engine's own objection at the value it names, or at
    /// `fallback` when that value was left to its default.
    pub(super) fn invalid(&mut self, invalid: engines::Invalid, given: &Located, fallback: &str) {
        match given.get(invalid.key) {
            Some((_, path)) => self.at_value(path, invalid.message, invalid.hint),
            None => self.at_value(fallback, format!("`{}`: {}", invalid.key, invalid.message), invalid.hint),
        }
    }

    /// Checks given values against declarations and fills defaults.
    ///
    /// A missing value is reported at `container` (such as `with:`) when it is
    /// written, else at `anchor`, the key that asked for the values (such as `op:`).
    pub(super) fn check_params(
        &mut self,
        decls: &'static [OptionDecl],
        given: &Located,
        (container, anchor): (&str, &str),
        owner: &str,
        noun: &str,
    ) -> Option<Params> {
        let missing_at = if self.doc.spans.contains(container) { container } else { anchor };
        let mut ok = true;
        for (key, (_, value_path)) in given {
            if !decls.iter().any(|decl| decl.name == key) {
                let names: Vec<&str> = decls.iter().map(|decl| decl.name).collect();
                let hint =
                    if names.is_empty() { Some(format!("{owner} takes no {noun}s")) } else { hint_from(key, &names) };
                self.at_key(value_path, format!("unknown {noun} `{key}` for {owner}"), hint);
                ok = false;
            }
        }
        let mut params = Params::default();
        for decl in decls {
            let parsed = match given.get(decl.name) {
                Some((scalar, value_path)) => match parse_value(scalar, decl.ty) {
                    Ok(value) => value,
                    Err(mut error) => {
                        error.message = format!("{noun} `{}`: {}", decl.name, error.message);
                        self.value_error(value_path, scalar, error);
                        ok = false;
                        continue;
                    }
                },
                None => match decl.default {
                    Some(default) => match parse_value(&Scalar::Text(default.into()), decl.ty) {
                        Ok(value) => value,
                        Err(error) => {
                            self.at_value(
                                container,
                                format!("built-in default of `{}` does not parse: {}", decl.name, error.message),
                                None,
                            );
                            ok = false;
                            continue;
                        }
                    },
                    None => {
                        // Without the container (`with:`) the fix must add it too.
                        let entry = match container.rsplit('.').next() {
                            Some(key) if missing_at != container => format!("{key}: {{ {}: … }}", decl.name),
                            _ => format!("{}: …", decl.name),
                        };
                        self.at_value(
                            missing_at,
                            format!("{owner} needs the {noun} `{}`", decl.name),
                            Some(format!("add `{entry}`; it takes a {}", decl.ty.describe())),
                        );
                        ok = false;
                        continue;
                    }
                },
            };
            params.0.insert(decl.name.to_owned(), parsed);
        }
        ok.then_some(params)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::engines::Value;
    use crate::plan::lower::tests::{at, error_of, plan_of, workload};

    #[test]
    fn given_parameters_are_typed_and_the_rest_defaulted() {
        let plan = plan_of(&workload(&["engine: cal", "op: hold", "with: { bytes: 4KiB }"]));
        let params: Vec<(&str, &Value)> = plan.runs[0].params.0.iter().map(|(k, v)| (k.as_str(), v)).collect();
        assert_eq!(params, [("bytes", &Value::Bytes(4096)), ("keep", &Value::Bytes(0))]);
        let plan = plan_of(&workload(&["engine: cal", "op: sleep", "with: { duration: 250us }"]));
        assert_eq!(plan.runs[0].params.get("duration"), Some(&Value::Duration(Duration::from_micros(250))));
    }

    #[test]
    fn a_missing_parameter_is_reported_at_with_when_written_else_at_op() {
        // Without `with:` the hint writes it too, and the mistake points at `op:`.
        let diagnostic = error_of(&workload(&["engine: cal", "op: sleep"]));
        assert_eq!(diagnostic.message, "operation `calibrate.sleep` needs the parameter `duration`");
        assert_eq!((diagnostic.path.as_str(), at(&diagnostic)), ("phases[0].workloads[0].op", (9, 13)));
        assert_eq!(
            diagnostic.hint.as_deref(),
            Some("add `with: { duration: … }`; it takes a duration (e.g. 250us, 2s)")
        );

        let diagnostic = error_of(&workload(&["engine: cal", "op: sleep", "with: {}"]));
        assert_eq!((diagnostic.path.as_str(), at(&diagnostic)), ("phases[0].workloads[0].with", (10, 15)));
        assert_eq!(diagnostic.hint.as_deref(), Some("add `duration: …`; it takes a duration (e.g. 250us, 2s)"));
    }

    #[test]
    fn a_parameter_to_an_operation_that_takes_none_is_refused() {
        let diagnostic = error_of(&workload(&["engine: cal", "op: noop", "with: { duration: 1ms }"]));
        assert_eq!(diagnostic.message, "unknown parameter `duration` for operation `calibrate.noop`");
        assert_eq!(diagnostic.path, "phases[0].workloads[0].with.duration");
        assert_eq!(at(&diagnostic), (10, 17));
        assert_eq!(diagnostic.hint.as_deref(), Some("operation `calibrate.noop` takes no parameters"));
    }

    #[test]
    fn a_value_of_the_wrong_dimension_is_named_with_its_parameter() {
        let diagnostic = error_of(&workload(&["engine: cal", "op: sleep", "with: { duration: 4KiB }"]));
        assert!(
            diagnostic.message.starts_with("parameter `duration`: ")
                && diagnostic.message.contains("is a size, but a duration is expected"),
            "{}",
            diagnostic.message
        );
        assert_eq!(at(&diagnostic), (10, 27));
    }
}
