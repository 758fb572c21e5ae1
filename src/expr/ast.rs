//! The syntax tree of expressions and targets, and its canonical printer.

use std::fmt;

use crate::quantity::Quantity;

/// Byte range in the source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

/// Statistic of a metric's samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stat {
    /// Smallest sample.
    Min,
    /// Largest sample.
    Max,
    /// Arithmetic mean.
    Mean,
    /// Standard deviation.
    Stddev,
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Number of samples (dimensionless).
    Count,
    /// Samples per second.
    Rate,
}

impl Stat {
    /// Every statistic, in declaration order.
    pub const ALL: &'static [Stat] = &[
        Stat::Min,
        Stat::Max,
        Stat::Mean,
        Stat::Stddev,
        Stat::P50,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::P999,
        Stat::Count,
        Stat::Rate,
    ];

    /// Name as written after the dot.
    pub fn name(self) -> &'static str {
        match self {
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::Mean => "mean",
            Stat::Stddev => "stddev",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::P999 => "p999",
            Stat::Count => "count",
            Stat::Rate => "rate",
        }
    }

    /// Looks up a statistic by its exact name.
    pub fn from_name(name: &str) -> Option<Stat> {
        Stat::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// Quantile in 0..=1 for percentile stats (p999 → 0.999).
    pub fn quantile(self) -> Option<f64> {
        match self {
            Stat::P50 => Some(0.5),
            Stat::P90 => Some(0.9),
            Stat::P95 => Some(0.95),
            Stat::P99 => Some(0.99),
            Stat::P999 => Some(0.999),
            _ => None,
        }
    }
}

/// A metric, optionally narrowed to one statistic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MetricRef {
    /// Metric name, `[a-z_][a-z0-9_]*`.
    pub metric: String,
    /// Statistic after the dot, if any.
    pub stat: Option<Stat>,
}

impl fmt::Display for MetricRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stat {
            Some(stat) => write!(f, "{}.{}", self.metric, stat.name()),
            None => f.write_str(&self.metric),
        }
    }
}

/// Arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }

    fn precedence(self) -> u8 {
        match self {
            BinOp::Add | BinOp::Sub => 1,
            BinOp::Mul | BinOp::Div => 2,
        }
    }
}

/// Comparison operator of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
}

impl CmpOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
        }
    }

    /// Whether `lhs op rhs` holds; `==` allows a relative difference of 1e-9.
    pub fn holds(self, lhs: f64, rhs: f64) -> bool {
        match self {
            CmpOp::Lt => lhs < rhs,
            CmpOp::Le => lhs <= rhs,
            CmpOp::Gt => lhs > rhs,
            CmpOp::Ge => lhs >= rhs,
            // Unit conversion rounds (`1.1s` vs `1100ms`), so exact equality
            // would reject targets that are equal as written.
            CmpOp::Eq => lhs == rhs || (lhs - rhs).abs() <= 1e-9 * lhs.abs().max(rhs.abs()),
        }
    }
}

/// An arithmetic expression over quantities and metric references.
#[derive(Clone, Debug)]
pub enum Expr {
    /// A number with an optional unit.
    Quantity(Quantity, Span),
    /// A ratio such as `3:1`; `den` is never zero when parsed.
    Ratio {
        /// Left side of the colon.
        num: f64,
        /// Right side of the colon.
        den: f64,
        /// Source range.
        span: Span,
    },
    /// A metric reference such as `ttft.p99`.
    Metric(MetricRef, Span),
    /// Unary minus.
    Neg(Box<Expr>, Span),
    /// A binary arithmetic operation.
    Binary {
        /// The operator.
        op: BinOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
        /// Source range.
        span: Span,
    },
}

impl Expr {
    /// Source range of the whole expression.
    pub fn span(&self) -> Span {
        match self {
            Expr::Quantity(_, span)
            | Expr::Ratio { span, .. }
            | Expr::Metric(_, span)
            | Expr::Neg(_, span)
            | Expr::Binary { span, .. } => *span,
        }
    }

    /// Tree equality ignoring spans.
    pub fn same_tree(&self, other: &Expr) -> bool {
        match (self, other) {
            (Expr::Quantity(a, _), Expr::Quantity(b, _)) => a == b,
            (Expr::Ratio { num, den, .. }, Expr::Ratio { num: n2, den: d2, .. }) => num == n2 && den == d2,
            (Expr::Metric(a, _), Expr::Metric(b, _)) => a == b,
            (Expr::Neg(a, _), Expr::Neg(b, _)) => a.same_tree(b),
            (Expr::Binary { op, lhs, rhs, .. }, Expr::Binary { op: o2, lhs: l2, rhs: r2, .. }) => {
                op == o2 && lhs.same_tree(l2) && rhs.same_tree(r2)
            }
            _ => false,
        }
    }

    /// Every metric reference, left to right, repeats included.
    pub fn metrics(&self) -> Vec<&MetricRef> {
        let mut out = Vec::new();
        self.collect_metrics(&mut out);
        out
    }

    fn collect_metrics<'a>(&'a self, out: &mut Vec<&'a MetricRef>) {
        match self {
            Expr::Quantity(..) | Expr::Ratio { .. } => {}
            Expr::Metric(m, _) => out.push(m),
            Expr::Neg(inner, _) => inner.collect_metrics(out),
            Expr::Binary { lhs, rhs, .. } => {
                lhs.collect_metrics(out);
                rhs.collect_metrics(out);
            }
        }
    }

    pub(super) fn binary(op: BinOp, lhs: Expr, rhs: Expr) -> Expr {
        let span = Span { start: lhs.span().start, end: rhs.span().end };
        Expr::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs), span }
    }

    pub(super) fn with_span(mut self, new: Span) -> Expr {
        match &mut self {
            Expr::Quantity(_, span)
            | Expr::Ratio { span, .. }
            | Expr::Metric(_, span)
            | Expr::Neg(_, span)
            | Expr::Binary { span, .. } => *span = new,
        }
        self
    }
}

/// Prints canonical text with minimal parentheses. Trees built by the parser
/// re-parse to the same tree; hand-built negative or non-finite numbers do not.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Quantity(q, _) => write!(f, "{q}"),
            Expr::Ratio { num, den, .. } => write!(f, "{num}:{den}"),
            Expr::Metric(m, _) => write!(f, "{m}"),
            Expr::Neg(inner, _) => match **inner {
                Expr::Binary { .. } => write!(f, "-({inner})"),
                _ => write!(f, "-{inner}"),
            },
            Expr::Binary { op, lhs, rhs, .. } => {
                let prec = op.precedence();
                // Operators are left-associative, so a right operand of equal
                // precedence needs parentheses to keep its grouping.
                write_operand(f, lhs, |p| p < prec)?;
                write!(f, " {} ", op.symbol())?;
                write_operand(f, rhs, |p| p <= prec)
            }
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, operand: &Expr, needs_parens: impl Fn(u8) -> bool) -> fmt::Result {
    match operand {
        Expr::Binary { op, .. } if needs_parens(op.precedence()) => write!(f, "({operand})"),
        _ => write!(f, "{operand}"),
    }
}

/// A target: two expressions compared.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Left side.
    pub lhs: Expr,
    /// The comparison operator.
    pub op: CmpOp,
    /// Right side.
    pub rhs: Expr,
    /// The original source text that spans point into.
    pub text: String,
}

impl Comparison {
    /// Tree equality ignoring spans and source text.
    pub fn same_tree(&self, other: &Comparison) -> bool {
        self.op == other.op && self.lhs.same_tree(&other.lhs) && self.rhs.same_tree(&other.rhs)
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.lhs, self.op.symbol(), self.rhs)
    }
}
