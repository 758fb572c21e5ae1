//! Engine instances from `engines:`.
//!
//! Each instance's kind must be one the registry knows (an unknown kind gets a
//! did-you-mean hint); its options are substituted and checked against the
//! kind's declared options once here, so a mistake is reported even when no
//! workload uses the instance, and the engine then validates the checked
//! options itself. Workloads, arms and workflow steps start from the
//! instances built here.

use std::collections::HashMap;

use super::{Located, Lowering};
use crate::diagnostic::hint_from;
use crate::engines::{self, EngineDecl};
use crate::plan::template::Scope;

/// A configured engine instance from `engines:`.
pub(super) struct Instance {
    pub(super) kind: &'static str,
    pub(super) decl: &'static EngineDecl,
    pub(super) options: Located,
}

impl Lowering<'_> {
    pub(super) fn engines(&mut self, scope: &Scope) -> HashMap<String, Instance> {
        let mut instances = HashMap::new();
        for (name, raw) in &self.doc.raw.engines {
            let path = format!("engines.{name}");
            let Some(kind) = engines::find(&raw.kind) else {
                let kinds: Vec<&str> = engines::registry().iter().map(|k| k.decl().kind).collect();
                self.at_value(
                    &format!("{path}.kind"),
                    format!("unknown engine kind `{}`", raw.kind),
                    hint_from(&raw.kind, &kinds),
                );
                continue;
            };
            let decl = kind.decl();
            let mut options = Located::new();
            for (key, value) in &raw.options {
                let option_path = format!("{path}.{key}");
                if let Some(value) = self.substitute(value, &option_path, scope) {
                    options.insert(key.clone(), (value, option_path));
                }
            }
            // Checked once here so a mistake is reported even if no workload uses the instance.
            let checked = self.check_params(
                decl.options,
                &options,
                (&path, &format!("{path}.kind")),
                &format!("engine kind `{}`", decl.kind),
                "option",
            );
            if let Some(checked) = checked {
                if let Err(invalid) = kind.validate(&checked) {
                    self.invalid(invalid, &options, &format!("{path}.kind"));
                }
            }
            instances.insert(name.clone(), Instance { kind: decl.kind, decl, options });
        }
        instances
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::engines::Value;
    use crate::plan::lower::tests::{at, error_of, plan_of, scenario};

    /// One instance written as `engine` on line 3, used by a `noop` workload.
    fn with_engine(engine: &str) -> String {
        scenario(&[
            "scenario: t",
            "engines:",
            engine,
            "phases:",
            "  - name: p",
            "    workloads: [{ name: w, engine: cal, op: noop }]",
        ])
    }

    #[test]
    fn options_left_out_take_the_kinds_defaults() {
        let plan = plan_of(&with_engine("  cal: { kind: calibrate, fail_every: 3 }"));
        let engine = &plan.runs[0].engine;
        assert_eq!((engine.name.as_str(), engine.kind), ("cal", "calibrate"));
        let options: Vec<(&str, &Value)> = engine.options.0.iter().map(|(k, v)| (k.as_str(), v)).collect();
        assert_eq!(
            options,
            [
                ("fail_every", &Value::Count(3)),
                ("stall_at", &Value::Count(0)),
                ("stall_for", &Value::Duration(Duration::from_millis(100))),
            ]
        );
    }

    #[test]
    fn an_unknown_kind_is_refused_with_a_hint() {
        let diagnostic = error_of(&with_engine("  cal: { kind: calibrat }"));
        assert_eq!(diagnostic.message, "unknown engine kind `calibrat`");
        assert_eq!(diagnostic.path, "engines.cal.kind");
        assert_eq!(at(&diagnostic), (3, 16));
        assert_eq!(diagnostic.hint.as_deref(), Some("did you mean `calibrate`?"));
    }

    #[test]
    fn an_unknown_option_is_refused_with_a_hint_at_its_key() {
        let diagnostic = error_of(&with_engine("  cal: { kind: calibrate, fail_evry: 3 }"));
        assert_eq!(diagnostic.message, "unknown option `fail_evry` for engine kind `calibrate`");
        assert_eq!(diagnostic.path, "engines.cal.fail_evry");
        assert_eq!(at(&diagnostic), (3, 27));
        assert_eq!(diagnostic.hint.as_deref(), Some("did you mean `fail_every`?"));
    }

    #[test]
    fn an_instance_no_workload_uses_is_still_checked() {
        let yaml = with_engine("  cal: { kind: calibrate }\n  idle: { kind: calibrate, stall_for: 3KiB }");
        let diagnostic = error_of(&yaml);
        assert_eq!(diagnostic.path, "engines.idle.stall_for");
        assert!(diagnostic.message.starts_with("option `stall_for`: "), "{}", diagnostic.message);
        assert_eq!(diagnostic.location.line, 4);
    }
}
