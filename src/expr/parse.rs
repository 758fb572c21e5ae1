//! The nom parser: text to [`Expr`] and [`Comparison`], with located errors.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while};
use nom::character::complete::{char, multispace0, satisfy};
use nom::combinator::{recognize, value};
use nom::sequence::pair;
use nom::IResult;

use crate::quantity::{closest, lex_literal, token_len, Literal, ParseError};

use super::ast::*;

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

pub(super) const NEEDS_COMPARISON: &str = "a target needs a comparison such as `ttft.p99 < 100ms`";
const COMPARISON_OPERATORS: &str = "compare a metric with a value using `<`, `<=`, `>`, `>=` or `==`";

/// Parses a whole string as a target `expr op expr`.
///
/// ```
/// use phasebench::expr::{eval, parse_comparison, MetricRef};
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
