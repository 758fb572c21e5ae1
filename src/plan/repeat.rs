//! `--repeat N`: the phases' runs N times over, in passes.
//!
//! The unit of replication is the repetition: pass 1 runs every phase run in
//! order, then pass 2, and so on, so a drift of the machine spreads over all
//! workloads instead of landing on the last one. Experiment arms are not
//! repeated: their rounds already are their repetitions.

use super::seed::derive_seed;
use super::RunSpec;

/// `runs` in `passes` passes, each run's id suffixed `@k` and its seed
/// derived from that id; a single pass leaves them as they are.
pub fn passes(runs: Vec<RunSpec>, passes: u32, seed: u64) -> Vec<RunSpec> {
    if passes <= 1 {
        return runs;
    }
    (1..=passes)
        .flat_map(|pass| {
            runs.iter().map(move |run| {
                let id = format!("{}@{pass}", run.id);
                RunSpec { seed: derive_seed(seed, &id), id, repetition: Some(pass), ..run.clone() }
            })
        })
        .collect()
}
