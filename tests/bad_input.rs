//! Invalid scenarios: every mistake is reported with its exact position, a
//! hint and exit status 2, nothing is written, and nothing panics.
//!
//! The table test runs `phasebench run` and `phasebench validate` on broken
//! scenarios and checks file, line, column, caret, message and hint; the
//! property tests feed mutated and random text to the library's parser and
//! planner; the last tests cover `--out` and `--only` mistakes.

mod common;

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use proptest::prelude::*;

/// One broken scenario and what its diagnostic must say.
struct Case {
    name: &'static str,
    yaml: String,
    line: usize,
    column: usize,
    message: &'static str,
    hint: &'static str,
}

/// Joins lines into a document; line `n` of the file is `lines[n - 1]`.
fn doc(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// A scenario with one engine (line 3) and one workload (line 7, text from column 9).
fn agents(engine: &str, workload: &str) -> String {
    doc(&[
        "scenario: a",
        "engines:",
        &format!("  {engine}"),
        "phases:",
        "  - name: p",
        "    workloads:",
        &format!("      - {workload}"),
    ])
}

/// A scenario with one `calibrate` instance `cal` and one workload `w`.
///
/// Header lines are 1–7 (`- name: w` is line 7); `body[i]` becomes line
/// `8 + i`, indented by 8 spaces, so its text starts at column 9.
fn workload(body: &[&str]) -> String {
    let mut lines: Vec<String> = WORKLOAD_HEADER.iter().map(|line| (*line).to_owned()).collect();
    lines.extend(body.iter().map(|line| format!("        {line}")));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Lines 1–7 of every [`workload`] scenario.
const WORKLOAD_HEADER: &[&str] = &[
    "scenario: t",
    "engines:",
    "  cal: { kind: calibrate }",
    "phases:",
    "  - name: p",
    "    workloads:",
    "      - name: w",
];

/// The `workload` scenario with a sleep workload, followed by `tail` lines from line 11 on.
fn with_experiment(tail: &[&str]) -> String {
    let mut text = workload(&["engine: cal", "op: sleep", "with: { duration: 1ms }"]);
    text.push_str(&doc(tail));
    text
}

/// A `matrix:` line of twelve axes of ten values: 10^12 points.
fn twelve_axes() -> String {
    let axes: Vec<String> = (0..12).map(|axis| format!("a{axis}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]")).collect();
    format!("matrix: {{ {} }}", axes.join(", "))
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let case = |name, yaml: String, line, column, message, hint| Case { name, yaml, line, column, message, hint };
    vec![
        // ---- YAML and shape ----
        case("yaml syntax error", doc(&["scenario: t", "phases:", "  - name: p", "   workloads: x", "    bad"]),
            4, 4, "did not find expected '-' indicator", "indentation"),
        case("sequence where text is expected", doc(&["scenario: t", "phases:", "  - name: [unclosed"]),
            3, 11, "invalid type: sequence, expected a string", "type"),
        case("list where a value is expected", doc(&["scenario: t", "vars: { a: [1, 2] }", "phases: []"]),
            2, 12, "invalid type: sequence, expected a single value", "type"),
        case("unclosed flow mapping", doc(&["scenario: t", "vars: { a: 1", "phases: []"]),
            3, 7, "did not find expected ',' or '}'", "`{ … }` mapping is not closed"),
        case("unclosed flow list", workload(&["engine: cal", "op: noop", "targets: [\"latency.p50 < 1ms\" }"]),
            10, 39, "did not find expected ',' or ']'", "`[ … ]` list is not closed"),
        case("unclosed quote", doc(&["scenario: t", "vars: { a: \"x }"]),
            2, 16, "unexpected end of stream", "not closed"),
        case("tab indentation", doc(&["scenario: t", "\tphases: []"]),
            2, 1, "tab character", "spaces"),
        case("wrong type for phases", doc(&["scenario: t", "phases: 3"]),
            2, 9, "invalid type", "type"),
        case("unknown top-level key", doc(&["scenario: t", "enigne: {}"]),
            2, 1, "unknown key `enigne`", "did you mean `engines`?"),
        case("unknown key in a workload", workload(&["engine: cal", "op: noop", "iteratons: 5"]),
            10, 9, "unknown key `iteratons`", "did you mean `iterations`?"),
        case("unknown key in load", workload(&["engine: cal", "op: noop", "load: { concurency: 2 }"]),
            10, 17, "unknown key `concurency`", "did you mean `concurrency`?"),
        case("unknown profiler", workload(&["engine: cal", "op: noop", "profile: heap"]),
            10, 18, "unknown profiler `heap`", "`cpu` samples call stacks"),
        case("misspelt profiler in a list", workload(&["engine: cal", "op: noop", "profile: [cpu, memroy]"]),
            10, 24, "unknown profiler `memroy`", "did you mean `memory`?"),
        case("profile as a mapping", workload(&["engine: cal", "op: noop", "profile: { cpu: true }"]),
            10, 18, "invalid type: map, expected a profiler", "type"),
        case("workload without op", workload(&["engine: cal"]),
            7, 9, "missing field `op`", "add `op:`"),
        case("scenario without a name", doc(&["phases: []"]),
            1, 1, "missing field `scenario`", "add `scenario:`"),
        case("blank scenario name", doc(&["scenario: \"  \"", "phases: []"]),
            1, 11, "the scenario name is blank", "scenario: checkout"),
        case("empty phases list", doc(&["scenario: t", "phases: []"]),
            2, 1, "no phases", "add `phases:`"),
        case("no phases key", doc(&["scenario: t", "seed: 1"]),
            1, 1, "no phases", "add `phases:`"),
        case("phase with no workloads", doc(&["scenario: t", "phases:", "  - name: p", "    workloads: []"]),
            4, 16, "phase `p` has no workloads", "add `workloads:`"),
        case("duplicate phase names", doc(&["scenario: t", "engines:", "  cal: { kind: calibrate }", "phases:",
                "  - name: p", "    workloads: [{ name: a, engine: cal, op: noop }]",
                "  - name: p", "    workloads: [{ name: b, engine: cal, op: noop }]"]),
            7, 11, "phase `p` is defined twice", "its own name"),
        case("duplicate workload names", doc(&["scenario: t", "engines:", "  cal: { kind: calibrate }", "phases:",
                "  - name: p", "    workloads:", "      - name: w", "        engine: cal", "        op: noop",
                "      - name: w", "        engine: cal", "        op: noop"]),
            10, 15, "workload `w` is defined twice", "unique"),

        // ---- engines, operations, options, parameters ----
        case("unknown engine kind", doc(&["scenario: t", "engines:", "  cal: { kind: calibrat }", "phases: []"]),
            3, 16, "unknown engine kind `calibrat`", "did you mean `calibrate`?"),
        case("undefined engine instance", workload(&["engine: cl", "op: noop"]),
            8, 17, "unknown engine `cl`", "did you mean `cal`?"),
        case("unknown op", workload(&["engine: cal", "op: slep"]),
            9, 13, "has no operation `slep`", "did you mean `sleep`?"),
        case("unknown engine option", doc(&["scenario: t", "engines:", "  cal: { kind: calibrate, fail_evry: 3 }",
                "phases:", "  - name: p", "    workloads: [{ name: w, engine: cal, op: noop }]"]),
            3, 27, "unknown option `fail_evry`", "did you mean `fail_every`?"),
        case("engine option of the wrong type", doc(&["scenario: t", "engines:",
                "  cal: { kind: calibrate, stall_for: 3KiB }", "phases:", "  - name: p",
                "    workloads: [{ name: w, engine: cal, op: noop }]"]),
            3, 38, "`stall_for`", "duration such as"),
        case("unknown op parameter", workload(&["engine: cal", "op: sleep", "with: { duration: 1ms, jitter: 2ms }"]),
            10, 32, "unknown parameter `jitter`", "`duration`"),
        case("parameter on an op that takes none", workload(&["engine: cal", "op: noop", "with: { duration: 1ms }"]),
            10, 17, "unknown parameter `duration`", "takes no parameters"),
        case("missing required op parameter", workload(&["engine: cal", "op: sleep"]),
            9, 13, "needs the parameter `duration`", "add `with: { duration: … }`"),
        case("missing parameter with other parameters", workload(&["engine: cal", "op: sleep", "with: {}"]),
            10, 15, "needs the parameter `duration`", "add `duration: …`"),
        case("parameter of the wrong dimension", workload(&["engine: cal", "op: sleep", "with: { duration: 4KiB }"]),
            10, 27, "is a size, but a duration is expected", "250us"),
        case("plain number for a duration", workload(&["engine: cal", "op: sleep", "with: { duration: 5 }"]),
            10, 27, "plain number", "duration such as"),
        case("unknown unit", workload(&["engine: cal", "op: sleep", "with: { duration: 10min }"]),
            10, 29, "unknown unit `min`", "did you mean `m`?"),
        case("unknown unit in a quoted value", workload(&["engine: cal", "op: sleep", "with: { duration: \"10 sec\" }"]),
            10, 31, "unknown unit `sec`", "`s`"),

        // ---- run length and load ----
        case("zero duration", workload(&["engine: cal", "op: noop", "duration: 0s"]),
            10, 19, "`duration` is zero", "positive time"),
        case("negative duration", workload(&["engine: cal", "op: noop", "duration: -1s"]),
            10, 19, "is negative", "zero or more"),
        case("zero iterations", workload(&["engine: cal", "op: noop", "iterations: 0"]),
            10, 21, "`iterations` is zero", "at least one"),
        case("fractional iterations", workload(&["engine: cal", "op: noop", "iterations: 2.5"]),
            10, 21, "whole number", "such as 5"),
        case("both iterations and duration", workload(&["engine: cal", "op: noop", "iterations: 5", "duration: 1s"]),
            11, 9, "both `iterations` and `duration`", "keep one"),
        case("bad warmup", workload(&["engine: cal", "op: noop", "warmup: 4KiB"]),
            10, 17, "warm-up `4KiB` is a size", "duration such as `2s`"),
        case("bad default iterations", doc(&["scenario: t", "defaults:", "  iterations: lots", "engines:",
                "  cal: { kind: calibrate }", "phases:", "  - name: p",
                "    workloads: [{ name: w, engine: cal, op: noop }]"]),
            3, 15, "`lots` is not a count", "5x"),
        case("both concurrency and rate", workload(&["engine: cal", "op: noop", "load: { concurrency: 2, rate: 5/s }"]),
            10, 33, "both `concurrency` and `rate`", "open loop"),
        case("an unknown arrival process", workload(&["engine: cal", "op: noop", "load: { rate: 5/s, arrival: weibull }"]),
            10, 37, "`weibull` is not an arrival process", "`poisson`"),
        case("a burstiness of zero", workload(&["engine: cal", "op: noop", "load: { rate: 5/s, arrival: gamma(0) }"]),
            10, 37, "`0` is not a burstiness above 0", "gamma(B)"),
        case("arrival in closed loop", workload(&["engine: cal", "op: noop", "load: { concurrency: 2, arrival: poisson }"]),
            10, 33, "`arrival` applies only to open loop", "add `rate:`"),
        case("a rate slower than one a day", workload(&["engine: cal", "op: noop", "load: { rate: 0.000001/s }"]),
            10, 23, "less than one operation a day", "at least 1/day"),
        case("max_in_flight without rate", workload(&["engine: cal", "op: noop", "load: { concurrency: 2, max_in_flight: 4 }"]),
            10, 33, "`max_in_flight` applies only to open loop", "add `rate:`"),
        case("concurrency zero", workload(&["engine: cal", "op: noop", "load: { concurrency: 0 }"]),
            10, 30, "`concurrency` is 0", "use 1 to"),
        case("rate with a duration unit", workload(&["engine: cal", "op: noop", "load: { rate: 5ms }"]),
            10, 23, "is a duration, but a rate is expected", "2000/s"),
        // ---- capacity search ----
        case("a search of both rate and concurrency",
            workload(&["engine: cal", "op: noop", "load: { search: { rate: [1/s, 2/s], concurrency: [1, 2] } }",
                "targets: [\"latency.p99 < 1ms\"]"]),
            10, 45, "varies both `rate` and `concurrency`", "varies one load"),
        case("a search of nothing", workload(&["engine: cal", "op: noop", "load: { search: { budget: 1m } }",
                "targets: [\"latency.p99 < 1ms\"]"]),
            10, 17, "`search` names no load to vary", "`rate: [10/s, 20000/s]`"),
        case("a search range with one end", workload(&["engine: cal", "op: noop", "load: { search: { rate: [10/s] } }",
                "targets: [\"latency.p99 < 1ms\"]"]),
            10, 33, "two ends, low and high; this one has 1", "rate: [10/s, 20000/s]"),
        case("a search range upside down",
            workload(&["engine: cal", "op: noop", "load: { search: { rate: [20/s, 10/s] } }",
                "targets: [\"latency.p99 < 1ms\"]"]),
            10, 33, "low end is not below its high end", "lower rate first"),
        case("a search range end that is no rate",
            workload(&["engine: cal", "op: noop", "load: { search: { rate: [10ms, 20/s] } }",
                "targets: [\"latency.p99 < 1ms\"]"]),
            10, 34, "is a duration, but a rate is expected", "2000/s"),
        case("a search beside a fixed rate",
            workload(&["engine: cal", "op: noop", "load: { rate: 5/s, search: { rate: [1/s, 2/s] } }",
                "targets: [\"latency.p99 < 1ms\"]"]),
            10, 17, "both `search` and `rate`", "chooses the rate of each probe"),
        case("arrival in a concurrency search",
            workload(&["engine: cal", "op: noop", "load: { search: { concurrency: [1, 8] }, arrival: poisson }",
                "targets: [\"latency.p99 < 1ms\"]"]),
            10, 50, "`arrival` applies only to open loop", "search a `rate` range"),
        case("a search budget of zero",
            workload(&["engine: cal", "op: noop", "load: { search: { rate: [1/s, 2/s], budget: 0s } }",
                "targets: [\"latency.p99 < 1ms\"]"]),
            10, 53, "`budget` is zero", "such as `2m`"),
        case("a search from zero workers",
            workload(&["engine: cal", "op: noop", "load: { search: { concurrency: [0, 8] } }",
                "targets: [\"latency.p99 < 1ms\"]"]),
            10, 41, "`concurrency` is 0", "use 1 to"),
        case("a search with no target to hold", workload(&["engine: cal", "op: noop", "load: { search: { rate: [1/s, 2/s] } }"]),
            10, 17, "needs a target to hold", "latency.p99 < 3ms"),
        case("capacity without a search", workload(&["engine: cal", "op: noop", "load: { rate: 5/s }",
                "targets: [\"capacity > 5/s\"]"]),
            11, 20, "`capacity` is measured only by a capacity search", "load: { search:"),

        // ---- targets ----
        case("unknown metric in a target", workload(&["engine: cal", "op: sleep", "with: { duration: 1ms }",
                "targets: [\"latncy.p99 < 1ms\"]"]),
            11, 20, "unknown metric `latncy`", "did you mean `latency`?"),
        case("target unit mismatch", workload(&["engine: cal", "op: sleep", "with: { duration: 1ms }",
                "targets: [\"latency.p99 < 4KiB\"]"]),
            11, 34, "`latency.p99` is a duration but `4KiB` is a size", "compare against a duration"),
        case("target unit mismatch in a block list", workload(&["engine: cal", "op: sleep", "with: { duration: 1ms }",
                "targets:", "  - latency.p50 < 1ms", "  - latency.p99 <   4KiB"]),
            13, 29, "`4KiB` is a size", "compare against a duration"),
        case("target missing its comparison", workload(&["engine: cal", "op: noop", "targets: [\"latency.p99 1ms\"]"]),
            10, 32, "needs a comparison", "`<`"),
        case("target with `=`", workload(&["engine: cal", "op: noop", "targets: [\"latency.p99 = 1ms\"]"]),
            10, 32, "needs a comparison", "use `==`"),
        case("target with two comparisons", workload(&["engine: cal", "op: noop", "targets: [\"latency.p99 < 1ms < 2ms\"]"]),
            10, 38, "unexpected `<`", "exactly one comparison"),
        case("unknown stat", workload(&["engine: cal", "op: noop", "targets: [\"latency.p98 < 1ms\"]"]),
            10, 28, "unknown statistic `p98`", "did you mean `p99`?"),
        case("stat on a per-run metric", workload(&["engine: cal", "op: noop", "targets: [\"throughput.p99 > 5/s\"]"]),
            10, 20, "`throughput` is one value per run", "write `throughput` alone"),
        case("open-loop metric on a closed-loop workload", workload(&["engine: cal", "op: noop",
                "targets: [\"schedule_lag.p99 < 1ms\"]"]),
            10, 20, "`schedule_lag` is recorded only in open loop", "load: { rate: 1000/s }"),
        case("metric not recorded by the op", workload(&["engine: cal", "op: noop", "targets: [\"overshoot.p99 < 1ms\"]"]),
            10, 20, "does not record `overshoot`", "it records"),
        case("target unit mismatch after a variable", doc(&["scenario: t", "vars: { m: latency }", "engines:",
                "  cal: { kind: calibrate }", "phases:", "  - name: p", "    workloads:", "      - name: w",
                "        engine: cal", "        op: noop", "        targets: [\"${m}.p99 < 4KiB\"]"]),
            11, 31, "is a size", "compare against a duration"),
        case("target error inside a variable", doc(&["scenario: t", "vars: { m: latncy }", "engines:",
                "  cal: { kind: calibrate }", "phases:", "  - name: p", "    workloads:", "      - name: w",
                "        engine: cal", "        op: noop", "        targets: [\"${m}.p99 < 1ms\"]"]),
            11, 20, "unknown metric `latncy`", "did you mean `latency`?"),

        // ---- variables and matrices ----
        case("undefined variable", doc(&["scenario: t", "vars:", "  prompt: 1ms", "engines:",
                "  cal: { kind: calibrate }", "phases:", "  - name: p", "    workloads:", "      - name: w",
                "        engine: cal", "        op: sleep", "        with: { duration: \"${promt}\" }"]),
            12, 28, "undefined variable `promt`", "did you mean `prompt`?"),
        case("undefined variable in a target", workload(&["engine: cal", "op: noop",
                "targets: [\"latency.p99 < ${limt}\"]"]),
            10, 34, "undefined variable `limt`", "vars:"),
        case("variable cycle", doc(&["scenario: t", "vars:", "  a: \"${b}\"", "  b: \"${a}\"", "engines:",
                "  cal: { kind: calibrate }", "phases:", "  - name: p",
                "    workloads: [{ name: w, engine: cal, op: noop }]"]),
            4, 7, "cycle: a -> b -> a", "plain value"),
        case("use of a variable that is itself broken", doc(&["scenario: t", "vars:", "  a: \"${b}\"",
                "  b: \"${a}\"", "engines:", "  cal: { kind: calibrate }", "phases:", "  - name: p", "    workloads:",
                "      - name: w", "        engine: cal", "        op: sleep", "        with: { duration: \"${a}\" }"]),
            13, 28, "variable `a` cannot be used", "fix `vars.a` first"),
        case("value from a variable has the wrong unit", doc(&["scenario: t", "vars: { n: 10min }", "engines:",
                "  cal: { kind: calibrate }", "phases:", "  - name: p", "    workloads:", "      - name: w",
                "        engine: cal", "        op: sleep", "        with: { duration: \"${n}\" }"]),
            11, 27, "unknown unit `min`", "did you mean `m`?"),
        case("empty matrix list", workload(&["engine: cal", "op: noop", "matrix: { c: [] }"]),
            10, 22, "matrix variable `c` has no values", "c: [1, 2, 4]"),
        case("matrix of twelve axes of ten values", workload(&["engine: cal", "op: noop", &twelve_axes()]),
            10, 9, "workload `w` makes 1000000000000 runs; a plan holds at most 10000", "use fewer matrix values"),
        case("experiment over the run limit", with_experiment(&["experiments:", "  - name: e", "    workload: w",
                "    metric: latency.p50", "    rounds: 1000",
                "    variants: { a: {}, b: {}, c: {}, d: {}, e: {}, f: {}, g: {}, h: {}, i: {}, j: {} }"]),
            12, 5, "experiment `e` makes 11000 runs after the 1 before it; a plan holds at most 10000",
            "fewer matrix values, rounds or variants"),

        // ---- experiments ----
        case("experiment naming a missing workload", with_experiment(&["experiments:", "  - name: e",
                "    workload: ww", "    metric: latency.p50", "    variants: { v: { with: { duration: 2ms } } }"]),
            13, 15, "names no workload `ww`", "did you mean `w`?"),
        case("experiment with an unknown variant engine option", with_experiment(&["experiments:", "  - name: e",
                "    workload: w", "    metric: latency.p50", "    variants: { v: { engine: { fail_evry: 2 } } }"]),
            15, 32, "unknown option `fail_evry`", "did you mean `fail_every`?"),
        case("experiment with no variants", with_experiment(&["experiments:", "  - name: e",
                "    workload: w", "    metric: latency.p50", "    variants: {}"]),
            15, 5, "has no variants", "add `variants:`"),
        case("experiment without variants key", with_experiment(&["experiments:", "  - name: e",
                "    workload: w", "    metric: latency.p50"]),
            12, 5, "has no variants", "add `variants:`"),
        case("experiment metric unknown", with_experiment(&["experiments:", "  - name: e",
                "    workload: w", "    metric: latncy.p50", "    variants: { v: { with: { duration: 2ms } } }"]),
            14, 13, "unknown metric `latncy`", "did you mean `latency`?"),
        case("experiment metric with a bad stat", with_experiment(&["experiments:", "  - name: e",
                "    workload: w", "    metric: latency.p98", "    variants: { v: { with: { duration: 2ms } } }"]),
            14, 21, "unknown statistic `p98`", "did you mean `p99`?"),
        case("bad risk", with_experiment(&["experiments:", "  - name: e", "    workload: w",
                "    metric: latency.p50", "    variants: { v: { with: { duration: 2ms } } }", "    risk: hgih"]),
            16, 11, "unknown risk `hgih`", "did you mean `high`?"),
        case("bad state", with_experiment(&["experiments:", "  - name: e", "    workload: w",
                "    metric: latency.p50", "    variants: { v: { with: { duration: 2ms } } }", "    state: shraed"]),
            16, 12, "unknown state `shraed`", "did you mean `shared`?"),
        case("complexity out of range", with_experiment(&["experiments:", "  - name: e", "    workload: w",
                "    metric: latency.p50", "    variants: { v: { with: { duration: 2ms } } }", "    complexity: 7"]),
            16, 17, "complexity `7` is not 1 to 5", "from 1"),
        case("weight not positive", with_experiment(&["experiments:", "  - name: e", "    workload: w",
                "    metric: latency.p50", "    variants: { v: { with: { duration: 2ms } } }", "    weight: -2"]),
            16, 13, "weight `-2` is not a positive number", "worth against the others"),
        case("bad effort", with_experiment(&["experiments:", "  - name: e", "    workload: w",
                "    metric: latency.p50", "    variants: { v: { with: { duration: 2ms } } }", "    effort: lots"]),
            16, 13, "effort `lots`", "`3d`"),
        case("rounds 1", with_experiment(&["experiments:", "  - name: e", "    workload: w",
                "    metric: latency.p50", "    variants: { v: { with: { duration: 2ms } } }", "    rounds: 1"]),
            16, 13, "`rounds` is 1", "at least two"),
        case("experiment part that is not a time share", with_experiment(&["experiments:", "  - name: e", "    workload: w",
                "    metric: latency.p50", "    variants: { v: { with: { duration: 2ms } } }", "    part: attention_time"]),
            16, 11, "`attention_time` is not a time share of operation `calibrate.sleep`", "reports no time shares"),
        case("variant called baseline", with_experiment(&["experiments:", "  - name: e", "    workload: w",
                "    metric: latency.p50", "    variants: { baseline: { with: { duration: 2ms } } }"]),
            15, 17, "cannot be called `baseline`", "`baseline:`"),

        // ---- agents ----
        case("zero agents", agents("crew: { kind: agents, workers: 0 }", "{ name: w, engine: crew, op: cpu }"),
            3, 34, "option `workers`: 0 is out of range", "count 1..=1024"),
        case("fanout of zero", agents("crew: { kind: agents }", "{ name: w, engine: crew, op: fanout, with: { tasks: 0 } }"),
            7, 61, "parameter `tasks`: 0 is out of range", "count 1..="),
        case("workflow names an engine not configured", agents("crew: { kind: agents }",
                "{ name: w, engine: crew, op: workflow, with: { steps: \"llm.generate -> crew.cpu\" } }"),
            7, 63, "step 1 names engine `llm`, which this scenario does not configure", "`crew`"),
        case("workflow step with an unknown operation", agents("crew: { kind: agents }",
                "{ name: w, engine: crew, op: workflow, with: { steps: \"crew.cpu -> crew.wrok\" } }"),
            7, 63, "step 2: engine kind `agents` has no operation `wrok`", "`cpu`"),
        case("nested workflow", agents("crew: { kind: agents }",
                "{ name: w, engine: crew, op: workflow, with: { steps: \"crew.workflow\" } }"),
            7, 63, "workflows do not nest", "steps here instead"),
        case("workflow without steps", agents("crew: { kind: agents }", "{ name: w, engine: crew, op: workflow }"),
            7, 38, "needs the parameter `steps`", "with: { steps"),

        // ---- codec ----
        case("codec corpus that does not exist", agents("zip: { kind: codec, corpus: /no/such/corpus }", "{ name: w, engine: zip, op: compress }"),
            3, 31, "corpus `/no/such/corpus` cannot be read: no such file or folder", "name a readable file or folder"),
        case("codec dictionary on lz4", agents("zip: { kind: codec, algorithm: lz4, dictionary: 16KiB }", "{ name: w, engine: zip, op: compress }"),
            3, 51, "lz4 takes no dictionary here", "use it with zstd"),
        case("codec dictionary without training blocks", agents("zip: { kind: codec, dictionary: 16KiB }", "{ name: w, engine: zip, op: compress }"),
            3, 16, "a dictionary needs blocks to train on", "train_share: 20%"),
        case("brotli level out of range", agents("zip: { kind: codec, algorithm: brotli, level: 15 }", "{ name: w, engine: zip, op: compress }"),
            3, 49, "brotli levels run from 1 to 11, not 15", "brotli 1–11"),
        case("level on a one-level codec", agents("zip: { kind: codec, algorithm: snappy, level: 9 }", "{ name: w, engine: zip, op: compress }"),
            3, 49, "snappy has a single level", "remove `level`"),
        case("unknown codec algorithm", agents("zip: { kind: codec, algorithm: zsdt }", "{ name: w, engine: zip, op: compress }"),
            3, 34, "`zsdt`", "did you mean `zstd`?"),
        case("codec block too small", agents("zip: { kind: codec, block_size: 16B }", "{ name: w, engine: zip, op: compress }"),
            3, 35, "blocks must be 64B to 64MiB", "64KiB"),
        case("corrupt share over 100%", agents("zip: { kind: codec }", "{ name: w, engine: zip, op: roundtrip, with: { corrupt: 150% } }"),
            7, 65, "parameter `corrupt`", "number 0..=1"),
        case("corrupt on compress", agents("zip: { kind: codec }", "{ name: w, engine: zip, op: compress, with: { corrupt: 5% } }"),
            7, 55, "`corrupt`", "operation `codec.compress`"),

        // ---- roadmap ----
        case("invalid roadmap start date", with_experiment(&["roadmap:", "  start: 2026-13-01"]),
            12, 10, "`2026-13-01` is not a date", "YYYY-MM-DD"),
        case("roadmap team zero", with_experiment(&["roadmap:", "  team: 0"]),
            12, 9, "team `0`", "at least 1"),
        case("roadmap probability out of range", with_experiment(&["roadmap:",
                "  success_probability: { low: 1.5 }"]),
            12, 31, "not a probability", "0 to 1"),
    ]
}

/// The diagnostic block (from one `error:` line to the next) that names `FILE:LINE:COL`.
fn block_at<'a>(stderr: &'a str, at: &str) -> Option<&'a str> {
    let mut starts: Vec<usize> = stderr.match_indices("error: ").map(|(i, _)| i).collect();
    starts.push(stderr.len());
    starts.windows(2).map(|w| &stderr[w[0]..w[1]]).find(|block| block.contains(&format!("--> {at}")))
}

/// Checks one case; `Err` says what is wrong with phasebench's answer.
fn check(case: &Case, bin: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("bad.yaml");
    fs::write(&file, &case.yaml).map_err(|e| e.to_string())?;
    let out = dir.path().join("out");
    let output = std::process::Command::new(bin)
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let mut problems = Vec::new();
    if output.status.code() != Some(2) {
        problems.push(format!("`run` exited with {:?}, not 2", output.status.code()));
    }
    if stderr.contains("panicked") {
        problems.push("phasebench panicked".to_owned());
    }
    if out.exists() {
        problems.push("`run` created the --out folder".to_owned());
    }
    let at = format!("{}:{}:{}", file.display(), case.line, case.column);
    match block_at(&stderr, &at) {
        None => problems.push(format!("no diagnostic at {at}")),
        Some(block) => {
            if !block.contains(case.message) {
                problems.push(format!("message lacks {:?}", case.message));
            }
            if !block.contains(&format!("{at} (at `")) {
                problems.push("no document path `(at `…`)`".to_owned());
            }
            match block.lines().find(|line| line.trim_start().starts_with("= hint: ")) {
                Some(hint) if hint.contains(case.hint) => {}
                Some(_) => problems.push(format!("hint lacks {:?}", case.hint)),
                None => problems.push("no `= hint:` line".to_owned()),
            }
            if let Err(caret) = check_caret(block, case.line, case.column) {
                problems.push(caret);
            }
        }
    }
    let validate = std::process::Command::new(bin).arg("validate").arg(&file).output().map_err(|e| e.to_string())?;
    if validate.status.code() != Some(2) {
        problems.push(format!("`validate` exited with {:?}, not 2", validate.status.code()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n--- stderr ---\n{stderr}", problems.join("; ")))
    }
}

/// The block shows line `line` of the source and a caret starting under `column`.
fn check_caret(block: &str, line: usize, column: usize) -> Result<(), String> {
    let number = line.to_string();
    let lines: Vec<&str> = block.lines().collect();
    let source_prefix = format!("{number} | ");
    let Some(at) = lines.iter().position(|l| l.starts_with(&source_prefix)) else {
        return Err(format!("source line {line} is not shown"));
    };
    let Some(caret_line) = lines.get(at + 1) else { return Err("no caret line".to_owned()) };
    let caret_prefix = format!("{} | ", " ".repeat(number.len()));
    let Some(carets) = caret_line.strip_prefix(&caret_prefix) else {
        return Err(format!("malformed caret line {caret_line:?}"));
    };
    match carets.find('^') {
        Some(offset) if carets[..offset].chars().count() + 1 == column => Ok(()),
        Some(offset) => Err(format!("caret at column {}, not {column}", carets[..offset].chars().count() + 1)),
        None => Err("caret line has no `^`".to_owned()),
    }
}

#[test]
fn broken_scenarios_are_located_and_explained() {
    let bin = assert_cmd::cargo::cargo_bin("phasebench");
    let cases = cases();
    assert!(cases.len() >= 30, "the table should cover at least 30 mistakes");
    let failures: Vec<String> =
        cases.iter().filter_map(|case| check(case, &bin).err().map(|why| format!("[{}] {why}", case.name))).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

// ---- never panic ----

const QUICKSTART: &str = include_str!("../scenarios/quickstart.yaml");

/// Fragments that tend to break the parser or the planner in interesting ways.
const TOKENS: &[&str] = &[
    "${x}",
    "${nap}",
    "${",
    "}",
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "4KiB",
    "p99",
    "<",
    " < ",
    "iterations: 0",
    "duration: 0s",
    "load: { rate: 5ms }",
    "matrix: { c: [] }",
    "\"",
    "'",
    "&a",
    "*a",
    "!!str",
    "\t",
    "-1",
    "1e400",
    "18446744073709551616",
    "µs",
    "é",
    "\n",
    "  ",
    "~",
    "null",
    "concurrency: 0",
    "rounds: 1",
    "latency.p98",
    "throughput.p99 > 1/s",
    "3:0",
    "((((",
];

/// One edit to a document's lines.
#[derive(Clone, Debug)]
enum Edit {
    DeleteLine(usize),
    DuplicateLine(usize),
    ReplaceLine(usize, usize),
    InsertToken(usize, usize),
    DeleteChar(usize),
    ReplaceChar(usize, char),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for edit in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match *edit {
            Edit::DeleteLine(i) => {
                lines.remove(i % n);
            }
            Edit::DuplicateLine(i) => {
                let line = lines[i % n].clone();
                lines.insert(i % n, line);
            }
            Edit::ReplaceLine(i, j) => lines[i % n] = lines[j % n].clone(),
            Edit::InsertToken(i, t) => {
                let line = &mut lines[i % n];
                let at = line.char_indices().map(|(k, _)| k).nth(t % (line.chars().count() + 1)).unwrap_or(line.len());
                line.insert_str(at, TOKENS[t % TOKENS.len()]);
            }
            Edit::DeleteChar(i) => {
                let line = &mut lines[i % n];
                if let Some((at, _)) = line.char_indices().nth(i % (line.chars().count() + 1)) {
                    line.remove(at);
                }
            }
            Edit::ReplaceChar(i, c) => {
                let line = &mut lines[i % n];
                if let Some((at, old)) = line.char_indices().nth(i % (line.chars().count() + 1)) {
                    line.replace_range(at..at + old.len_utf8(), &c.to_string());
                }
            }
        }
    }
    lines.join("\n")
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::DeleteLine),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Edit::ReplaceLine(i, j)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, t)| Edit::InsertToken(i, t)),
        any::<usize>().prop_map(Edit::DeleteChar),
        (any::<usize>(), prop::sample::select(vec![' ', ':', '-', '0', 'x', '{', '}', '[', '"', '#', '$', '\t']))
            .prop_map(|(i, c)| Edit::ReplaceChar(i, c)),
    ]
}

/// Parses and plans `text`; either may fail, neither may panic.
fn exercise(text: &str) {
    if let Ok(doc) = phasebench::dsl::parse("t.yaml", text.to_owned()) {
        let _ = phasebench::plan::build(&doc, &Default::default());
        let only = phasebench::plan::PlanOptions {
            smoke: true,
            only: Some("sleep".into()),
            seed: Some(1),
            ..phasebench::plan::PlanOptions::default()
        };
        let _ = phasebench::plan::build(&doc, &only);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_quickstart_never_panics(edits in prop::collection::vec(edit(), 1..8)) {
        exercise(&apply(QUICKSTART, &edits));
    }

    #[test]
    fn random_text_never_panics(text in ".{0,400}") {
        exercise(&text);
    }

    #[test]
    fn scenario_alphabet_never_panics(text in "(scenario|phases|workloads|engine|op|name|with|targets|vars|[a-z ]|[:\\-\\[\\]{}$\"'\n]|  )*") {
        exercise(&text);
    }
}

// ---- bounded validation ----

/// How long planning any one scenario may take before the test calls it a hang.
/// A hang detector, not a speed requirement: a refused scenario takes milliseconds.
const HANG: std::time::Duration = std::time::Duration::from_secs(20);

/// A scenario whose sizes multiply: a matrix of `axes`, an experiment of
/// `variants` arms over `rounds`, `iterations`, warm-up and concurrency as
/// written, and `depth` variables each doubling the one before.
fn hostile(axes: &[usize], rounds: &str, variants: usize, iterations: &str, concurrency: &str, depth: usize) -> String {
    let matrix: Vec<String> =
        axes.iter().enumerate().map(|(axis, &values)| format!("m{axis}: [{}]", values_list(values))).collect();
    let mut vars = vec!["  v0: \"xxxxxxxxxxxxxxxx\"".to_owned()];
    vars.extend((1..=depth).map(|step| format!("  v{step}: \"${{v{0}}}${{v{0}}}\"", step - 1)));
    let arms: Vec<String> = (0..variants).map(|arm| format!("x{arm}: {{}}")).collect();
    format!(
        "scenario: hostile
vars:
{vars}
engines: {{ cal: {{ kind: calibrate }} }}
phases:
  - name: p
    workloads:
      - name: w
        engine: cal
        op: noop
        iterations: {iterations}
        warmup: {iterations}
        load: {{ concurrency: {concurrency} }}
        matrix: {{ {matrix} }}
experiments:
  - name: e
    workload: w
    metric: latency.p50
    rounds: {rounds}
    variants: {{ {arms} }}
",
        vars = vars.join("\n"),
        matrix = matrix.join(", "),
        arms = arms.join(", "),
    )
}

fn values_list(values: usize) -> String {
    (0..values).map(|value| value.to_string()).collect::<Vec<_>>().join(", ")
}

/// Plans `text` on another thread; fails if that panics or has not returned within [`HANG`].
fn plans_in_bounded_time(text: String) -> Result<(), TestCaseError> {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok(doc) = phasebench::dsl::parse("hostile.yaml", text) {
            let _ = phasebench::plan::build(&doc, &Default::default());
        }
        let _ = done.send(());
    });
    match finished.recv_timeout(HANG) {
        Ok(()) => Ok(()),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            Err(TestCaseError::fail(format!("planning ran past {HANG:?}")))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(TestCaseError::fail("planning panicked")),
    }
}

fn huge_count() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["1", "2", "1000", "1000000", "18446744073709551615", "1e30", "99999999999999999999x"])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_sizes_are_planned_or_refused_in_bounded_time(
        axes in prop::collection::vec(1_usize..40, 0..16),
        rounds in huge_count(),
        variants in 1_usize..40,
        iterations in huge_count(),
        concurrency in huge_count(),
        depth in 0_usize..48,
    ) {
        plans_in_bounded_time(hostile(&axes, rounds, variants, iterations, concurrency, depth))?;
    }
}

#[test]
fn the_run_limit_is_checked_before_expanding() {
    let text = hostile(&[10; 12], "2", 1, "1", "1", 0);
    let doc = phasebench::dsl::parse("hostile.yaml", text).expect("parses");
    let started = std::time::Instant::now();
    let errors = phasebench::plan::build(&doc, &Default::default()).expect_err("10^12 runs are refused");
    assert!(started.elapsed() < HANG);
    let messages: Vec<&str> = errors.0.iter().map(|error| error.message.as_str()).collect();
    assert_eq!(messages, ["workload `w` makes 1000000000000 runs; a plan holds at most 10000"]);
}

#[test]
fn quickstart_itself_plans() {
    let doc = phasebench::dsl::parse("q.yaml", QUICKSTART.to_owned()).expect("quickstart parses");
    assert!(phasebench::plan::build(&doc, &Default::default()).is_ok());
}

// ---- command-line mistakes ----

#[test]
fn existing_out_folder_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    fs::create_dir(&out).expect("create out");
    fs::write(out.join("keep.txt"), "precious").expect("write keep");
    Command::cargo_bin("phasebench")
        .expect("binary")
        .args(["run", "scenarios/quickstart.yaml", "--smoke", "--quiet", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("hint:"));
    let entries: Vec<_> = fs::read_dir(&out).expect("read out").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("keep.txt")]);
    assert_eq!(fs::read_to_string(out.join("keep.txt")).expect("read keep"), "precious");
}

#[test]
fn only_with_an_unknown_name_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    Command::cargo_bin("phasebench")
        .expect("binary")
        .args(["run", "scenarios/quickstart.yaml", "--smoke", "--only", "nosuchname", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nosuchname").and(predicate::str::contains("= hint:")));
    assert!(!out.exists(), "no run folder for invalid input");
    Command::cargo_bin("phasebench")
        .expect("binary")
        .args(["run", "scenarios/quickstart.yaml", "--smoke", "--only", "sleap", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean `sleep`?"));
    assert!(!out.exists(), "no run folder for invalid input");
}

// ---- the JSON Schema ----

/// Broken scenarios no JSON Schema can catch, and why: a schema checks the
/// shape of one file, and these are mistakes of meaning that the plan finds
/// by resolving names, variables and units across it.
const BEYOND_THE_SCHEMA: &[(&str, &str)] = &[
    ("duplicate phase names", "a schema cannot ask that a field be unique across a list"),
    ("duplicate workload names", "a schema cannot ask that a field be unique across a list"),
    ("undefined engine instance", "`engine:` names a key of `engines`, another part of the file"),
    ("a rate slower than one a day", "a pattern cannot compare the size of a number in text"),
    ("a search range upside down", "a schema cannot compare one item of a list with another"),
    ("capacity without a search", "the load may come from `defaults`, another part of the file"),
    ("target unit mismatch", "units are checked by the expression's dimensions"),
    ("target unit mismatch in a block list", "units are checked by the expression's dimensions"),
    ("open-loop metric on a closed-loop workload", "the load may come from `defaults`"),
    ("metric not recorded by the op", "the operation's kind is the instance's, another part of the file"),
    ("target unit mismatch after a variable", "variables are resolved per run"),
    ("target error inside a variable", "variables are resolved per run"),
    ("undefined variable", "variables are resolved per run"),
    ("undefined variable in a target", "variables are resolved per run"),
    ("variable cycle", "variables are resolved per run"),
    ("use of a variable that is itself broken", "variables are resolved per run"),
    ("value from a variable has the wrong unit", "variables are resolved per run"),
    ("matrix of twelve axes of ten values", "the number of runs is a product over the matrix"),
    ("experiment over the run limit", "the number of runs is a product over the matrix and rounds"),
    ("experiment naming a missing workload", "`workload:` names a workload elsewhere in the file"),
    ("experiment with an unknown variant engine option", "the options are those of the workload's engine kind"),
    ("experiment part that is not a time share", "the time shares are those of the workload's operation"),
    ("workflow names an engine not configured", "the steps name instances of `engines`"),
    ("workflow step with an unknown operation", "the steps' operations are those of the instances' kinds"),
    ("nested workflow", "the steps' operations are those of the instances' kinds"),
    ("codec corpus that does not exist", "a file on disk"),
    ("codec dictionary on lz4", "the codec engine checks its options together"),
    ("codec dictionary without training blocks", "the codec engine checks its options together"),
    ("brotli level out of range", "each codec has its own range of levels"),
    ("level on a one-level codec", "each codec has its own range of levels"),
    ("codec block too small", "the codec engine checks its block size"),
];

/// Every case of the table that a schema can express is rejected by an
/// independent validator (check-jsonschema) with the committed schema; the
/// ones it cannot are listed above, and each of those really passes it, so
/// the list cannot hide a case the schema should catch.
#[test]
fn the_schema_rejects_every_broken_scenario_it_can_express() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    let files: Vec<std::path::PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(index, case)| {
            let path = dir.path().join(format!("case-{index:03}.yaml"));
            fs::write(&path, &case.yaml).unwrap();
            path
        })
        .collect();
    let Some(rejected) = common::check_jsonschema(&files) else { return };
    let mut wrong = Vec::new();
    for (case, file) in cases.iter().zip(&files) {
        let beyond = BEYOND_THE_SCHEMA.iter().any(|(name, _)| *name == case.name);
        match (rejected.contains(file), beyond) {
            (false, false) => wrong.push(format!("accepted by the schema: [{}]\n{}", case.name, case.yaml)),
            (true, true) => wrong.push(format!("listed as beyond the schema but rejected by it: [{}]", case.name)),
            _ => {}
        }
    }
    for (name, _) in BEYOND_THE_SCHEMA {
        assert!(cases.iter().any(|case| case.name == *name), "no case `{name}` in the table");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
