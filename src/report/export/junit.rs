//! JUnit XML: one test case per target, so CI systems show targets as tests.

use std::fmt::Write as _;

use crate::analysis::{Analysis, TargetRow};
use crate::report::charts::xml;

use crate::report::format::FormatDecl;

/// `--format junit`.
pub static FORMAT: FormatDecl = FormatDecl { name: "junit", help: "JUnit XML, one test case per target", render: |inputs| Ok(junit(inputs.analysis)) };

/// JUnit XML: one test suite per phase, one test case per target. A target
/// fails its test case exactly when it fails the run's verdict: missed,
/// unknown, or not judged outside a smoke run; a smoke run's targets are
/// skipped.
pub fn junit(analysis: &Analysis) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failed = |t: &TargetRow| !analysis.smoke && !t.status.held();
    let failures = analysis.targets.iter().filter(|t| failed(t)).count();
    let _ = writeln!(
        out,
        r#"<testsuites name="{}" tests="{}" failures="{failures}">"#,
        xml(&analysis.scenario.name),
        analysis.targets.len()
    );
    for phase in &analysis.phases {
        let targets: Vec<&TargetRow> = analysis.targets.iter().filter(|t| t.phase == phase.name).collect();
        let _ = writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{}">"#,
            xml(&phase.name),
            targets.len(),
            targets.iter().filter(|t| failed(t)).count()
        );
        for target in targets {
            let _ = write!(out, r#"    <testcase classname="{}" name="{}""#, xml(&target.run), xml(&target.target));
            if target.status.held() {
                out.push_str("/>\n");
            } else if failed(target) {
                let message = format!(
                    "{}: measured {}, limit {}{}",
                    target.status_text,
                    target.measured,
                    target.limit,
                    target.why.as_ref().map(|why| format!(" ({why})")).unwrap_or_default()
                );
                let _ = writeln!(out, r#"><failure message="{}"/></testcase>"#, xml(&message));
            } else {
                let why = target.why.as_deref().unwrap_or("smoke run");
                let _ = writeln!(out, r#"><skipped message="{}: {}"/></testcase>"#, target.status_text, xml(why));
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
