//! Analysis: what the measurements mean.
//!
//! Reads [`crate::results::Results`] only, never the plan or the engines, so
//! any saved results file can be analysed again. Target evaluation lives in
//! [`targets`].

pub mod targets;
