//! The history page (`phasebench history report`): every series with its
//! trend chart, its points and its change points told as sentences, then
//! the roadmap projections held against what landed; one self-contained
//! HTML page from `templates/history.html`.
//!
//! The page is handed the series, the change points `history::changes`
//! found in each and the projections the history checked; it formats them
//! and decides nothing.

use serde::Serialize;

use super::charts;
use super::render::{self, RenderError};
use crate::analysis::changepoint::Settings;
use crate::history::{Change, Point, Projection, Series, Test};
use crate::metric::Better;
use crate::quantity::format_value;

/// What the page shows.
pub struct Inputs<'a> {
    /// Where the history is, as the user named it.
    pub location: &'a str,
    /// The filters that chose the series (`scenario quickstart, run sleep`), if any.
    pub selection: Option<&'a str>,
    /// Each series with the change points found in it.
    pub series: &'a [(Series, Vec<Change>)],
    /// The projections checked.
    pub projections: &'a [Projection],
    /// The settings the change points were found with.
    pub settings: &'a Settings,
}

/// The page's context: `h` in the template.
#[derive(Serialize)]
struct Page {
    location: String,
    selection: Option<String>,
    p_value: f64,
    permutations: usize,
    version: &'static str,
    series: Vec<SeriesView>,
    changes: usize,
    projections: Vec<ProjectionRow>,
}

#[derive(Serialize)]
struct SeriesView {
    anchor: String,
    heading: String,
    better: &'static str,
    distribution: bool,
    value_name: &'static str,
    chart: Option<String>,
    points: Vec<PointRow>,
    changes: Vec<ChangeRow>,
}

#[derive(Serialize)]
struct PointRow {
    campaign: i64,
    started: String,
    commit: String,
    value: String,
    p99: Option<String>,
    marks: Vec<Mark>,
}

#[derive(Serialize)]
struct Mark {
    text: String,
    /// `regressed`, `improved` or `tag`, the CSS class it is shown with.
    class: &'static str,
}

#[derive(Serialize)]
struct ChangeRow {
    campaign: i64,
    label: String,
    class: &'static str,
    sentence: String,
    commits: String,
}

#[derive(Serialize)]
struct ProjectionRow {
    scenario: String,
    candidate: String,
    before: Option<i64>,
    after: i64,
    figure: String,
    projected: Option<String>,
    realized: Option<String>,
    interval: String,
    ratio: Option<String>,
    why: Option<String>,
}

/// The history page as HTML.
pub fn page(inputs: &Inputs<'_>) -> Result<String, RenderError> {
    let series: Vec<SeriesView> =
        inputs.series.iter().enumerate().map(|(index, (series, changes))| view(index, series, changes)).collect();
    let page = Page {
        location: inputs.location.to_owned(),
        selection: inputs.selection.map(str::to_owned),
        p_value: inputs.settings.p_value,
        permutations: inputs.settings.permutations,
        version: env!("CARGO_PKG_VERSION"),
        changes: series.iter().map(|one| one.changes.len()).sum(),
        series,
        projections: inputs.projections.iter().map(projection_row).collect(),
    };
    render::history_page(&page)
}

fn view(index: usize, series: &Series, changes: &[Change]) -> SeriesView {
    let distribution = series.points.iter().any(|point| point.p99.is_some());
    let value_name = if distribution { "median" } else { "value" };
    SeriesView {
        anchor: format!("series-{}", index + 1),
        heading: format!("{} / {} / {}", series.key.scenario, series.key.run, series.key.metric),
        better: match series.better {
            Better::Lower => "lower",
            Better::Higher => "higher",
        },
        distribution,
        value_name,
        chart: charts::trend(series, changes).map(|chart| chart.svg),
        points: series
            .points
            .iter()
            .enumerate()
            .map(|(index, point)| point_row(series, index, point, changes))
            .collect(),
        changes: changes.iter().map(|change| change_row(change, value_name)).collect(),
    }
}

fn point_row(series: &Series, index: usize, point: &Point, changes: &[Change]) -> PointRow {
    let marks = changes
        .iter()
        .filter(|change| change.index == index)
        .map(|change| Mark { text: format!("◆ {}", charts::change_label(change)), class: change_class(change) })
        .chain(point.tags.iter().map(|tag| Mark { text: tag.clone(), class: "tag" }))
        .collect();
    PointRow {
        campaign: point.campaign,
        started: started(&point.started_at),
        commit: short_commit(&point.commit),
        value: format_value(point.value, series.dim),
        p99: point.p99.map(|p99| format_value(p99, series.dim)),
        marks,
    }
}

fn change_class(change: &Change) -> &'static str {
    if change.regression {
        "regressed"
    } else {
        "improved"
    }
}

/// A change point as a sentence: where it starts, what moved and by how
/// much, for the worse or the better, and the test that found it.
fn change_row(change: &Change, value_name: &str) -> ChangeRow {
    let figure = match change.test {
        Test::Median => value_name,
        Test::Distribution => "p99",
    };
    let moved = if change.change > 0.0 {
        format!("rose by {:.1}%", change.change * 100.0)
    } else if change.change < 0.0 {
        format!("fell by {:.1}%", -change.change * 100.0)
    } else {
        "did not move".to_owned()
    };
    let verdict = match (change.change == 0.0, change.regression) {
        (true, _) => "",
        (false, true) => ", for the worse",
        (false, false) => ", for the better",
    };
    let sentence = format!(
        "From campaign {} on, the {figure} {moved}{verdict} ({} test, {}).",
        change.campaign,
        charts::test_name(change.test),
        charts::p_text(change.p_value)
    );
    let commits = match &change.from_commit {
        Some(from) => format!("Commits {}..{}", short_commit(from), short_commit(&change.commit)),
        None => format!("Both sides were measured by commit {}", short_commit(&change.commit)),
    };
    ChangeRow {
        campaign: change.campaign,
        label: charts::change_label(change),
        class: change_class(change),
        sentence,
        commits,
    }
}

fn projection_row(projection: &Projection) -> ProjectionRow {
    let percent = |value: f64| format!("{:+.1}%", value * 100.0);
    ProjectionRow {
        scenario: projection.scenario.clone(),
        candidate: match &projection.variant {
            Some(variant) => format!("{}: {variant}", projection.experiment),
            None => projection.experiment.clone(),
        },
        before: projection.before,
        after: projection.after,
        figure: projection.figure.clone(),
        projected: projection.projected.map(percent),
        realized: projection.realized.map(percent),
        interval: realized_interval(projection),
        ratio: projection.ratio().map(|ratio| format!("{ratio:.2}")),
        why: projection.why.clone(),
    }
}

/// The 95% interval of a projection's realized gain, as its column
/// shows it.
pub fn realized_interval(projection: &Projection) -> String {
    let percent = |value: f64| format!("{:+.1}%", value * 100.0);
    match (projection.realized, projection.realized_interval) {
        (Some(_), Some((low, high))) => format!("{} to {}", percent(low), percent(high)),
        (Some(_), None) => "– (one value each side)".to_string(),
        (None, _) => "–".to_string(),
    }
}

/// A commit as a column shows it: 12 hex digits, `*` when the tree had
/// changes beside it.
pub fn short_commit(commit: &str) -> String {
    let (id, modified) = match commit.strip_suffix("-modified") {
        Some(id) => (id, "*"),
        None => (commit, ""),
    };
    format!("{}{modified}", id.chars().take(12).collect::<String>())
}

/// When a campaign started, in UTC to the second; the stored text when it
/// is not RFC 3339.
pub fn started(at: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|at| at.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| at.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text between `from` and the first `to` after it.
    fn between<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
        let start = text.find(from).unwrap_or_else(|| panic!("no `{from}`"));
        let end = text[start..].find(to).unwrap_or_else(|| panic!("no `{to}` after `{from}`"));
        &text[start..start + end]
    }

    #[test]
    fn the_page_looks_like_the_run_report() {
        let report = include_str!("../../templates/report.html");
        let history = render::HISTORY.1;
        assert_eq!(between(history, "<style>", "</style>"), between(report, "<style>", "</style>"));
        let policy = "<meta http-equiv=\"Content-Security-Policy\"";
        assert_eq!(between(history, policy, ">"), between(report, policy, ">"));
    }

    #[test]
    fn commits_and_starts_read_as_columns() {
        let cases = [
            ("9bf0b19187d5a1b2c3", "9bf0b19187d5"),
            ("9bf0b19187d5a1b2c3-modified", "9bf0b19187d5*"),
            ("unknown", "unknown"),
        ];
        for (commit, shown) in cases {
            assert_eq!(short_commit(commit), shown);
        }
        assert_eq!(started("2026-01-05T10:00:00.123+02:00"), "2026-01-05 08:00:00");
        assert_eq!(started("yesterday"), "yesterday");
    }
}
