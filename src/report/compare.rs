//! `phasebench compare` as a text table: the rows `analysis::compare`
//! decided, formatted; this file computes no figure.

use std::fmt::Write as _;

use crate::analysis::compare::CompareOutcome;

/// The comparison as a table, its notes, and one closing line.
pub fn table(outcome: &CompareOutcome, a_name: &str, b_name: &str) -> String {
    let cells: Vec<[String; 6]> = outcome
        .rows
        .iter()
        .map(|row| {
            [
                format!("{} {}", row.run, row.metric),
                row.a_text.clone(),
                row.b_text.clone(),
                row.change_text.clone(),
                row.q_value.map_or_else(String::new, |q| format!("{q:.3}")),
                row.verdict.text().to_owned(),
            ]
        })
        .collect();
    let header = [
        "run metric".to_owned(),
        a_name.to_owned(),
        b_name.to_owned(),
        "change [95% CI]".into(),
        "q".into(),
        "verdict".into(),
    ];
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index == 0 || index == 5 {
                let _ = write!(line, "{cell:<width$}  ");
            } else {
                let _ = write!(line, "{cell:>width$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out.push('\n');
    for note in &outcome.notes {
        let _ = writeln!(out, "{note}");
    }
    let regressions = outcome.rows.iter().filter(|row| row.fails).count();
    let _ = match regressions {
        0 => writeln!(out, "no significant regression"),
        1 => writeln!(out, "FAILED: 1 regression"),
        n => writeln!(out, "FAILED: {n} regressions"),
    };
    out
}
