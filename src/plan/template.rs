//! `${name}` substitution in scenario values.
//!
//! A value that is exactly one reference (`"${c}"`) takes the variable's own
//! value, number or text alike; a reference inside longer text is replaced by
//! the variable's text. Variables may refer to other variables; cycles are an
//! error.

use indexmap::IndexMap;

use crate::dsl::Scalar;

/// Longest text a substitution into longer text may produce. Variables built
/// from variables (`b: "${a}${a}"`, `c: "${b}${b}"`, …) double with every
/// step; the cap keeps validation from doubling its way to gigabytes.
pub const MAX_SUBSTITUTED_LEN: usize = 64 * 1024;
/// Most text resolving all of `vars` may add to what the file itself holds,
/// so that many variables each just under [`MAX_SUBSTITUTED_LEN`] cannot add
/// up to gigabytes either.
pub const MAX_VARS_GROWTH: usize = 1024 * 1024;

/// A failed substitution, located in the value's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte range of the offending reference.
    pub start: usize,
    /// End of that range.
    pub end: usize,
    /// What is wrong.
    pub message: String,
    /// Which names were in scope, or a close one.
    pub hint: Option<String>,
}

/// Variables visible to a value: name to resolved value.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    values: IndexMap<String, Scalar>,
    /// Variables whose own value failed to resolve; a use of one is reported
    /// as such rather than as an undefined name.
    broken: Vec<String>,
}

impl Scope {
    /// Resolves scenario `vars`, failing on the first mistake.
    #[cfg(test)]
    pub fn from_vars(vars: &IndexMap<String, Scalar>) -> Result<Scope, (String, TemplateError)> {
        let (scope, mut errors) = Scope::from_vars_partial(vars);
        if errors.is_empty() {
            Ok(scope)
        } else {
            Err(errors.swap_remove(0))
        }
    }

    /// Resolves scenario `vars` as far as possible: a scope with every
    /// variable that resolves, and the error of each one that does not (named
    /// by the variable whose value holds the mistake).
    pub fn from_vars_partial(vars: &IndexMap<String, Scalar>) -> (Scope, Vec<(String, TemplateError)>) {
        let mut scope = Scope::default();
        let mut errors = Vec::new();
        let mut grown = 0;
        for name in vars.keys() {
            let mut resolving = Vec::new();
            if let Err(error) = resolve_var(name, vars, &mut scope, &mut resolving, &mut grown) {
                // Every variable on the failed chain depends on the mistake.
                scope.broken.extend(resolving);
                errors.push(error);
            }
        }
        (scope, errors)
    }

    /// This scope with `name` bound to `value` (matrix values shadow vars).
    pub fn with(&self, name: &str, value: Scalar) -> Scope {
        let mut values = self.values.clone();
        values.insert(name.to_owned(), value);
        let broken = self.broken.iter().filter(|n| *n != name).cloned().collect();
        Scope { values, broken }
    }

    /// Names in scope, for hints.
    pub fn names(&self) -> Vec<&str> {
        self.values.keys().map(String::as_str).collect()
    }

    /// Substitutes every reference in `scalar`.
    pub fn substitute(&self, scalar: &Scalar) -> Result<Scalar, TemplateError> {
        match scalar {
            Scalar::Text(text) => self.substitute_text(text),
            other => Ok(other.clone()),
        }
    }

    /// Substitutes every reference in `text`.
    pub fn substitute_text(&self, text: &str) -> Result<Scalar, TemplateError> {
        let references = find_references(text)?;
        if let [(0, end, name)] = references.as_slice() {
            if *end == text.len() {
                return self.lookup(name, 0, *end).cloned();
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut cursor = 0;
        for (start, end, name) in references {
            out.push_str(&text[cursor..start]);
            out.push_str(&self.lookup(&name, start, end)?.to_string());
            check_length(&out, start, end)?;
            cursor = end;
        }
        out.push_str(&text[cursor..]);
        Ok(Scalar::Text(out))
    }

    /// Substitutes every reference in `text`, always giving text, and keeps
    /// track of where each substituted piece was written so that errors found
    /// in the result can be pointed at in the source.
    pub fn substitute_located(&self, text: &str) -> Result<Substituted, TemplateError> {
        let mut out = Substituted { text: String::with_capacity(text.len()), pieces: Vec::new() };
        let mut cursor = 0;
        for (start, end, name) in find_references(text)? {
            out.text.push_str(&text[cursor..start]);
            let from = out.text.len();
            out.text.push_str(&self.lookup(&name, start, end)?.to_string());
            check_length(&out.text, start, end)?;
            out.pieces.push(Piece { out: (from, out.text.len()), raw: (start, end) });
            cursor = end;
        }
        out.text.push_str(&text[cursor..]);
        Ok(out)
    }

    fn lookup(&self, name: &str, start: usize, end: usize) -> Result<&Scalar, TemplateError> {
        if self.broken.iter().any(|n| n == name) && !self.values.contains_key(name) {
            return Err(TemplateError {
                start,
                end,
                message: format!("variable `{name}` cannot be used: its own value is invalid"),
                hint: Some(format!("fix `vars.{name}` first")),
            });
        }
        self.values.get(name).ok_or_else(|| TemplateError {
            start,
            end,
            message: format!("undefined variable `{name}`"),
            hint: crate::diagnostic::did_you_mean(name, self.names()).or_else(|| {
                Some(if self.values.is_empty() {
                    "define it under `vars:` (or as a `matrix:` key of this workload)".into()
                } else {
                    format!("variables in scope here: {}", self.names().join(", "))
                })
            }),
        })
    }
}

/// Text after substitution, with the origin of every substituted reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Substituted {
    /// The substituted text.
    pub text: String,
    /// Substituted references in order.
    pieces: Vec<Piece>,
}

/// One substituted reference: its byte range in the output and in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    out: (usize, usize),
    raw: (usize, usize),
}

impl Substituted {
    /// Maps the byte range `start..end` of the substituted text to the source
    /// text. A range that touches a substituted value covers its whole
    /// `${name}`, since the value itself is not written there.
    pub fn raw_range(&self, start: usize, end: usize) -> (usize, usize) {
        let start = self.raw_offset(start, false);
        let end = self.raw_offset(end, true).max(start);
        (start, end)
    }

    fn raw_offset(&self, offset: usize, is_end: bool) -> usize {
        // Outside the pieces, source and output differ by the length changes
        // of the pieces before the offset.
        let mut shift: isize = 0;
        for piece in &self.pieces {
            let before = if is_end { offset <= piece.out.0 } else { offset < piece.out.0 };
            if before {
                break;
            }
            let inside = if is_end { offset <= piece.out.1 } else { offset < piece.out.1 };
            if inside {
                return if is_end { piece.raw.1 } else { piece.raw.0 };
            }
            shift = piece.raw.1 as isize - piece.out.1 as isize;
        }
        offset.checked_add_signed(shift).unwrap_or(offset)
    }
}

fn resolve_var(
    name: &str,
    vars: &IndexMap<String, Scalar>,
    scope: &mut Scope,
    resolving: &mut Vec<String>,
    grown: &mut usize,
) -> Result<(), (String, TemplateError)> {
    if scope.values.contains_key(name) || scope.broken.iter().any(|n| n == name) {
        return Ok(());
    }
    let Some(raw) = vars.get(name) else { return Ok(()) };
    if resolving.iter().any(|n| n == name) {
        let cycle = format!("{} -> {name}", resolving.join(" -> "));
        let error = TemplateError {
            start: 0,
            end: 0,
            message: format!("variables refer to each other in a cycle: {cycle}"),
            hint: Some("give one of them a plain value".into()),
        };
        return Err((name.to_owned(), error));
    }
    resolving.push(name.to_owned());
    if let Scalar::Text(text) = raw {
        for (start, end, reference) in find_references(text).map_err(|e| (name.to_owned(), e))? {
            // The reference that closes a cycle is the one to point at.
            if resolving.contains(&reference) {
                let cycle = format!("{} -> {reference}", resolving.join(" -> "));
                let error = TemplateError {
                    start,
                    end,
                    message: format!("variables refer to each other in a cycle: {cycle}"),
                    hint: Some("give one of them a plain value".into()),
                };
                return Err((name.to_owned(), error));
            }
            if vars.contains_key(&reference) {
                resolve_var(&reference, vars, scope, resolving, grown)?;
            } else {
                let mut error = scope.lookup(&reference, start, end).err().unwrap_or_else(|| TemplateError {
                    start,
                    end,
                    message: format!("undefined variable `{reference}`"),
                    hint: None,
                });
                error.hint = crate::diagnostic::did_you_mean(&reference, vars.keys().map(String::as_str))
                    .or_else(|| Some("variables may refer only to other `vars`".into()));
                return Err((name.to_owned(), error));
            }
        }
    }
    let value = scope.substitute(raw).map_err(|e| (name.to_owned(), e))?;
    if let (Scalar::Text(raw), Scalar::Text(value)) = (raw, &value) {
        *grown += value.len().saturating_sub(raw.len());
        if *grown > MAX_VARS_GROWTH {
            let error = TemplateError {
                start: 0,
                end: raw.len(),
                message: format!("`vars` expand to more than {} KiB of text", MAX_VARS_GROWTH / 1024),
                hint: Some("variables built from variables multiply; write long text out once instead".into()),
            };
            return Err((name.to_owned(), error));
        }
    }
    resolving.pop();
    scope.values.insert(name.to_owned(), value);
    Ok(())
}

/// Refuses substituted text past [`MAX_SUBSTITUTED_LEN`], at the reference
/// `start..end` that made it so.
fn check_length(out: &str, start: usize, end: usize) -> Result<(), TemplateError> {
    if out.len() <= MAX_SUBSTITUTED_LEN {
        return Ok(());
    }
    Err(TemplateError {
        start,
        end,
        message: format!("substituting this makes the text longer than {} KiB", MAX_SUBSTITUTED_LEN / 1024),
        hint: Some("variables built from variables multiply; write long text out once instead".into()),
    })
}

/// Every `${name}` in `text` as (start, end, name).
fn find_references(text: &str) -> Result<Vec<(usize, usize, String)>, TemplateError> {
    let mut found = Vec::new();
    let mut cursor = 0;
    while let Some(offset) = text[cursor..].find("${") {
        let start = cursor + offset;
        let Some(close) = text[start..].find('}') else {
            return Err(TemplateError {
                start,
                end: text.len(),
                message: "unclosed `${` in a variable reference".into(),
                hint: Some("write references as `${name}`".into()),
            });
        };
        let end = start + close + 1;
        let name = text[start + 2..end - 1].trim();
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(TemplateError {
                start,
                end,
                message: format!("`{}` is not a valid variable reference", &text[start..end]),
                hint: Some("names use letters, digits, `_` and `-`".into()),
            });
        }
        found.push((start, end, name.to_owned()));
        cursor = end;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, Scalar)]) -> IndexMap<String, Scalar> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn whole_reference_keeps_the_type_and_inner_reference_interpolates() {
        let scope = Scope::from_vars(&vars(&[("n", Scalar::Int(128)), ("unit", Scalar::Text("ms".into()))])).unwrap();
        let cases = [
            ("${n}", Scalar::Int(128)),
            ("${ n }", Scalar::Int(128)),
            ("${n}${unit}", Scalar::Text("128ms".into())),
            ("p < ${n}${unit}", Scalar::Text("p < 128ms".into())),
            ("plain", Scalar::Text("plain".into())),
        ];
        for (text, expected) in cases {
            assert_eq!(scope.substitute_text(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn errors_are_located() {
        let scope = Scope::from_vars(&vars(&[("prompt", Scalar::Int(1))])).unwrap();
        let error = scope.substitute_text("x ${promt} y").unwrap_err();
        assert_eq!((error.start, error.end), (2, 10));
        assert_eq!(error.hint.as_deref(), Some("did you mean `prompt`?"));
        assert!(scope.substitute_text("${unclosed").is_err());
        assert!(scope.substitute_text("${}").is_err());
    }

    #[test]
    fn vars_refer_to_vars_and_cycles_fail() {
        let scope = Scope::from_vars(&vars(&[("a", Scalar::Text("${b}ms".into())), ("b", Scalar::Int(5))])).unwrap();
        assert_eq!(scope.substitute_text("${a}").unwrap(), Scalar::Text("5ms".into()));
        let cycle = Scope::from_vars(&vars(&[("a", Scalar::Text("${b}".into())), ("b", Scalar::Text("${a}".into()))]));
        assert!(cycle.unwrap_err().1.message.contains("cycle"));
    }

    #[test]
    fn cycles_point_at_the_closing_reference() {
        let (name, error) =
            Scope::from_vars(&vars(&[("a", Scalar::Text("${b}".into())), ("b", Scalar::Text("x ${a}".into()))]))
                .unwrap_err();
        assert_eq!((name.as_str(), error.start, error.end), ("b", 2, 6));
        assert!(error.message.ends_with("a -> b -> a"), "{}", error.message);
    }

    #[test]
    fn a_broken_variable_keeps_the_others_and_is_named_when_used() {
        let (scope, errors) = Scope::from_vars_partial(&vars(&[
            ("a", Scalar::Text("${b}".into())),
            ("b", Scalar::Text("${a}".into())),
            ("c", Scalar::Text("${a}ms".into())),
            ("d", Scalar::Int(4)),
        ]));
        let names: Vec<&str> = errors.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(scope.substitute_text("${d}").unwrap(), Scalar::Int(4));
        let used = scope.substitute_text("${a}").unwrap_err();
        assert_eq!(used.hint.as_deref(), Some("fix `vars.a` first"));
    }

    #[test]
    fn located_substitution_maps_ranges_back() {
        let scope = Scope::from_vars(&vars(&[("m", Scalar::Text("latency".into())), ("n", Scalar::Int(5))])).unwrap();
        let sub = scope.substitute_located("${m}.p99 < ${n}ms").unwrap();
        assert_eq!(sub.text, "latency.p99 < 5ms");
        // `p99` after the first reference shifts back by the length difference.
        assert_eq!(sub.raw_range(8, 11), (5, 8));
        // Anything inside a substituted value covers the whole reference.
        assert_eq!(sub.raw_range(0, 3), (0, 4));
        assert_eq!(sub.raw_range(14, 17), (11, 17));
        assert_eq!(sub.raw_range(15, 17), (15, 17));
    }

    #[test]
    fn variables_that_double_are_refused_before_they_grow_large() {
        let mut doubling = vec![("v0".to_owned(), Scalar::Text("x".repeat(1000)))];
        for step in 1..64 {
            doubling.push((format!("v{step}"), Scalar::Text(format!("${{v{}}}${{v{}}}", step - 1, step - 1))));
        }
        let (scope, errors) = Scope::from_vars_partial(&doubling.into_iter().collect());
        let (name, error) = &errors[0];
        assert_eq!(name, "v7", "1000 bytes doubled seven times pass 64 KiB");
        assert!(error.message.contains("longer than 64 KiB"), "{}", error.message);
        assert_eq!(errors.len(), 57, "every later step depends on the refused one");
        assert!(scope.names().len() <= 7);

        // Many variables, each under the cap, may not add up past the total either.
        let mut wide = vec![("big".to_owned(), Scalar::Text("x".repeat(30_000)))];
        wide.extend((0..100).map(|n| (format!("w{n}"), Scalar::Text("${big}${big}".into()))));
        let (_, errors) = Scope::from_vars_partial(&wide.into_iter().collect());
        assert!(errors.iter().any(|(_, error)| error.message.contains("more than 1024 KiB")), "{errors:?}");
    }

    #[test]
    fn matrix_values_shadow_vars() {
        let scope = Scope::from_vars(&vars(&[("c", Scalar::Int(1))])).unwrap().with("c", Scalar::Int(8));
        assert_eq!(scope.substitute_text("${c}").unwrap(), Scalar::Int(8));
    }
}
