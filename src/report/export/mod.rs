//! Machine-readable renderings of results and their analysis, one format a
//! file: JSON (the analysis itself), CSV (one row per run, metric and
//! statistic, in base units), Bencher Metric Format (one benchmark per run)
//! and JUnit XML (one test case per target, so CI systems show targets as
//! tests). Each file declares its format (`pub static FORMAT`); the
//! `exporters!` list below is what [`super::format`] offers.

use super::format::FormatDecl;

/// Declares each exporter's module and lists its format, so an export is
/// added with its file and one line here.
macro_rules! exporters {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every export format, in the order `--help` lists them.
        pub static EXPORTERS: &[&FormatDecl] = &[$(&$module::FORMAT),*];
    };
}

exporters! {
    json,
    csv,
    bmf,
    junit,
}

pub use bmf::bmf;
pub use csv::{base_unit, csv};
pub use json::json;
pub use junit::junit;
