//! Machine-readable renderings of results and their analysis, one format a
//! file: JSON (the analysis itself), CSV (one row per run, metric and
//! statistic, in base units), Bencher Metric Format (one benchmark per run)
//! and JUnit XML (one test case per target, so CI systems show targets as
//! tests). [`super::format`] maps each `--format` to its exporter.

mod bmf;
mod csv;
mod json;
mod junit;

pub use bmf::bmf;
pub use csv::{base_unit, csv};
pub use json::json;
pub use junit::junit;
