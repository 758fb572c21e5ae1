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
