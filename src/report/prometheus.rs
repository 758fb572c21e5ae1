//! The live figures of a campaign in the Prometheus text exposition format
//! (version 0.0.4), for `run --metrics-addr`: per run, counters of the
//! measured operations that succeeded, failed and were dropped, a gauge of
//! whether it is still measuring, and the latency as a classic histogram
//! (buckets of [`BUCKETS`], not a native histogram, which the text format
//! cannot carry).

use std::fmt::Write as _;

use crate::results::live::{LiveSnapshot, BUCKETS};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A counter: its name, its help line and its value in a run.
type Counter = (&'static str, &'static str, fn(&LiveSnapshot) -> u64);

/// The exposition of `runs` of scenario `scenario`.
pub fn exposition(scenario: &str, runs: &[LiveSnapshot]) -> String {
    let mut out = String::new();
    let counters: [Counter; 3] = [
        ("phasebench_operations_total", "Measured operations that succeeded.", |run| run.operations),
        ("phasebench_errors_total", "Measured operations that failed.", |run| run.errors),
        ("phasebench_dropped_total", "Open loop: operations still queued at the drain deadline, never run.", |run| {
            run.dropped
        }),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for run in runs {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(scenario, run), value(run));
        }
    }
    let _ = writeln!(out, "# HELP phasebench_run_active 1 while the run measures, 0 once it has finished.");
    let _ = writeln!(out, "# TYPE phasebench_run_active gauge");
    for run in runs {
        let _ = writeln!(out, "phasebench_run_active{{{}}} {}", labels(scenario, run), u8::from(run.active));
    }
    let name = "phasebench_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Latency of measured operations, from the intended start in open loop (dropped ones at \
         their wait), in classic buckets.\n# TYPE {name} histogram"
    );
    for run in runs {
        let labels = labels(scenario, run);
        for (bound, count) in BUCKETS.iter().zip(&run.cumulative) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{}\"}} {count}", float(*bound));
        }
        let total = run.cumulative.last().copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", float(run.latency_sum));
        let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
    }
    out
}

/// The labels naming a run.
fn labels(scenario: &str, run: &LiveSnapshot) -> String {
    let mut text = format!(
        "scenario=\"{}\",run=\"{}\",phase=\"{}\",workload=\"{}\"",
        escape(scenario),
        escape(&run.id),
        escape(&run.phase),
        escape(&run.workload)
    );
    if let Some(pass) = run.pass {
        let _ = write!(text, ",pass=\"{pass}\"");
    }
    text
}

/// A label value as the format writes it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A number as Go's `strconv` would read it back exactly.
fn float(value: f64) -> String {
    if value.is_finite() {
        format!("{value:?}")
    } else if value > 0.0 {
        "+Inf".into()
    } else {
        "NaN".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::live::Live;
    use std::time::Duration;

    #[test]
    fn a_run_reads_as_counters_a_gauge_and_a_histogram() {
        let live = Live::new("quick \"start\"");
        let run = live.begin("p:w", "p", "w", Some(2));
        run.success(Duration::from_micros(700));
        run.success(Duration::from_millis(2));
        run.failure();
        let text = exposition(&live.scenario, &live.snapshot());
        let labels = r#"scenario="quick \"start\"",run="p:w",phase="p",workload="w",pass="2""#;
        assert!(text.contains(&format!("phasebench_operations_total{{{labels}}} 2\n")), "{text}");
        assert!(text.contains(&format!("phasebench_errors_total{{{labels}}} 1\n")), "{text}");
        assert!(text.contains(&format!("phasebench_run_active{{{labels}}} 1\n")), "{text}");
        assert!(text.contains(&format!("phasebench_latency_seconds_bucket{{{labels},le=\"0.001\"}} 1\n")), "{text}");
        assert!(text.contains(&format!("phasebench_latency_seconds_bucket{{{labels},le=\"0.0025\"}} 2\n")), "{text}");
        assert!(text.contains(&format!("phasebench_latency_seconds_bucket{{{labels},le=\"+Inf\"}} 2\n")), "{text}");
        assert!(text.contains(&format!("phasebench_latency_seconds_count{{{labels}}} 2\n")), "{text}");
        assert!(text.contains("# TYPE phasebench_latency_seconds histogram\n"));
        // Every sample line is `name{labels} value`.
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
