//! Rendering results for people.
//!
//! For now the terminal summary printed at the end of `phasebench run`
//! ([`summary`]); Markdown and HTML reports come from templates later.
//!
//! **Architecture invariant:** rendering computes nothing; it formats what
//! `results` and `analysis` hand it.

pub mod summary;
