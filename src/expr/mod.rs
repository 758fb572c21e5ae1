//! Arithmetic expressions and comparison targets of the benchmark DSL.
//!
//! This module owns the syntax tree for expressions such as
//! `latency.p99 < 2 * latency.p50`, its nom-based parser with located
//! errors, the canonical printer (which re-parses to the same tree),
//! dimension checking against metric dimensions, and evaluation in SI base
//! units. Numbers, units and the error type come from
//! [`crate::quantity`].
//!
//! `ast` is the tree, `parse` the grammar, `check` the dimension rules and
//! `eval` the arithmetic. `plan` parses and checks targets once; `results`
//! and `analysis` receive the tree.

mod ast;
mod check;
mod eval;
mod parse;

pub use ast::{BinOp, CmpOp, Comparison, Expr, MetricRef, Span, Stat};
pub use check::{check_comparison, check_expr, stat_dim, MetricDimFn};
pub use eval::eval;
pub use parse::{parse_comparison, parse_expr};

#[cfg(test)]
mod tests;
