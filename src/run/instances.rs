//! Engine instances, and which runs share them.
//!
//! Runs that share an instance share its state: a vault's cache and stored
//! data, an agents pool, an llm's loaded weights (docs/engine-state.md says
//! what each engine keeps). So that a measurement never depends on what an
//! earlier one left behind, the runs are split into groups, each on its own
//! instances:
//!
//! - the phases' runs of one `--repeat` pass (a write phase fills the vault
//!   that a read phase then reads);
//! - every single run of an experiment with `state: fresh`, the default, so
//!   no arm or round inherits another's caches;
//! - all runs of an experiment with `state: shared`, across its rounds.
//!
//! Within a group there is one instance per named engine and option set, so
//! arms that change an option get their own. A group's instances are dropped
//! as soon as it ends, before the next group creates any.

use std::collections::HashMap;
use std::sync::Arc;

use crate::engines::{self, Engine, EngineError, EngineSetup, Operation};
use crate::plan::{ArmState, EngineConfig, Plan, RunSpec};

/// Runs that share engine instances.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Group {
    /// The phases' runs of one `--repeat` pass.
    Pass(u32),
    /// Every round of one `state: shared` experiment.
    Experiment(String),
    /// One run of a `state: fresh` experiment, alone.
    Run,
}

impl Group {
    fn of(plan: &Plan, spec: &RunSpec) -> Group {
        let Some(arm) = &spec.arm else { return Group::Pass(spec.repetition.unwrap_or(1)) };
        let shared = plan.experiments.iter().any(|e| e.name == arm.experiment && e.state == ArmState::Shared);
        if shared {
            Group::Experiment(arm.experiment.clone())
        } else {
            Group::Run
        }
    }
}

/// The engine instances of the group now running.
pub struct Instances {
    seed: u64,
    group: Option<Group>,
    /// By instance name and options; a failed setup is kept so that every
    /// run of the group reports it without trying again.
    engines: HashMap<String, Result<Arc<dyn Engine>, EngineError>>,
}

impl Instances {
    /// No instances yet; engines are created with the scenario's `seed`.
    pub fn new(seed: u64) -> Instances {
        Instances { seed, group: None, engines: HashMap::new() }
    }

    /// The operation `spec` runs, workflow steps linked, on its group's
    /// instances; entering a new group drops the previous group's first.
    pub fn operation(&mut self, plan: &Plan, spec: &RunSpec) -> Result<Arc<dyn Operation>, EngineError> {
        let group = Group::of(plan, spec);
        if self.group.as_ref() != Some(&group) || group == Group::Run {
            // Before the new ones exist: a vault's directory is unlocked and
            // two large models are never held at once.
            self.engines.clear();
            self.group = Some(group);
        }
        let engine = self.engine(&spec.engine);
        let steps = spec
            .steps
            .iter()
            .map(|step| {
                self.engine(&step.engine).and_then(|engine| engine.operation(&step.op, &step.params)).map_err(|error| {
                    EngineError::new(format!("workflow step `{}.{}`: {}", step.engine.name, step.op, error.message))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let engine = engine?;
        if steps.is_empty() {
            engine.operation(&spec.op, &spec.params)
        } else {
            engine.linked_operation(&spec.op, &spec.params, steps)
        }
    }

    /// A run has ended and its operation is gone: a run alone in its group
    /// drops its instances now.
    pub fn run_ended(&mut self) {
        if self.group == Some(Group::Run) {
            self.engines.clear();
        }
    }

    fn engine(&mut self, config: &EngineConfig) -> Result<Arc<dyn Engine>, EngineError> {
        let seed = self.seed;
        self.engines.entry(engine_key(config)).or_insert_with(|| create_engine(config, seed)).clone()
    }
}

fn engine_key(engine: &EngineConfig) -> String {
    let options = serde_json::to_string(&engine.options).unwrap_or_default();
    format!("{}:{}:{options}", engine.name, engine.kind)
}

fn create_engine(engine: &EngineConfig, seed: u64) -> Result<Arc<dyn Engine>, EngineError> {
    let kind =
        engines::find(engine.kind).ok_or_else(|| EngineError::new(format!("no engine kind `{}`", engine.kind)))?;
    kind.create(&EngineSetup { options: engine.options.clone(), seed })
}
