use super::parse::NEEDS_COMPARISON;
use super::*;
use crate::quantity::{Dim, ParseError, Quantity, Unit};
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
