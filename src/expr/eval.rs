//! Evaluation in SI base units.

use super::ast::*;

/// Evaluates in SI base units; `None` when a metric is unavailable, on division by zero, or on a non-finite result.
pub fn eval(expr: &Expr, value: &mut dyn FnMut(&MetricRef) -> Option<f64>) -> Option<f64> {
    let result = match expr {
        Expr::Quantity(q, _) => q.base_value(),
        Expr::Ratio { den, .. } if *den == 0.0 => return None,
        Expr::Ratio { num, den, .. } => num / den,
        Expr::Metric(m, _) => value(m)?,
        Expr::Neg(inner, _) => -eval(inner, value)?,
        Expr::Binary { op, lhs, rhs, .. } => {
            let l = eval(lhs, value)?;
            let r = eval(rhs, value)?;
            match op {
                BinOp::Add => l + r,
                BinOp::Sub => l - r,
                BinOp::Mul => l * r,
                BinOp::Div if r == 0.0 => return None,
                BinOp::Div => l / r,
            }
        }
    };
    // An overflowed or NaN value would make every comparison meaningless.
    result.is_finite().then_some(result)
}
