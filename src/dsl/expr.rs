//! Arithmetic expressions and comparison targets of the benchmark DSL.
//!
//! This module owns the syntax tree for expressions such as
//! `latency.p99 < 2 * latency.p50`, its nom-based parser with located
//! errors, the canonical printer (which re-parses to the same tree),
//! dimension checking against metric dimensions, and evaluation in SI base
//! units. Numbers, units and the error type come from
//! [`crate::quantity`].

use std::fmt;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while};
use nom::character::complete::{char, multispace0, satisfy};
use nom::combinator::{recognize, value};
use nom::sequence::pair;
use nom::IResult;

use crate::quantity::{closest, lex_literal, token_len, Dim, Literal, ParseError, Quantity};

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

    fn binary(op: BinOp, lhs: Expr, rhs: Expr) -> Expr {
        let span = Span { start: lhs.span().start, end: rhs.span().end };
        Expr::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs), span }
    }

    fn with_span(mut self, new: Span) -> Expr {
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

/// Parses a whole string as an arithmetic expression.
pub fn parse_expr(text: &str) -> Result<Expr, ParseError> {
    let c = Ctx::new(text)?;
    if text.trim().is_empty() {
        return Err(ParseError::new(0, 0, "empty expression")
            .with_hint("write a metric such as `ttft.p99` or a quantity such as `100ms`"));
    }
    let (rest, expr) = sum(c, text).map_err(|e| c.error(e))?;
    c.finish(rest, "comparisons are only allowed in targets")?;
    Ok(expr)
}

const NEEDS_COMPARISON: &str = "a target needs a comparison such as `ttft.p99 < 100ms`";
const COMPARISON_OPERATORS: &str = "compare a metric with a value using `<`, `<=`, `>`, `>=` or `==`";

/// Parses a whole string as a target `expr op expr`.
///
/// ```
/// use phasebench::dsl::expr::{eval, parse_comparison, MetricRef};
///
/// let target = parse_comparison("latency.p99 < 2 * latency.p50").unwrap();
/// let mut measured = |metric: &MetricRef| match metric.to_string().as_str() {
///     "latency.p99" => Some(0.009),
///     "latency.p50" => Some(0.005),
///     _ => None,
/// };
/// let lhs = eval(&target.lhs, &mut measured).unwrap();
/// let rhs = eval(&target.rhs, &mut measured).unwrap();
/// assert!(target.op.holds(lhs, rhs));
/// ```
pub fn parse_comparison(text: &str) -> Result<Comparison, ParseError> {
    let c = Ctx::new(text)?;
    if text.trim().is_empty() {
        return Err(ParseError::new(0, 0, NEEDS_COMPARISON).with_hint(COMPARISON_OPERATORS));
    }
    let (rest, lhs) = sum(c, text).map_err(|e| c.error(e))?;
    let (rest, _) = ws(rest).map_err(|e| c.error(e))?;
    let (rest, op) = match cmp_op(rest) {
        Ok(parsed) => parsed,
        Err(_) => {
            let err = ParseError::new(c.at(rest), token_len(rest), NEEDS_COMPARISON);
            return Err(if rest.starts_with("!=") {
                err.with_hint("`!=` is not supported; use `<` or `>`")
            } else if rest.starts_with('=') {
                err.with_hint("use `==` to test equality")
            } else {
                err.with_hint(COMPARISON_OPERATORS)
            });
        }
    };
    let (rest, rhs) = sum(c, rest).map_err(|e| c.error(e))?;
    c.finish(rest, "a target has exactly one comparison")?;
    Ok(Comparison { lhs, op, rhs, text: text.to_string() })
}

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

// ---------------------------------------------------------------------------
// Parser

/// Cap on operators and parentheses: bounds the recursion depth of parsing
/// and of every recursive walk over the tree (printing, checking, dropping),
/// so hostile input cannot overflow the stack. Real targets use a handful.
const MAX_OPERATORS: usize = 128;

/// nom error carrying a located message; `rest_len` is the length of the
/// input remaining at the error, which `Ctx` turns into an absolute offset.
#[derive(Debug)]
struct Fail {
    rest_len: usize,
    len: usize,
    message: String,
    hint: Option<String>,
}

impl Fail {
    fn new(at: &str, len: usize, message: impl Into<String>) -> Fail {
        Fail { rest_len: at.len(), len, message: message.into(), hint: None }
    }

    fn hint(mut self, hint: impl Into<String>) -> Fail {
        self.hint = Some(hint.into());
        self
    }
}

impl<'a> nom::error::ParseError<&'a str> for Fail {
    fn from_error_kind(input: &'a str, _kind: nom::error::ErrorKind) -> Fail {
        let len = token_len(input);
        Fail::new(input, len, format!("unexpected `{}`", &input[..len]))
    }

    fn append(_input: &'a str, _kind: nom::error::ErrorKind, other: Fail) -> Fail {
        // The innermost error is the most specific; keep it.
        other
    }
}

type PResult<'a, T> = IResult<&'a str, T, Fail>;

fn fatal<T>(fail: Fail) -> PResult<'static, T> {
    Err(nom::Err::Failure(fail))
}

/// Parsing context: the total length turns remaining-input lengths into offsets.
#[derive(Clone, Copy)]
struct Ctx {
    len: usize,
}

impl Ctx {
    fn new(text: &str) -> Result<Ctx, ParseError> {
        let mut seen = 0;
        for (i, b) in text.bytes().enumerate() {
            if matches!(b, b'(' | b'+' | b'-' | b'*' | b'/') {
                seen += 1;
                if seen > MAX_OPERATORS {
                    return Err(ParseError::new(
                        i,
                        1,
                        format!("expression is too complex (more than {MAX_OPERATORS} operators and parentheses)"),
                    ));
                }
            }
        }
        Ok(Ctx { len: text.len() })
    }

    fn at(self, rest: &str) -> usize {
        self.len.saturating_sub(rest.len())
    }

    fn span(self, from: &str, to: &str) -> Span {
        Span { start: self.at(from), end: self.at(to) }
    }

    fn error(self, err: nom::Err<Fail>) -> ParseError {
        match err {
            nom::Err::Error(f) | nom::Err::Failure(f) => {
                ParseError { offset: self.len.saturating_sub(f.rest_len), len: f.len, message: f.message, hint: f.hint }
            }
            // Only streaming parsers report this; all parsers here are complete.
            nom::Err::Incomplete(_) => ParseError::new(self.len, 0, "unexpected end of text"),
        }
    }

    /// Requires that only whitespace remains.
    fn finish(self, rest: &str, cmp_hint: &str) -> Result<(), ParseError> {
        let rest = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        if rest.is_empty() {
            return Ok(());
        }
        let len = token_len(rest);
        let tok = &rest[..len];
        let err = ParseError::new(self.at(rest), len, format!("unexpected `{tok}`"));
        Err(if tok == ")" {
            ParseError::new(self.at(rest), len, "unmatched `)`")
        } else if cmp_op(rest).is_ok() {
            err.with_hint(cmp_hint)
        } else {
            err.with_hint("expected an operator such as `+` or `*`")
        })
    }
}

fn ws(i: &str) -> PResult<'_, &str> {
    multispace0(i)
}

/// `sum := product (("+"|"-") product)*`, left-associative.
fn sum(c: Ctx, i: &str) -> PResult<'_, Expr> {
    let ops = [('+', BinOp::Add), ('-', BinOp::Sub)];
    binary_chain(c, i, &ops, product)
}

/// `product := unary (("*"|"/") unary)*`, left-associative.
fn product(c: Ctx, i: &str) -> PResult<'_, Expr> {
    let ops = [('*', BinOp::Mul), ('/', BinOp::Div)];
    binary_chain(c, i, &ops, unary)
}

fn binary_chain<'a>(
    c: Ctx,
    i: &'a str,
    ops: &[(char, BinOp)],
    operand: fn(Ctx, &'a str) -> PResult<'a, Expr>,
) -> PResult<'a, Expr> {
    let (mut i, mut acc) = operand(c, i)?;
    loop {
        let (after_ws, _) = ws(i)?;
        let Some(&(sym, op)) = ops.iter().find(|(sym, _)| after_ws.starts_with(*sym)) else {
            return Ok((i, acc));
        };
        let (rest, _) = char(sym)(after_ws)?;
        // After an operator an operand is mandatory: turn a soft error into a
        // hard one so it is reported here rather than as trailing garbage.
        let (rest, rhs) = operand(c, rest).map_err(|e| match e {
            nom::Err::Error(f) => nom::Err::Failure(f),
            other => other,
        })?;
        acc = Expr::binary(op, acc, rhs);
        i = rest;
    }
}

/// `unary := "-" unary | primary`
fn unary(c: Ctx, i: &str) -> PResult<'_, Expr> {
    let (i, _) = ws(i)?;
    match char::<_, Fail>('-')(i) {
        Ok((rest, _)) => {
            let (rest, inner) = unary(c, rest)?;
            Ok((rest, Expr::Neg(Box::new(inner), c.span(i, rest))))
        }
        Err(_) => primary(c, i),
    }
}

/// `primary := "(" sum ")" | ratio | quantity | metric_ref`
fn primary(c: Ctx, i: &str) -> PResult<'_, Expr> {
    let (i, _) = ws(i)?;
    let mut chars = i.chars();
    match chars.next() {
        None => Err(nom::Err::Error(Fail::new(i, 0, "expected a number, metric or `(` but the text ends here"))),
        Some('(') => parenthesized(c, i),
        Some('0'..='9') => literal(c, i),
        Some('a'..='z' | '_') => metric_ref(c, i),
        Some('.') if chars.next().is_some_and(|d| d.is_ascii_digit()) => fatal(
            Fail::new(i, 1, "a number needs a digit before the decimal point").hint("write `0.5` instead of `.5`"),
        ),
        Some(ch) if ch.is_alphabetic() => {
            let len = token_len(i);
            fatal(
                Fail::new(i, len, format!("invalid metric name `{}`", &i[..len]))
                    .hint("metric names use lowercase ASCII letters, digits and `_`"),
            )
        }
        Some(_) => {
            let len = token_len(i);
            Err(nom::Err::Error(Fail::new(
                i,
                len,
                format!("expected a number, metric or `(` but found `{}`", &i[..len]),
            )))
        }
    }
}

fn parenthesized(c: Ctx, i: &str) -> PResult<'_, Expr> {
    let (rest, _) = char('(')(i)?;
    let (rest, inner) = sum(c, rest)?;
    let (rest, _) = ws(rest)?;
    match char::<_, Fail>(')')(rest) {
        // The span covers the parentheses so errors underline what was written.
        Ok((after, _)) => Ok((after, inner.with_span(c.span(i, after)))),
        Err(_) if rest.is_empty() => fatal(Fail::new(i, 1, "unclosed `(`").hint("add a matching `)`")),
        Err(_) => {
            let len = token_len(rest);
            fatal(Fail::new(rest, len, format!("expected `)` or an operator but found `{}`", &rest[..len])))
        }
    }
}

fn literal(c: Ctx, i: &str) -> PResult<'_, Expr> {
    let start = c.at(i);
    let (lit, used) = match lex_literal(i, start) {
        Ok(ok) => ok,
        Err(e) => {
            return fatal(Fail {
                rest_len: c.len.saturating_sub(e.offset),
                len: e.len,
                message: e.message,
                hint: e.hint,
            })
        }
    };
    let rest = i.get(used..).unwrap_or_default();
    let span = c.span(i, rest);
    let expr = match lit {
        Literal::Quantity(q) => Expr::Quantity(q, span),
        Literal::Ratio { num, den } => Expr::Ratio { num, den, span },
    };
    Ok((rest, expr))
}

/// `metric_ref := ident ("." stat)?`
fn metric_ref(c: Ctx, i: &str) -> PResult<'_, Expr> {
    let (rest, name) = recognize(pair(
        satisfy(|ch| ch.is_ascii_lowercase() || ch == '_'),
        take_while(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
    ))(i)?;
    let (rest, stat) = match char::<_, Fail>('.')(rest) {
        Err(_) => (rest, None),
        Ok((after_dot, _)) => {
            let (after, word) = take_while(|ch: char| ch.is_alphanumeric() || ch == '_')(after_dot)?;
            if word.is_empty() {
                return fatal(
                    Fail::new(after_dot, token_len(after_dot), "expected a statistic after `.`")
                        .hint(format!("one of: {}", stat_list())),
                );
            }
            match Stat::from_name(word) {
                Some(stat) => (after, Some(stat)),
                None => {
                    let fail = Fail::new(after_dot, word.len(), format!("unknown statistic `{word}`"));
                    return fatal(match suggest_stat(word) {
                        Some(s) => fail.hint(format!("did you mean `{}`?", s.name())),
                        None => fail.hint(format!("one of: {}", stat_list())),
                    });
                }
            }
        }
    };
    let metric = MetricRef { metric: name.to_string(), stat };
    Ok((rest, Expr::Metric(metric, c.span(i, rest))))
}

fn cmp_op(i: &str) -> PResult<'_, CmpOp> {
    alt((
        value(CmpOp::Le, tag("<=")),
        value(CmpOp::Ge, tag(">=")),
        value(CmpOp::Eq, tag("==")),
        value(CmpOp::Lt, tag("<")),
        value(CmpOp::Gt, tag(">")),
    ))(i)
}

fn stat_list() -> String {
    Stat::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
}

/// Closest statistic to an unknown name.
fn suggest_stat(word: &str) -> Option<Stat> {
    const ALIASES: &[(&str, Stat)] = &[
        ("avg", Stat::Mean),
        ("average", Stat::Mean),
        ("median", Stat::P50),
        ("std", Stat::Stddev),
        ("stdev", Stat::Stddev),
        ("sd", Stat::Stddev),
        ("n", Stat::Count),
        ("p100", Stat::Max),
        ("p0", Stat::Min),
    ];
    if let Some((_, stat)) = ALIASES.iter().find(|(name, _)| *name == word) {
        return Some(*stat);
    }
    let lower = word.to_ascii_lowercase();
    if let Some(stat) = Stat::from_name(&lower) {
        return Some(stat);
    }
    // Edit distance ties for percentiles (`p98` is one edit from p90, p95 and
    // p99), so pick the numerically nearest quantile instead.
    if let Some(q) = percentile_of(&lower) {
        let distance = |s: &Stat| s.quantile().map_or(f64::INFINITY, |sq| (sq - q).abs());
        return Stat::ALL
            .iter()
            .copied()
            .filter(|s| s.quantile().is_some())
            .min_by(|a, b| distance(a).total_cmp(&distance(b)));
    }
    let name = closest(&lower, Stat::ALL.iter().map(|s| s.name()))?;
    Stat::from_name(name)
}

/// Quantile written as `pNN` (`p98` → 0.98, `p9999` → 0.9999).
fn percentile_of(word: &str) -> Option<f64> {
    let digits = word.strip_prefix('p')?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Two digits are a percentage; more are digits after "0." (p999 = 99.9%).
    let text =
        if digits.len() <= 2 { format!("{}", digits.parse::<f64>().ok()? / 100.0) } else { format!("0.{digits}") };
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantity::Unit;
    use proptest::prelude::*;

    fn p(text: &str) -> Expr {
        parse_expr(text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    fn err(text: &str) -> ParseError {
        match parse_expr(text) {
            Ok(e) => panic!("{text} parsed as {e}"),
            Err(e) => e,
        }
    }

    fn cmp_err(text: &str) -> ParseError {
        match parse_comparison(text) {
            Ok(c) => panic!("{text} parsed as {c}"),
            Err(e) => e,
        }
    }

    /// Dimensions of the metrics the tests talk about.
    fn dims(m: &MetricRef) -> Result<Dim, (String, Option<String>)> {
        match m.metric.as_str() {
            "ttft" | "latency" | "a" | "b" => Ok(Dim::TIME),
            "rss" => Ok(Dim::BYTES),
            "tokens" => Ok(Dim::TOKENS),
            other => Err((format!("unknown metric `{other}`"), None)),
        }
    }

    #[test]
    fn prints_canonically() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("latency.p99<2*latency.p50", "latency.p99 < 2 * latency.p50"),
            ("a - b - c < 1", "a - b - c < 1"),
            ("(a - b) - c < 1", "a - b - c < 1"),
            ("a - (b - c) < 1", "a - (b - c) < 1"),
            ("a / (b * c) > 1", "a / (b * c) > 1"),
            ("(a * b) / c >= 1", "a * b / c >= 1"),
            ("a + b * c == 1", "a + b * c == 1"),
            ("(a + b) * c <= 1", "(a + b) * c <= 1"),
            ("-(a + b) < -1s", "-(a + b) < -1s"),
            ("--a < - -3:1", "--a < --3:1"),
            ("  ttft.p99\t<\n100ms  ", "ttft.p99 < 100ms"),
            ("x < 50tok/s", "x < 50 tok/s"),
            ("(((a))) < 2000/s", "a < 2000/s"),
        ];
        for (src, want) in cases {
            let parsed = parse_comparison(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
            assert_eq!(parsed.to_string(), *want, "{src}");
            assert!(parse_comparison(want).is_ok_and(|again| again.same_tree(&parsed)));
        }
    }

    #[test]
    fn associativity_and_precedence() {
        let left = Expr::binary(BinOp::Sub, Expr::binary(BinOp::Sub, p("a"), p("b")), p("c"));
        assert!(p("a - b - c").same_tree(&left));
        assert!(!p("a - (b - c)").same_tree(&left));
        let mul_first = Expr::binary(BinOp::Add, p("a"), Expr::binary(BinOp::Mul, p("b"), p("c")));
        assert!(p("a + b * c").same_tree(&mul_first));
        assert!(p("-a * b").same_tree(&Expr::binary(BinOp::Mul, p("-a"), p("b"))));
    }

    #[test]
    fn slash_is_a_unit_or_division() {
        assert!(matches!(p("2000/s"), Expr::Quantity(Quantity { unit: Some(Unit::PerS), .. }, _)));
        for text in ["a/2", "a / 2", "a / s", "a/s", "2 / s", "2/sec", "4MB/sec"] {
            assert!(matches!(p(text), Expr::Binary { op: BinOp::Div, .. }), "{text}");
        }
        assert!(matches!(p("1.5 MB/s"), Expr::Quantity(Quantity { unit: Some(Unit::MBPerS), .. }, _)));
    }

    #[test]
    fn parses_leaves() {
        for &unit in Unit::ALL {
            let text = format!("3{}", unit.symbol());
            let want = Quantity { value: 3.0, unit: Some(unit) };
            assert!(matches!(p(&text), Expr::Quantity(q, _) if q == want), "{text}");
        }
        for &stat in Stat::ALL {
            let text = format!("m_1.{}", stat.name());
            let want = MetricRef { metric: "m_1".into(), stat: Some(stat) };
            assert!(matches!(p(&text), Expr::Metric(m, _) if m == want), "{text}");
            assert_eq!(Stat::from_name(stat.name()), Some(stat));
        }
        assert!(matches!(p("_x"), Expr::Metric(MetricRef { stat: None, .. }, _)));
        assert!(matches!(p("3:1"), Expr::Ratio { num, den, .. } if num == 3.0 && den == 1.0));
        assert!(matches!(p("2.5e-3"), Expr::Quantity(q, _) if q.value == 0.0025));
        assert!(matches!(p("1E3 s"), Expr::Quantity(q, _) if q.value == 1000.0));
        assert_eq!(Stat::P999.quantile(), Some(0.999));
        assert_eq!(Stat::Mean.quantile(), None);
    }

    #[test]
    fn spans_point_at_source() {
        let e = p("(a + 12ms) * 50 tok/s");
        assert_eq!(e.span(), Span { start: 0, end: 21 });
        let Expr::Binary { lhs, rhs, .. } = e else { panic!("not binary") };
        assert_eq!(lhs.span(), Span { start: 0, end: 10 });
        assert_eq!(rhs.span(), Span { start: 13, end: 21 });
        let names: Vec<String> = p("a.p50 + b - a.p50").metrics().iter().map(|m| m.to_string()).collect();
        assert_eq!(names, ["a.p50", "b", "a.p50"]);
    }

    #[test]
    fn errors_are_located() {
        #[rustfmt::skip]
        let cases: &[(&str, usize, usize, &str, Option<&str>)] = &[
            ("10min", 2, 3, "unknown unit `min`", Some("did you mean `m`?")),
            ("a + 3kb", 5, 2, "unknown unit `kb`", Some("did you mean `KB`?")),
            ("ttft.p98", 5, 3, "unknown statistic `p98`", Some("did you mean `p99`?")),
            ("ttft.avg", 5, 3, "unknown statistic `avg`", Some("did you mean `mean`?")),
            ("ttft.mxa", 5, 3, "unknown statistic `mxa`", Some("did you mean `max`?")),
            ("ttft.", 5, 0, "expected a statistic after `.`", None),
            ("a b", 2, 1, "unexpected `b`", None),
            ("1 + 2)", 5, 1, "unmatched `)`", None),
            ("(1 + 2", 0, 1, "unclosed `(`", Some("add a matching `)`")),
            ("(1 2)", 3, 1, "expected `)` or an operator but found `2`", None),
            ("", 0, 0, "empty expression", None),
            ("1e400", 0, 5, "number out of range", None),
            ("a +", 3, 0, "expected a number, metric or `(` but the text ends here", None),
            ("a * )", 4, 1, "expected a number, metric or `(` but found `)`", None),
            ("a < 1", 2, 1, "unexpected `<`", Some("comparisons are only allowed in targets")),
            ("3:0", 2, 1, "the right side of a ratio must not be zero", None),
            (".5", 0, 1, "a number needs a digit before the decimal point", None),
            ("Ttft", 0, 4, "invalid metric name `Ttft`", None),
            ("a + é", 4, 2, "invalid metric name `é`", None),
            ("a + €", 4, 3, "expected a number, metric or `(` but found `€`", None),
        ];
        for (text, offset, len, message, hint) in cases {
            let e = err(text);
            assert_eq!((e.offset, e.len, e.message.as_str()), (*offset, *len, *message), "{text}");
            if hint.is_some() {
                assert_eq!(e.hint.as_deref(), *hint, "{text}");
            }
        }
    }

    #[test]
    fn comparison_errors() {
        let e = cmp_err("ttft.p99");
        assert_eq!((e.offset, e.len, e.message.as_str()), (8, 0, NEEDS_COMPARISON));
        let e = cmp_err("ttft.p99 = 5ms");
        assert_eq!((e.offset, e.hint.as_deref()), (9, Some("use `==` to test equality")));
        let e = cmp_err("a < b < c");
        assert_eq!((e.offset, e.hint.as_deref()), (6, Some("a target has exactly one comparison")));
        assert_eq!(cmp_err("   ").message, NEEDS_COMPARISON);
        assert_eq!(cmp_err("a <").offset, 3);
    }

    #[test]
    fn too_complex_input_is_rejected_not_overflowed() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(err(&deep).message.contains("too complex"));
        let long = vec!["a"; 10_000].join("+");
        assert!(err(&long).message.contains("too complex"));
        assert!(parse_expr(&vec!["a"; 100].join("+")).is_ok());
    }

    #[test]
    fn dimension_checks() {
        let check = |text: &str| check_comparison(&parse_comparison(text).expect(text), &mut dims);
        assert_eq!(check("ttft.p99 < 100ms"), Ok(Dim::TIME));
        assert_eq!(check("ttft.count > 10"), Ok(Dim::NONE));
        assert_eq!(check("ttft.rate >= 2000/s"), Ok(Dim::PER_TIME));
        assert_eq!(check("rss / 1s < 100MB/s"), Ok(Dim::BYTE_RATE));
        assert_eq!(check("tokens / latency > 50 tok/s"), Ok(Dim::TOKEN_RATE));
        assert_eq!(check("latency.p99 < 2 * latency.p50"), Ok(Dim::TIME));
        assert_eq!(check("a.p99 / a.p50 < 3:1"), Ok(Dim::NONE));

        let e = check("ttft.p99 < 4KiB").expect_err("size vs duration");
        assert_eq!((e.offset, e.len), (11, 4));
        assert_eq!(e.message, "`ttft.p99` is a duration but `4KiB` is a size");
        assert_eq!(e.hint.as_deref(), Some("compare against a duration such as `100ms`"));

        let e = check("ttft + 4KiB < 1s").expect_err("add");
        assert_eq!((e.offset, e.len, e.message.as_str()), (7, 4, "cannot add a size to a duration"));
        let e = check("1s < ttft - 2 tok").expect_err("sub");
        assert_eq!(e.message, "cannot subtract a token count from a duration");
        let e = check("nope.p50 < 1s").expect_err("unknown");
        assert_eq!((e.offset, e.len, e.message.as_str()), (0, 8, "unknown metric `nope`"));
        let e = check("rss * rss < (1s)").expect_err("odd dims");
        assert_eq!((e.offset, e.len), (12, 4));
        assert_eq!(e.message, "`rss * rss` is a quantity in B^2 but `(1s)` is a duration");
    }

    #[test]
    fn evaluates_with_units() {
        let mut metrics = |m: &MetricRef| match m.metric.as_str() {
            "a" => Some(0.25),
            "zero" => Some(0.0),
            _ => None,
        };
        let mut holds = |text: &str| {
            let c = parse_comparison(text).expect(text);
            let l = eval(&c.lhs, &mut metrics);
            let r = eval(&c.rhs, &mut metrics);
            l.zip(r).map(|(l, r)| c.op.holds(l, r))
        };
        assert_eq!(holds("1s + 500ms == 1.5s"), Some(true));
        assert_eq!(holds("1.1s == 1100ms"), Some(true));
        assert_eq!(holds("2KiB == 2048B"), Some(true));
        assert_eq!(holds("a * 4 <= 1s"), Some(true));
        assert_eq!(holds("-a > -1s"), Some(true));
        assert_eq!(holds("50% == 1:2"), Some(true));
        assert_eq!(holds("a - 1s - 1s < a - (1s - 1s)"), Some(true));
        assert_eq!(holds("1 / zero > 1"), None);
        assert_eq!(holds("missing < 1"), None);
        assert_eq!(holds("1e300 * 1e300 > 1"), None);
        assert!(!CmpOp::Eq.holds(1.0, 1.0001));
        assert!(!CmpOp::Lt.holds(f64::NAN, 1.0));
    }

    // ---- property tests ----

    fn leaf() -> impl Strategy<Value = Expr> {
        let number = prop_oneof![
            prop::sample::select(vec![0.0, 0.5, 1.0, 2.25, 1e3, 123.456, 1e-7, 1e21]),
            any::<u32>().prop_map(|n| f64::from(n) / 1000.0),
        ];
        let unit = prop::option::of(prop::sample::select(Unit::ALL));
        let stat = prop::option::of(prop::sample::select(Stat::ALL));
        prop_oneof![
            (number.clone(), unit).prop_map(|(value, unit)| Expr::Quantity(Quantity { value, unit }, Span::default())),
            (number, 1u32..1000).prop_map(|(num, den)| Expr::Ratio { num, den: f64::from(den), span: Span::default() }),
            ("[a-z_][a-z0-9_]{0,6}", stat)
                .prop_map(|(metric, stat)| Expr::Metric(MetricRef { metric, stat }, Span::default())),
        ]
    }

    fn tree() -> impl Strategy<Value = Expr> {
        leaf().prop_recursive(4, 24, 2, |inner| {
            let op = prop::sample::select(vec![BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Div]);
            prop_oneof![
                inner.clone().prop_map(|e| Expr::Neg(Box::new(e), Span::default())),
                (op, inner.clone(), inner).prop_map(|(op, l, r)| Expr::binary(op, l, r)),
            ]
        })
    }

    fn cmp_op_strategy() -> impl Strategy<Value = CmpOp> {
        prop::sample::select(vec![CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge, CmpOp::Eq])
    }

    fn assert_well_located(text: &str, e: &ParseError) -> Result<(), TestCaseError> {
        prop_assert!(e.offset + e.len <= text.len(), "{text:?}: {e:?}");
        prop_assert!(text.is_char_boundary(e.offset) && text.is_char_boundary(e.offset + e.len));
        Ok(())
    }

    fn exercise(text: &str) -> Result<(), TestCaseError> {
        match parse_expr(text) {
            Ok(e) => {
                let _ = check_expr(&e, &mut dims);
                let _ = eval(&e, &mut |_| Some(1.0));
            }
            Err(e) => assert_well_located(text, &e)?,
        }
        match parse_comparison(text) {
            Ok(c) => {
                let _ = check_comparison(&c, &mut dims);
            }
            Err(e) => assert_well_located(text, &e)?,
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(text in ".*") {
            exercise(&text)?;
        }

        #[test]
        fn never_panics_on_grammar_alphabet(text in "[0-9a-z.:%/()*+<>= -]{0,40}") {
            exercise(&text)?;
        }

        #[test]
        fn never_panics_on_units_and_stats(text in "(ttft|\\.p9|9|[0-9]e|ms|MB|/s|tok|[ (),:<=*+-])*") {
            exercise(&text)?;
        }

        #[test]
        fn expr_round_trips(e in tree()) {
            let printed = e.to_string();
            let parsed = parse_expr(&printed).map_err(|err| TestCaseError::fail(format!("{printed:?}: {err:?}")))?;
            prop_assert!(parsed.same_tree(&e), "{printed:?} re-parsed as {parsed:?}");
            prop_assert_eq!(parsed.to_string(), printed);
        }

        #[test]
        fn comparison_round_trips(lhs in tree(), op in cmp_op_strategy(), rhs in tree()) {
            let c = Comparison { lhs, op, rhs, text: String::new() };
            let printed = c.to_string();
            let parsed = parse_comparison(&printed).map_err(|err| TestCaseError::fail(format!("{printed:?}: {err:?}")))?;
            prop_assert!(parsed.same_tree(&c), "{printed:?} re-parsed as {parsed:?}");
            prop_assert_eq!(parsed.to_string(), printed);
        }
    }
}
