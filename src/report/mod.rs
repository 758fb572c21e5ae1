//! Rendering results for people.
//!
//! The terminal summary printed at the end of `phasebench run`
//! ([`summary`]); the Markdown and HTML reports from Tera templates
//! ([`render`], with SVG [`charts`]); machine-readable exports ([`export`]:
//! JSON, CSV, Bencher Metric Format, JUnit, one file each); flame graphs of
//! CPU profiles ([`flamegraph`]); and the comparison of two saved runs
//! ([`compare`]). [`format`] maps each format `phasebench report` writes to
//! its renderer; [`folder`] writes a run folder's reports. [`history`] is
//! the page of `phasebench history report`: the history's series with
//! their trend charts and change points, and the projections checked.
//!
//! **Architecture invariant:** rendering computes nothing; it formats what
//! `results`, `analysis` and `history` hand it (the change points are found
//! by the caller, not by the page).

pub mod charts;
pub mod compare;
pub mod export;
pub mod flamegraph;
pub mod folder;
pub mod format;
pub mod history;
pub mod prometheus;
pub mod render;
pub mod summary;
