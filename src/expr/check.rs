//! Dimension checking of expressions against metric dimensions.

use super::ast::*;
use crate::quantity::{Dim, ParseError};

/// Dimension of a metric reference given the metric's own dimension.
pub fn stat_dim(stat: Option<Stat>, metric_dim: Dim) -> Dim {
    match stat {
        Some(Stat::Count) => Dim::NONE,
        Some(Stat::Rate) => Dim::PER_TIME,
        _ => metric_dim,
    }
}

/// Looks up a metric's own dimension, or explains why it cannot (message, hint).
pub type MetricDimFn<'a> = dyn FnMut(&MetricRef) -> Result<Dim, (String, Option<String>)> + 'a;

/// Checks units through the tree and returns the expression's dimension.
pub fn check_expr(expr: &Expr, metric_dim: &mut MetricDimFn<'_>) -> Result<Dim, ParseError> {
    match expr {
        Expr::Quantity(q, _) => Ok(q.dim()),
        Expr::Ratio { .. } => Ok(Dim::NONE),
        Expr::Metric(m, span) => match metric_dim(m) {
            Ok(dim) => Ok(stat_dim(m.stat, dim)),
            Err((message, hint)) => {
                Err(ParseError { offset: span.start, len: span.end.saturating_sub(span.start), message, hint })
            }
        },
        Expr::Neg(inner, _) => check_expr(inner, metric_dim),
        Expr::Binary { op, lhs, rhs, .. } => {
            let l = check_expr(lhs, metric_dim)?;
            let r = check_expr(rhs, metric_dim)?;
            match op {
                BinOp::Mul => Ok(l.mul(r)),
                BinOp::Div => Ok(l.div(r)),
                BinOp::Add | BinOp::Sub if l == r => Ok(l),
                BinOp::Add | BinOp::Sub => {
                    let (verb, joiner) = match op {
                        BinOp::Add => ("add", "to"),
                        _ => ("subtract", "from"),
                    };
                    let span = rhs.span();
                    Err(ParseError::new(
                        span.start,
                        span.end.saturating_sub(span.start),
                        format!("cannot {verb} {} {joiner} {}", r.describe(), l.describe()),
                    )
                    .with_hint(format!("both sides of `{}` must be the same kind of quantity", op.symbol())))
                }
            }
        }
    }
}

/// Checks both sides of a target and that their dimensions match; returns that dimension.
pub fn check_comparison(cmp: &Comparison, metric_dim: &mut MetricDimFn<'_>) -> Result<Dim, ParseError> {
    let l = check_expr(&cmp.lhs, metric_dim)?;
    let r = check_expr(&cmp.rhs, metric_dim)?;
    if l == r {
        return Ok(l);
    }
    let span = cmp.rhs.span();
    let err = ParseError::new(
        span.start,
        span.end.saturating_sub(span.start),
        format!(
            "`{}` is {} but `{}` is {}",
            source_of(cmp, &cmp.lhs),
            l.describe(),
            source_of(cmp, &cmp.rhs),
            r.describe()
        ),
    );
    Err(match example_of(l) {
        Some(example) => err.with_hint(format!("compare against {} such as `{example}`", l.describe())),
        None => err.with_hint("both sides of a comparison must be the same kind of quantity"),
    })
}

/// The source text of a sub-expression, or its canonical form when the
/// comparison was built by hand and its spans do not fit its text.
fn source_of(cmp: &Comparison, expr: &Expr) -> String {
    let span = expr.span();
    match cmp.text.get(span.start..span.end) {
        Some(text) if !text.is_empty() => text.to_string(),
        _ => expr.to_string(),
    }
}

fn example_of(dim: Dim) -> Option<&'static str> {
    Some(match dim {
        Dim::TIME => "100ms",
        Dim::BYTES => "64MiB",
        Dim::PER_TIME => "100/s",
        Dim::TOKEN_RATE => "50 tok/s",
        Dim::BYTE_RATE => "100MB/s",
        Dim::NONE => "0.5",
        Dim::TOKENS => "100 tok",
        _ => return None,
    })
}
