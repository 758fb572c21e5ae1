//! `phasebench list`: the engine catalog, rendered from the declarations.

use std::fmt::Write as _;

use phasebench::engines::catalog::{
    MetricDecl, OptionDecl, HARNESS_METRICS, MEMORY_METRICS, OPEN_LOOP_METRICS, RSS_METRICS, SLO_METRICS,
};
use phasebench::engines::{registry, MetricKind};

/// The catalog as text.
pub fn render() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Every workload records:");
    metrics(&mut out, HARNESS_METRICS.iter(), "  ");
    let _ = writeln!(out, "\nOpen-loop workloads (`load: {{ rate: … }}`) also record:");
    metrics(&mut out, OPEN_LOOP_METRICS.iter(), "  ");
    let _ = writeln!(
        out,
        "\nWorkloads with an `slo:` (bounds on per-operation metrics, such as `{{ ttft: 200ms }}`) also record:"
    );
    metrics(&mut out, SLO_METRICS.iter(), "  ");
    let _ = writeln!(
        out,
        "\nWith `profile: cpu` a workload's call stacks are sampled for a flame graph; with `profile: memory` or `rss`:"
    );
    metrics(&mut out, MEMORY_METRICS.iter().chain(RSS_METRICS), "  ");
    for kind in registry() {
        let decl = kind.decl();
        let _ = writeln!(out, "\nengine `{}`: {}", decl.kind, decl.doc);
        if !decl.options.is_empty() {
            let _ = writeln!(out, "  options:");
            options(&mut out, decl.options, "    ");
        }
        let _ = writeln!(out, "  operations:");
        for op in decl.ops {
            let _ = writeln!(out, "    {}: {}", op.name, op.doc);
            if !op.params.is_empty() {
                let _ = writeln!(out, "      with:");
                options(&mut out, op.params, "        ");
            }
            if !op.metrics.is_empty() {
                let _ = writeln!(out, "      records: {}", op.metrics.join(", "));
            }
        }
        if !decl.metrics.is_empty() {
            let _ = writeln!(out, "  metrics:");
            metrics(&mut out, decl.metrics.iter(), "    ");
        }
    }
    out
}

fn options(out: &mut String, decls: &[OptionDecl], indent: &str) {
    for option in decls {
        let default = option.default.map_or_else(|| "required".to_owned(), |d| format!("default {d}"));
        let _ =
            writeln!(out, "{indent}{:<14} {:<28} {:<16} {}", option.name, option.ty.describe(), default, option.doc);
    }
}

fn metrics<'a>(out: &mut String, decls: impl Iterator<Item = &'a MetricDecl>, indent: &str) {
    let decls: Vec<&MetricDecl> = decls.collect();
    let width = decls.iter().map(|metric| metric.name.len()).max().unwrap_or(0).max(14);
    for metric in decls {
        let kind = match metric.kind {
            MetricKind::Distribution => "per operation",
            MetricKind::Scalar => "per run",
        };
        let part =
            metric.part_of.map(|whole| format!(" (a part of `{whole}`: reports show its share)")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{indent}{:<width$} {:<22} {:<14} {}{part}",
            metric.name,
            metric.dim.describe(),
            kind,
            metric.doc
        );
    }
}
