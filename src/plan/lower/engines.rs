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
