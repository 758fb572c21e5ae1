//! The plan's checked values as the results file keeps them: the one place
//! where a `plan` type becomes a `results` type, so neither stage knows the
//! other.

use crate::plan::{ArmRef, ArmState, ExperimentSpec, Risk, RoadmapSpec, ScenarioInfo, Shard, Target};
use crate::results::{
    self, ArmRecord, ExperimentRecord, Machine, RoadmapRecord, ScenarioRecord, ShardRecord, TargetRecord, Written,
};

impl From<&ScenarioInfo> for ScenarioRecord {
    fn from(info: &ScenarioInfo) -> Self {
        ScenarioRecord {
            name: info.name.clone(),
            description: info.description.clone(),
            file: info.file.clone(),
            sha256: info.sha256.clone(),
            seed: info.seed,
            vars: info.vars.clone(),
        }
    }
}

impl From<&ArmRef> for ArmRecord {
    fn from(arm: &ArmRef) -> Self {
        ArmRecord { experiment: arm.experiment.clone(), arm: arm.arm.clone(), round: arm.round, position: arm.position }
    }
}

impl From<Risk> for results::Risk {
    fn from(risk: Risk) -> Self {
        match risk {
            Risk::Low => results::Risk::Low,
            Risk::Medium => results::Risk::Medium,
            Risk::High => results::Risk::High,
        }
    }
}

impl From<ArmState> for results::ArmState {
    fn from(state: ArmState) -> Self {
        match state {
            ArmState::Fresh => results::ArmState::Fresh,
            ArmState::Shared => results::ArmState::Shared,
        }
    }
}

impl From<&Target> for TargetRecord {
    fn from(target: &Target) -> Self {
        Written::checked(target.text.clone(), target.comparison.clone())
    }
}

impl From<&ExperimentSpec> for ExperimentRecord {
    fn from(spec: &ExperimentSpec) -> Self {
        ExperimentRecord {
            name: spec.name.clone(),
            workload: spec.workload.clone(),
            metric: Written::checked(spec.metric.to_string(), spec.metric.clone()),
            arms: spec.arms.clone(),
            rounds: spec.rounds,
            state: spec.state.into(),
            effort_days: spec.effort_days,
            complexity: spec.complexity,
            weight: spec.weight,
            risk: spec.risk.into(),
            rationale: spec.rationale.clone(),
            part: spec.part.clone(),
        }
    }
}

impl From<&RoadmapSpec> for RoadmapRecord {
    fn from(spec: &RoadmapSpec) -> Self {
        RoadmapRecord { start: spec.start, team: spec.team, success_probability: spec.success_probability }
    }
}

/// Which shard this process ran, on which host, from which agreed start.
pub fn shard(shard: Shard, start_at: Option<chrono::DateTime<chrono::Utc>>, machine: &Machine) -> ShardRecord {
    ShardRecord {
        index: shard.index,
        count: shard.count,
        start_at,
        host: machine.hostname.clone().unwrap_or_else(|| "unknown".into()),
    }
}
