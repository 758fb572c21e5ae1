//! phasebench: declarative performance campaigns.
//!
//! A YAML scenario flows one way through the pipeline:
//! [`dsl`] (parse) → [`plan`] (check and expand) → [`run`] with [`engines`]
//! (measure) → [`results`] (record) → [`analysis`] (judge) → [`report`]
//! (render). See ARCHITECTURE.md for the map.

pub mod analysis;
pub mod diagnostic;
pub mod dsl;
pub mod engines;
pub mod expr;
pub mod metric;
pub mod plan;
pub mod quantity;
pub mod report;
pub mod results;
pub mod rng;
pub mod run;

/// Every allocation of the process goes through the counting allocator, which
/// counts only while a `profile: memory` run measures.
#[global_allocator]
static ALLOCATOR: run::memory::CountingAllocator = run::memory::CountingAllocator;
