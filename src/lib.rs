//! phasebench: declarative performance campaigns.
//!
//! A YAML scenario flows one way through the pipeline:
//! [`dsl`] (parse) → [`plan`] (check and expand) → [`run`] with [`engines`]
//! (measure) → [`results`] (record) → [`analysis`] (judge) → [`report`]
//! (render). See ARCHITECTURE.md for the map.
//!
//! The library installs no global allocator: a program that wants `profile:
//! memory` to count its heap installs [`run::memory::CountingAllocator`]
//! itself, as the `phasebench` binary does:
//!
//! ```
//! #[global_allocator]
//! static ALLOCATOR: phasebench::run::memory::CountingAllocator = phasebench::run::memory::CountingAllocator;
//! # fn main() {}
//! ```

pub mod analysis;
pub mod diagnostic;
pub mod dsl;
pub mod engines;
pub mod expr;
pub mod history;
pub mod merge;
pub mod metric;
pub mod plan;
pub mod quantity;
pub mod report;
pub mod results;
pub mod rng;
pub mod run;
pub mod schema;
pub mod serve;
