//! Units, dimensions and quantities of the benchmark DSL.
//!
//! This module owns everything about a single number as a person writes it:
//! the unit vocabulary (`250us`, `64MiB`, `50 tok/s`, `5%`), the physical
//! dimension each unit carries, conversion to SI base units, the lexer for
//! numeric literals shared with the expression parser, human-readable
//! formatting of measured values, and the located [`ParseError`] used by the
//! whole DSL.

use std::fmt;

/// A parse or check error located in the expression text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Byte offset of the offending token in the text.
    pub offset: usize,
    /// Byte length of the offending token; 0 only when pointing at the end of the text.
    pub len: usize,
    /// What went wrong, in one sentence.
    pub message: String,
    /// An optional suggestion for fixing it.
    pub hint: Option<String>,
}

impl ParseError {
    /// Creates an error without a hint.
    pub fn new(offset: usize, len: usize, message: impl Into<String>) -> Self {
        ParseError { offset, len, message: message.into(), hint: None }
    }

    /// Attaches a hint, replacing any previous one.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Physical dimension as exponents of base units: seconds, bytes, tokens. Counts, percents, ratios are dimensionless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Dim {
    /// Exponent of seconds.
    pub time: i8,
    /// Exponent of bytes.
    pub bytes: i8,
    /// Exponent of tokens.
    pub tokens: i8,
}

impl Dim {
    /// Dimensionless: counts, percentages, ratios, plain numbers.
    pub const NONE: Dim = Dim::new(0, 0, 0);
    /// A duration in seconds.
    pub const TIME: Dim = Dim::new(1, 0, 0);
    /// A size in bytes.
    pub const BYTES: Dim = Dim::new(0, 1, 0);
    /// A number of tokens.
    pub const TOKENS: Dim = Dim::new(0, 0, 1);
    /// Operations per second.
    pub const PER_TIME: Dim = Dim::new(-1, 0, 0);
    /// Tokens per second.
    pub const TOKEN_RATE: Dim = Dim::new(-1, 0, 1);
    /// Bytes per second.
    pub const BYTE_RATE: Dim = Dim::new(-1, 1, 0);

    const fn new(time: i8, bytes: i8, tokens: i8) -> Dim {
        Dim { time, bytes, tokens }
    }

    /// Dimension of a product.
    // Inherent `mul`/`div` (rather than operator traits) are the documented
    // API. Saturating arithmetic keeps absurd inputs such as `s*s*s*...` from
    // overflowing an i8 and panicking.
    #[allow(clippy::should_implement_trait)]
    pub fn mul(self, other: Dim) -> Dim {
        Dim::new(
            self.time.saturating_add(other.time),
            self.bytes.saturating_add(other.bytes),
            self.tokens.saturating_add(other.tokens),
        )
    }

    /// Dimension of a quotient.
    #[allow(clippy::should_implement_trait)]
    pub fn div(self, other: Dim) -> Dim {
        Dim::new(
            self.time.saturating_sub(other.time),
            self.bytes.saturating_sub(other.bytes),
            self.tokens.saturating_sub(other.tokens),
        )
    }

    /// Human phrase for error messages, e.g. "a duration" or "a quantity in s^-2·B".
    pub fn describe(self) -> String {
        let known = match self {
            Dim::TIME => "a duration",
            Dim::BYTES => "a size",
            Dim::PER_TIME => "a rate per second",
            Dim::TOKEN_RATE => "a token rate",
            Dim::BYTE_RATE => "a byte rate",
            Dim::NONE => "a plain number",
            Dim::TOKENS => "a token count",
            _ => return format!("a quantity in {}", self.unit_text()),
        };
        known.to_string()
    }

    /// Base units with exponents, e.g. "s^-2·B".
    fn unit_text(self) -> String {
        [(self.time, "s"), (self.bytes, "B"), (self.tokens, "tok")]
            .iter()
            .filter(|(exp, _)| *exp != 0)
            .map(|(exp, sym)| match exp {
                1 => (*sym).to_string(),
                _ => format!("{sym}^{exp}"),
            })
            .collect::<Vec<_>>()
            .join("·")
    }
}

/// Unit written after a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Nanoseconds.
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
    /// Minutes, written `m`.
    Min,
    /// Hours.
    H,
    /// Bytes.
    B,
    /// Kilobytes (10^3).
    KB,
    /// Megabytes (10^6).
    MB,
    /// Gigabytes (10^9).
    GB,
    /// Terabytes (10^12).
    TB,
    /// Kibibytes (2^10).
    KiB,
    /// Mebibytes (2^20).
    MiB,
    /// Gibibytes (2^30).
    GiB,
    /// Tebibytes (2^40).
    TiB,
    /// Tokens.
    Tok,
    /// Operations per second.
    PerS,
    /// Tokens per second.
    TokPerS,
    /// Bytes per second.
    BPerS,
    /// Kilobytes per second.
    KBPerS,
    /// Megabytes per second.
    MBPerS,
    /// Gigabytes per second.
    GBPerS,
    /// Kibibytes per second.
    KiBPerS,
    /// Mebibytes per second.
    MiBPerS,
    /// Gibibytes per second.
    GiBPerS,
    /// Percent (0.01).
    Percent,
    /// Multiplier such as `5x` (1).
    Times,
}

const KI: f64 = 1024.0;

impl Unit {
    /// Every unit, in declaration order.
    pub const ALL: &'static [Unit] = &[
        Unit::Ns,
        Unit::Us,
        Unit::Ms,
        Unit::S,
        Unit::Min,
        Unit::H,
        Unit::B,
        Unit::KB,
        Unit::MB,
        Unit::GB,
        Unit::TB,
        Unit::KiB,
        Unit::MiB,
        Unit::GiB,
        Unit::TiB,
        Unit::Tok,
        Unit::PerS,
        Unit::TokPerS,
        Unit::BPerS,
        Unit::KBPerS,
        Unit::MBPerS,
        Unit::GBPerS,
        Unit::KiBPerS,
        Unit::MiBPerS,
        Unit::GiBPerS,
        Unit::Percent,
        Unit::Times,
    ];

    /// Canonical spelling of the unit.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Us => "us",
            Unit::Ms => "ms",
            Unit::S => "s",
            Unit::Min => "m",
            Unit::H => "h",
            Unit::B => "B",
            Unit::KB => "KB",
            Unit::MB => "MB",
            Unit::GB => "GB",
            Unit::TB => "TB",
            Unit::KiB => "KiB",
            Unit::MiB => "MiB",
            Unit::GiB => "GiB",
            Unit::TiB => "TiB",
            Unit::Tok => "tok",
            Unit::PerS => "/s",
            Unit::TokPerS => "tok/s",
            Unit::BPerS => "B/s",
            Unit::KBPerS => "KB/s",
            Unit::MBPerS => "MB/s",
            Unit::GBPerS => "GB/s",
            Unit::KiBPerS => "KiB/s",
            Unit::MiBPerS => "MiB/s",
            Unit::GiBPerS => "GiB/s",
            Unit::Percent => "%",
            Unit::Times => "x",
        }
    }

    /// Physical dimension of the unit.
    pub fn dim(self) -> Dim {
        match self {
            Unit::Ns | Unit::Us | Unit::Ms | Unit::S | Unit::Min | Unit::H => Dim::TIME,
            Unit::B | Unit::KB | Unit::MB | Unit::GB | Unit::TB | Unit::KiB | Unit::MiB | Unit::GiB | Unit::TiB => {
                Dim::BYTES
            }
            Unit::Tok => Dim::TOKENS,
            Unit::PerS => Dim::PER_TIME,
            Unit::TokPerS => Dim::TOKEN_RATE,
            Unit::BPerS
            | Unit::KBPerS
            | Unit::MBPerS
            | Unit::GBPerS
            | Unit::KiBPerS
            | Unit::MiBPerS
            | Unit::GiBPerS => Dim::BYTE_RATE,
            Unit::Percent | Unit::Times => Dim::NONE,
        }
    }

    /// Multiplier converting a value in this unit to SI base units (seconds, bytes, tokens).
    pub fn factor(self) -> f64 {
        match self {
            Unit::Ns => 1e-9,
            Unit::Us => 1e-6,
            Unit::Ms => 1e-3,
            Unit::S => 1.0,
            Unit::Min => 60.0,
            Unit::H => 3600.0,
            Unit::KB | Unit::KBPerS => 1e3,
            Unit::MB | Unit::MBPerS => 1e6,
            Unit::GB | Unit::GBPerS => 1e9,
            Unit::TB => 1e12,
            Unit::KiB | Unit::KiBPerS => KI,
            Unit::MiB | Unit::MiBPerS => KI * KI,
            Unit::GiB | Unit::GiBPerS => KI * KI * KI,
            Unit::TiB => KI * KI * KI * KI,
            Unit::B | Unit::Tok | Unit::PerS | Unit::TokPerS | Unit::BPerS | Unit::Times => 1.0,
            Unit::Percent => 0.01,
        }
    }

    /// Looks up a unit by its exact spelling; `µs` (micro sign or Greek mu) is accepted for `us`.
    pub fn from_symbol(s: &str) -> Option<Unit> {
        if MICRO_ALIASES.contains(&s) {
            return Some(Unit::Us);
        }
        Unit::ALL.iter().copied().find(|u| u.symbol() == s)
    }
}

/// `µ` is U+00B5 (micro sign) on most keyboards but U+03BC (Greek mu) when
/// pasted from typeset text; both mean micro.
const MICRO_ALIASES: &[&str] = &["\u{b5}s", "\u{3bc}s"];

/// A number with an optional unit, as written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantity {
    /// The number as written, before unit conversion.
    pub value: f64,
    /// The unit written after the number, if any.
    pub unit: Option<Unit>,
}

impl Quantity {
    /// Dimension of the quantity; unitless numbers are dimensionless.
    pub fn dim(&self) -> Dim {
        self.unit.map_or(Dim::NONE, Unit::dim)
    }

    /// Value in SI base units.
    pub fn base_value(&self) -> f64 {
        self.value * self.unit.map_or(1.0, Unit::factor)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // f64's Display is the shortest string that round-trips and never uses
        // exponent notation, so the output always re-parses to the same value.
        match self.unit {
            None => write!(f, "{}", self.value),
            // Word-like units read better detached: "50 tok/s".
            Some(u @ (Unit::Tok | Unit::TokPerS)) => write!(f, "{} {}", self.value, u.symbol()),
            Some(u) => write!(f, "{}{}", self.value, u.symbol()),
        }
    }
}

/// Parses a whole string as one quantity such as "250us", "-2s", "3:1" or "50 tok/s".
///
/// ```
/// use phasebench::quantity::{parse_quantity, Dim};
///
/// let nap = parse_quantity("250us").unwrap();
/// assert_eq!(nap.dim(), Dim::TIME);
/// assert!((nap.base_value() - 250e-6).abs() < 1e-15);
/// assert_eq!(parse_quantity("64MiB").unwrap().base_value(), 64.0 * 1024.0 * 1024.0);
/// assert!(parse_quantity("10 parsecs").is_err());
/// ```
pub fn parse_quantity(text: &str) -> Result<Quantity, ParseError> {
    let start = skip_ws(text, 0);
    let rest = text.get(start..).unwrap_or_default();
    if rest.is_empty() {
        return Err(ParseError::new(start, 0, "expected a quantity such as `100ms`"));
    }
    let (negative, num_start) = match rest.strip_prefix('-') {
        Some(_) => (true, skip_ws(text, start + 1)),
        None => (false, start),
    };
    let body = text.get(num_start..).unwrap_or_default();
    if !body.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(ParseError::new(num_start, token_len(body), "expected a quantity such as `100ms`"));
    }
    let (literal, used) = lex_literal(body, num_start)?;
    let end = num_start + used;
    let after = skip_ws(text, end);
    if after < text.len() {
        let tail = text.get(after..).unwrap_or_default();
        let tok = &tail[..token_len(tail)];
        return Err(ParseError::new(after, tok.len(), format!("unexpected `{tok}` after the quantity")));
    }
    let mut quantity = match literal {
        Literal::Quantity(q) => q,
        Literal::Ratio { num, den } => Quantity { value: num / den, unit: None },
    };
    if negative {
        quantity.value = -quantity.value;
    }
    Ok(quantity)
}

/// A numeric literal recognised by [`lex_literal`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Literal {
    /// A number with an optional unit.
    Quantity(Quantity),
    /// A ratio `num:den` with a non-zero denominator.
    Ratio { num: f64, den: f64 },
}

/// Lexes a quantity or ratio at the start of `s` (which begins with a digit);
/// `base` is the offset of `s` in the full text. Returns the literal and the
/// number of bytes consumed.
pub(crate) fn lex_literal(s: &str, base: usize) -> Result<(Literal, usize), ParseError> {
    let num_len = scan_number(s);
    if num_len == 0 {
        return Err(ParseError::new(base, token_len(s), "expected a number"));
    }
    let value = parse_number(&s[..num_len], base)?;

    // Ratio `3:1`: whitespace around `:` is allowed like around any token.
    let colon = skip_ws(s, num_len);
    if s[colon..].starts_with(':') {
        let den_at = skip_ws(s, colon + 1);
        let den_len = scan_number(&s[den_at..]);
        if den_len == 0 {
            let tail = &s[den_at..];
            return Err(ParseError::new(base + den_at, token_len(tail), "expected a number after `:` in a ratio")
                .with_hint("write ratios like `3:1`"));
        }
        let den = parse_number(&s[den_at..den_at + den_len], base + den_at)?;
        if den == 0.0 {
            return Err(ParseError::new(base + den_at, den_len, "the right side of a ratio must not be zero"));
        }
        let end = den_at + den_len;
        let tail = &s[end..];
        if tail.starts_with(is_unit_start) {
            return Err(ParseError::new(base + end, unit_token_len(tail), "a ratio cannot have a unit"));
        }
        return Ok((Literal::Ratio { num: value, den }, end));
    }

    let plain = Literal::Quantity(Quantity { value, unit: None });
    let direct = &s[num_len..];
    // A `/`-unit must touch the number: `2000/s` is a rate, `2 / s` divides
    // by a metric named `s`.
    if direct.starts_with('/') {
        return Ok(match match_unit(direct) {
            Some((unit, len)) => (Literal::Quantity(Quantity { value, unit: Some(unit) }), num_len + len),
            None => (plain, num_len),
        });
    }
    let unit_at = skip_ws(s, num_len);
    let tail = &s[unit_at..];
    if !tail.starts_with(is_unit_start) {
        return Ok((plain, num_len));
    }
    // Nothing in the grammar may follow a number except a unit, an operator or
    // a bracket, so letters here are always meant as a unit.
    match match_unit(tail) {
        Some((unit, len)) if !unit.symbol().starts_with('/') => {
            Ok((Literal::Quantity(Quantity { value, unit: Some(unit) }), unit_at + len))
        }
        _ => {
            let tok = &tail[..unit_token_len(tail)];
            let err = ParseError::new(base + unit_at, tok.len(), format!("unknown unit `{tok}`"));
            Err(match suggest_unit(tok) {
                Some(s) => err.with_hint(format!("did you mean `{s}`?")),
                None => err.with_hint(format!("known units: {}", unit_list())),
            })
        }
    }
}

/// Length of the decimal number (`12`, `1.5`, `2.5E-3`) at the start of `s`, 0 if none.
fn scan_number(s: &str) -> usize {
    let b = s.as_bytes();
    let digits = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut end = digits(0);
    if end == 0 {
        return 0;
    }
    if b.get(end) == Some(&b'.') {
        let frac = digits(end + 1);
        // `1.` is not a number with a fraction; leave the dot for the caller.
        if frac > end + 1 {
            end = frac;
        }
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut exp = end + 1;
        if matches!(b.get(exp), Some(b'+' | b'-')) {
            exp += 1;
        }
        let exp_end = digits(exp);
        // Without digits the `e` is not an exponent (it becomes a unit error).
        if exp_end > exp {
            end = exp_end;
        }
    }
    end
}

/// Converts a scanned number, rejecting values that overflow to infinity.
fn parse_number(tok: &str, offset: usize) -> Result<f64, ParseError> {
    match tok.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(ParseError::new(offset, tok.len(), "number out of range")
            .with_hint("numbers must be smaller than about 1.8e308")),
    }
}

/// Longest unit symbol at the start of `s` that is not glued to further identifier characters.
fn match_unit(s: &str) -> Option<(Unit, usize)> {
    let spelled = Unit::ALL.iter().map(|u| (*u, u.symbol())).chain(MICRO_ALIASES.iter().map(|a| (Unit::Us, *a)));
    let mut best: Option<(Unit, usize)> = None;
    for (unit, sym) in spelled {
        let Some(after) = s.strip_prefix(sym) else {
            continue;
        };
        // `5ms` must not match `m` and `2/sec` must not match `/s`.
        if after.starts_with(is_ident_char) {
            continue;
        }
        if best.is_none_or(|(_, len)| sym.len() > len) {
            best = Some((unit, sym.len()));
        }
    }
    best
}

/// Whether `c` continues an identifier or unit word.
pub(crate) fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `c` can continue a unit word.
fn is_unit_char(c: char) -> bool {
    is_ident_char(c) || c == '%'
}

/// Whether `c` can start a unit; digits cannot, so `1 2` is two numbers.
fn is_unit_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '%'
}

/// Extent of a would-be unit (`kb`, `kb/s`, `%x`) for error messages; at least one character.
fn unit_token_len(s: &str) -> usize {
    let run = |t: &str| t.find(|c: char| !is_unit_char(c)).unwrap_or(t.len());
    let mut len = run(s);
    if len > 0 && s[len..].starts_with('/') {
        let more = run(&s[len + 1..]);
        if more > 0 {
            len += 1 + more;
        }
    }
    len.max(s.chars().next().map_or(0, char::len_utf8))
}

/// Extent of a generic token for error messages: a word, a comparison operator, or one character.
pub(crate) fn token_len(s: &str) -> usize {
    let Some(first) = s.chars().next() else {
        return 0;
    };
    if is_ident_char(first) {
        return s.find(|c: char| !is_ident_char(c)).unwrap_or(s.len());
    }
    if matches!(first, '<' | '>' | '=' | '!') {
        return if s[1..].starts_with('=') { 2 } else { 1 };
    }
    first.len_utf8()
}

/// Index of the first non-whitespace byte at or after `from`.
fn skip_ws(s: &str, from: usize) -> usize {
    // Same set as nom's `multispace0`, so both parsers agree on what a space is.
    let rest = s.get(from..).unwrap_or_default();
    s.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len()
}

fn unit_list() -> String {
    Unit::ALL.iter().map(|u| u.symbol()).collect::<Vec<_>>().join(", ")
}

/// Closest known unit spelling for an unknown unit token.
fn suggest_unit(tok: &str) -> Option<&'static str> {
    // Common spellings from other tools, which edit distance would map badly
    // (`min` is as close to `MiB` as to `m`).
    const ALIASES: &[(&str, &str)] = &[
        ("min", "m"),
        ("mins", "m"),
        ("minute", "m"),
        ("minutes", "m"),
        ("sec", "s"),
        ("secs", "s"),
        ("second", "s"),
        ("seconds", "s"),
        ("hr", "h"),
        ("hrs", "h"),
        ("hour", "h"),
        ("hours", "h"),
        ("msec", "ms"),
        ("usec", "us"),
        ("nsec", "ns"),
        ("token", "tok"),
        ("tokens", "tok"),
        ("toks", "tok"),
        ("b", "B"),
        ("byte", "B"),
        ("bytes", "B"),
        ("pct", "%"),
        ("percent", "%"),
        ("X", "x"),
        ("rps", "/s"),
        ("qps", "/s"),
        ("tps", "tok/s"),
    ];
    if let Some((_, to)) = ALIASES.iter().find(|(from, _)| *from == tok) {
        return Some(to);
    }
    let symbols = || Unit::ALL.iter().map(|u| u.symbol());
    if let Some(sym) = symbols().find(|s| s.eq_ignore_ascii_case(tok)) {
        return Some(sym);
    }
    closest(tok, symbols())
}

/// The candidate with the smallest edit distance to `word`, if close enough to be a plausible typo.
pub(crate) fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let len = word.chars().count();
    // Very long words are not typos of short names, and skipping them keeps
    // the quadratic distance computation cheap on hostile input.
    if len > 32 {
        return None;
    }
    let mut best: Option<(usize, &str)> = None;
    for cand in candidates {
        let d = edit_distance(word, cand);
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    // Require the word to keep more than it changes, so `q` does not suggest `s`.
    best.filter(|(d, _)| *d <= 2 && *d < len).map(|(_, c)| c)
}

/// Edit distance over characters counting insertions, deletions,
/// substitutions and adjacent transpositions (optimal string alignment).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    // Transpositions count as one edit because swapped letters (`mxa` for
    // `max`) are the most common typo; plain Levenshtein would call that a tie.
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// Formats a value in base units for people, choosing a readable unit for the dimension.
///
/// ```
/// use phasebench::quantity::{format_value, Dim};
///
/// assert_eq!(format_value(0.0123, Dim::TIME), "12.3ms");
/// assert_eq!(format_value(4096.0, Dim::BYTES), "4.00KiB");
/// ```
pub fn format_value(base: f64, dim: Dim) -> String {
    if !base.is_finite() {
        return match dim {
            Dim::NONE => format!("{base}"),
            _ => format!("{base} ({})", dim.describe()),
        };
    }
    match dim {
        Dim::TIME => scaled(base, &[(1e-9, "ns"), (1e-6, "us"), (1e-3, "ms"), (1.0, "s")]),
        Dim::BYTES => scaled(
            base,
            &[(1.0, "B"), (KI, "KiB"), (KI * KI, "MiB"), (KI * KI * KI, "GiB"), (KI * KI * KI * KI, "TiB")],
        ),
        Dim::BYTE_RATE => scaled(base, &[(1.0, "B/s"), (1e3, "KB/s"), (1e6, "MB/s"), (1e9, "GB/s")]),
        Dim::TOKEN_RATE => scaled(base, &[(1.0, " tok/s"), (1e3, "k tok/s"), (1e6, "M tok/s")]),
        Dim::TOKENS => format!("{} tok", sig3(base)),
        Dim::PER_TIME => scaled(base, &[(1.0, "/s"), (1e3, "k/s"), (1e6, "M/s"), (1e9, "G/s")]),
        Dim::NONE => sig3(base),
        _ => format!("{} ({})", sig3(base), dim.describe()),
    }
}

/// Picks the largest scale not above the value and prints it with 3 significant digits.
fn scaled(base: f64, scales: &[(f64, &str)]) -> String {
    // Round first so that 999.7us becomes "1.00ms" rather than "1000us".
    let rounded = format!("{base:.2e}").parse::<f64>().unwrap_or(base);
    let magnitude = rounded.abs();
    let pick = if magnitude == 0.0 {
        scales.iter().find(|(f, _)| *f == 1.0)
    } else {
        scales.iter().rev().find(|(f, _)| *f <= magnitude)
    };
    match pick.or(scales.first()) {
        Some((factor, sym)) => format!("{}{sym}", sig3(rounded / factor)),
        None => sig3(base),
    }
}

/// Three significant digits, keeping trailing zeros ("2.00", "12.3", "850"); exponent form when extreme.
fn sig3(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let a = v.abs();
    if !(1e-3..1e15).contains(&a) {
        return format!("{v:.2e}");
    }
    let mag = a.log10().floor() as i32;
    let decimals = (2 - mag).max(0) as usize;
    let text = format!("{v:.decimals$}");
    // Rounding can carry into a new digit (9.996 → "10.00"); drop one decimal then.
    let carried = text.parse::<f64>().is_ok_and(|r| r.abs() >= 10f64.powi(mag + 1));
    if carried && decimals > 0 {
        let fewer = decimals - 1;
        format!("{v:.fewer$}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(value: f64, unit: Option<Unit>) -> Quantity {
        Quantity { value, unit }
    }

    #[test]
    fn every_unit_parses_from_its_symbol_and_displays_back() {
        for &unit in Unit::ALL {
            let text = q(12.5, Some(unit)).to_string();
            assert_eq!(parse_quantity(&text), Ok(q(12.5, Some(unit))), "{text}");
            assert_eq!(Unit::from_symbol(unit.symbol()), Some(unit));
            // Detached spelling is accepted for every unit that is not `/`-led.
            if !unit.symbol().starts_with('/') {
                let spaced = format!("7 {}", unit.symbol());
                assert_eq!(parse_quantity(&spaced), Ok(q(7.0, Some(unit))), "{spaced}");
            }
        }
        assert_eq!(Unit::from_symbol("µs"), Some(Unit::Us));
        assert_eq!(Unit::from_symbol("sec"), None);
        assert_eq!(parse_quantity("3µs"), Ok(q(3.0, Some(Unit::Us))));
    }

    #[test]
    fn quantities_parse() {
        #[rustfmt::skip]
        let cases: &[(&str, f64, Option<Unit>)] = &[
            ("250us", 250.0, Some(Unit::Us)),
            (" 2s ", 2.0, Some(Unit::S)),
            ("3:1", 3.0, None),
            ("1 : 4", 0.25, None),
            ("50 tok/s", 50.0, Some(Unit::TokPerS)),
            ("50tok/s", 50.0, Some(Unit::TokPerS)),
            ("1e3", 1000.0, None),
            ("2.5E-3ms", 0.0025, Some(Unit::Ms)),
            ("1e+2", 100.0, None),
            ("1.5 MB/s", 1.5, Some(Unit::MBPerS)),
            ("2000/s", 2000.0, Some(Unit::PerS)),
            ("-5%", -5.0, Some(Unit::Percent)),
            ("5x", 5.0, Some(Unit::Times)),
            ("10m", 10.0, Some(Unit::Min)),
            ("64MiB", 64.0, Some(Unit::MiB)),
            ("1e-400", 0.0, None),
        ];
        for (text, value, unit) in cases {
            assert_eq!(parse_quantity(text), Ok(q(*value, *unit)), "{text}");
        }
    }

    #[test]
    fn quantity_errors_are_located() {
        #[rustfmt::skip]
        let cases: &[(&str, usize, usize, &str, Option<&str>)] = &[
            ("10min", 2, 3, "unknown unit `min`", Some("did you mean `m`?")),
            ("10 kb", 3, 2, "unknown unit `kb`", Some("did you mean `KB`?")),
            ("1 kb/s", 2, 4, "unknown unit `kb/s`", Some("did you mean `KB/s`?")),
            ("5Kb", 1, 2, "unknown unit `Kb`", Some("did you mean `KB`?")),
            ("3 tokens", 2, 6, "unknown unit `tokens`", Some("did you mean `tok`?")),
            ("1e400", 0, 5, "number out of range", None),
            ("3:0", 2, 1, "the right side of a ratio must not be zero", None),
            ("3:1s", 3, 1, "a ratio cannot have a unit", None),
            ("", 0, 0, "expected a quantity such as `100ms`", None),
            ("ms", 0, 2, "expected a quantity such as `100ms`", None),
            ("5s 3", 3, 1, "unexpected `3` after the quantity", None),
            ("2 /s", 2, 1, "unexpected `/` after the quantity", None),
        ];
        for (text, offset, len, message, hint) in cases {
            let err = parse_quantity(text).expect_err(text);
            assert_eq!((err.offset, err.len, err.message.as_str()), (*offset, *len, *message), "{text}");
            if hint.is_some() {
                assert_eq!(err.hint.as_deref(), *hint, "{text}");
            }
        }
    }

    #[test]
    fn base_values_and_dims() {
        assert_eq!(q(250.0, Some(Unit::Us)).base_value(), 250e-6);
        assert_eq!(q(2.0, Some(Unit::KiB)).base_value(), 2048.0);
        assert_eq!(q(5.0, Some(Unit::Percent)).base_value(), 0.05);
        assert_eq!(q(2.0, Some(Unit::Min)).base_value(), 120.0);
        assert_eq!(q(1.0, None).dim(), Dim::NONE);
        assert_eq!(q(1.0, Some(Unit::GiBPerS)).dim(), Dim::BYTE_RATE);
        assert_eq!(Dim::BYTES.div(Dim::TIME), Dim::BYTE_RATE);
        assert_eq!(Dim::PER_TIME.mul(Dim::TIME), Dim::NONE);
    }

    #[test]
    fn dims_describe_themselves() {
        assert_eq!(Dim::TIME.describe(), "a duration");
        assert_eq!(Dim::BYTES.describe(), "a size");
        assert_eq!(Dim::PER_TIME.describe(), "a rate per second");
        assert_eq!(Dim::TOKEN_RATE.describe(), "a token rate");
        assert_eq!(Dim::BYTE_RATE.describe(), "a byte rate");
        assert_eq!(Dim::NONE.describe(), "a plain number");
        assert_eq!(Dim::TOKENS.describe(), "a token count");
        let odd = Dim::BYTES.div(Dim::TIME.mul(Dim::TIME));
        assert_eq!(odd.describe(), "a quantity in s^-2·B");
    }

    #[test]
    fn displays_quantities() {
        assert_eq!(q(250.0, Some(Unit::Us)).to_string(), "250us");
        assert_eq!(q(1.5, Some(Unit::S)).to_string(), "1.5s");
        assert_eq!(q(2000.0, Some(Unit::PerS)).to_string(), "2000/s");
        assert_eq!(q(50.0, Some(Unit::TokPerS)).to_string(), "50 tok/s");
        assert_eq!(q(3.0, Some(Unit::Tok)).to_string(), "3 tok");
        assert_eq!(q(5.0, Some(Unit::Times)).to_string(), "5x");
        assert_eq!(q(1e21, None).to_string(), "1000000000000000000000");
    }

    #[test]
    fn formats_values_for_people() {
        #[rustfmt::skip]
        let cases: &[(f64, Dim, &str)] = &[
            (0.0123, Dim::TIME, "12.3ms"),
            (850e-6, Dim::TIME, "850us"),
            (2.0, Dim::TIME, "2.00s"),
            (42e-9, Dim::TIME, "42.0ns"),
            (999.7e-6, Dim::TIME, "1.00ms"),
            (0.0, Dim::TIME, "0s"),
            (-0.5, Dim::TIME, "-500ms"),
            (4096.0, Dim::BYTES, "4.00KiB"),
            (512.0, Dim::BYTES, "512B"),
            (3.0 * KI * KI * KI, Dim::BYTES, "3.00GiB"),
            (1.5e8, Dim::BYTE_RATE, "150MB/s"),
            (50.0, Dim::TOKEN_RATE, "50.0 tok/s"),
            (2000.0, Dim::PER_TIME, "2.00k/s"),
            (16_852_341.0, Dim::PER_TIME, "16.9M/s"),
            (450.0, Dim::PER_TIME, "450/s"),
            (1010.0, Dim::TOKEN_RATE, "1.01k tok/s"),
            (0.125, Dim::NONE, "0.125"),
            (9.996, Dim::NONE, "10.0"),
            (1234.0, Dim::TOKENS, "1234 tok"),
            (1e20, Dim::NONE, "1.00e20"),
            (3.0, Dim::TIME.mul(Dim::TIME), "3.00 (a quantity in s^2)"),
            (f64::INFINITY, Dim::TIME, "inf (a duration)"),
        ];
        for (base, dim, want) in cases {
            assert_eq!(format_value(*base, *dim), *want, "{base} {dim:?}");
        }
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("µs", "us"), 1);
        assert_eq!(edit_distance("mxa", "max"), 1);
        assert_eq!(closest("q", ["s", "x"].into_iter()), None);
    }

    proptest::proptest! {
        #[test]
        fn parse_quantity_never_panics(text in ".*") {
            if let Err(e) = parse_quantity(&text) {
                proptest::prop_assert!(e.offset + e.len <= text.len());
                proptest::prop_assert!(text.is_char_boundary(e.offset));
            }
        }

        #[test]
        fn parse_quantity_never_panics_on_unit_alphabet(text in "[0-9eE.:%/ a-zA-Zµ_+-]{0,24}") {
            if let Err(e) = parse_quantity(&text) {
                proptest::prop_assert!(e.offset + e.len <= text.len());
                proptest::prop_assert!(text.is_char_boundary(e.offset));
                proptest::prop_assert!(text.is_char_boundary(e.offset + e.len));
            }
        }

        #[test]
        fn quantity_display_round_trips(bits in proptest::num::u32::ANY, unit in proptest::sample::select(Unit::ALL)) {
            let quantity = q(f64::from(bits) / 64.0, Some(unit));
            proptest::prop_assert_eq!(parse_quantity(&quantity.to_string()), Ok(quantity));
        }

        #[test]
        fn format_value_never_panics(base in proptest::num::f64::ANY, t in -3i8..3, b in -3i8..3) {
            let _ = format_value(base, Dim { time: t, bytes: b, tokens: 0 });
        }
    }
}
