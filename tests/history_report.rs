//! `phasebench history report`: the HTML page of a history built from real
//! runs, parsed rather than searched as text. A slowdown is marked where it
//! starts, with the commits on either side; a hostile scenario stays text;
//! an empty history says so; a landed candidate shows in the projections.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{phasebench, status, Scenario};
use phasebench::report::history::short_commit;
use rusqlite::Connection;
use scraper::{ElementRef, Html, Selector};

/// A short sleep whose length is a `--var`: a slowdown from some campaign on.
const STEP: &str = "
scenario: history-step
engines: { cal: { kind: calibrate } }
vars: { d: 300us }
phases:
  - name: p
    workloads:
      - name: nap
        engine: cal
        op: sleep
        with: { duration: \"${d}\" }
        warmup: 10x
        iterations: 100
";

/// The commit the later campaigns are rewritten to, as if a new build measured them.
const LATER_COMMIT: &str = "feedc0ffee0123456789abcdef0123456789abcd";

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn history(db: &Path, args: &[&str]) -> std::process::Output {
    phasebench().arg("history").args(args).arg("--history").arg(db).output().expect("phasebench history")
}

/// Runs `history report` into `page` and parses what it wrote.
fn report(db: &Path, page: &Path, filters: &[&str]) -> Html {
    let mut args = vec!["report", "--out", page.to_str().unwrap()];
    args.extend(filters);
    let output = history(db, &args);
    assert_eq!(status(&output), 0, "{}", text(&output));
    assert!(text(&output).contains(&format!("history: wrote {}", page.display())), "{}", text(&output));
    Html::parse_document(&std::fs::read_to_string(page).expect("the page was written"))
}

/// Runs the scenario with `--no-history` into `name`, with `extra` arguments.
fn run(scenario: &Scenario, name: &str, extra: &[&str]) -> PathBuf {
    let out = scenario.dir.path().join(name);
    let output = phasebench()
        .arg("run")
        .arg(&scenario.file)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .arg("--no-history")
        .args(extra)
        .output()
        .expect("run");
    assert!(status(&output) <= 1, "{}", text(&output));
    out
}

fn select<'a>(element: ElementRef<'a>, selector: &str) -> Vec<ElementRef<'a>> {
    element.select(&Selector::parse(selector).expect("selector")).collect()
}

fn text_of(element: ElementRef<'_>) -> String {
    element.text().collect::<String>().trim().to_owned()
}

/// The section of the series headed `heading`.
fn section<'a>(page: &'a Html, heading: &str) -> ElementRef<'a> {
    let sections = select(page.root_element(), "section.series");
    let headings: Vec<String> = sections.iter().map(|s| text_of(select(*s, "h2")[0])).collect();
    sections
        .into_iter()
        .find(|s| text_of(select(*s, "h2")[0]) == heading)
        .unwrap_or_else(|| panic!("no series `{heading}` among {headings:?}"))
}

/// Each row of a table as its cells' text.
fn rows(table: ElementRef<'_>) -> Vec<Vec<String>> {
    select(table, "tr").into_iter().map(|row| select(row, "td").into_iter().map(text_of).collect()).collect()
}

#[test]
fn a_slowdown_is_marked_where_it_starts_with_the_commits_on_either_side() {
    let scenario = Scenario::new(STEP);
    // Ten campaigns at 300 µs, then six at 900 µs measured by another commit.
    let folders: Vec<PathBuf> = (0..16)
        .map(|i| {
            let duration = if i < 10 { "300us" } else { "900us" };
            run(&scenario, &format!("run-{i:02}"), &["--var", &format!("d={duration}")])
        })
        .collect();
    let mut first_commit = String::new();
    for (i, folder) in folders.iter().enumerate() {
        let file = folder.join("results.json");
        let mut results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        if i == 0 {
            first_commit = results["phasebench"]["commit"].as_str().unwrap().to_owned();
        }
        if i >= 10 {
            results["phasebench"]["commit"] = LATER_COMMIT.into();
            std::fs::write(&file, serde_json::to_vec(&results).unwrap()).unwrap();
        }
    }
    let db = scenario.dir.path().join("history.sqlite");
    let mut import = vec!["import"];
    import.extend(folders.iter().map(|folder| folder.to_str().unwrap()));
    let output = history(&db, &import);
    assert_eq!(status(&output), 0, "{}", text(&output));

    let page = report(&db, &scenario.dir.path().join("pages/history.html"), &[]);

    // One section with one chart per series the history holds.
    let connection = Connection::open(&db).unwrap();
    let mut statement =
        connection.prepare("SELECT DISTINCT r.series, m.name FROM metrics m JOIN runs r ON m.run = r.id").unwrap();
    let stored: BTreeSet<String> = statement
        .query_map([], |row| Ok(format!("history-step / {} / {}", row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let sections = select(page.root_element(), "section.series");
    let shown: BTreeSet<String> = sections.iter().map(|s| text_of(select(*s, "h2")[0])).collect();
    assert_eq!(shown, stored);
    assert!(stored.len() > 1, "{stored:?}");
    for one in &sections {
        assert_eq!(select(*one, "figure svg").len(), 1, "{}", text_of(select(*one, "h2")[0]));
    }

    let latency = section(&page, "history-step / nap / latency");
    // Each campaign is a row, with its short commit.
    let points = rows(select(latency, "table.points")[0]);
    let points: Vec<&Vec<String>> = points.iter().filter(|cells| !cells.is_empty()).collect();
    assert_eq!(points.len(), 16);
    assert_eq!(points[0][2], short_commit(&first_commit));
    assert_eq!(points[15][2], "feedc0ffee01");
    // The slowdown is a median-test change for the worse at campaign 11,
    // drawn there in red (the sleeps before it may also drift by a few
    // percent, which the test may mark as well).
    let marked = select(latency, r#"svg line.change.regression[data-test="median"][data-campaign="11"]"#);
    assert_eq!(marked.len(), 1, "{}", latency.html());
    assert_eq!(marked[0].value().attr("stroke"), Some("#d62728"));
    let labels: Vec<String> = select(latency, "svg text.change-label").into_iter().map(text_of).collect();
    let (change, p_value) = labels
        .iter()
        .find_map(|label| label.strip_prefix("median test +")?.split_once("%, "))
        .unwrap_or_else(|| panic!("no median test label: {labels:?}"));
    // 300 µs to 900 µs is about +200%, far past any drift.
    assert!(change.parse::<f64>().unwrap() > 100.0, "{labels:?}");
    let p_value: f64 = match p_value.strip_prefix("p = ") {
        Some(p) => p.parse().unwrap(),
        None => p_value.strip_prefix("p < ").unwrap_or_else(|| panic!("{labels:?}")).parse().unwrap(),
    };
    assert!(p_value <= 0.05, "{labels:?}");
    assert!(points[10][5].contains("◆ median test +"), "{:?}", points[10]);
    // Told as a sentence, with the commits between.
    let sentences: Vec<String> = select(latency, "ul.changes li.regressed").into_iter().map(text_of).collect();
    let sentence = sentences
        .iter()
        .find(|s| s.starts_with("From campaign 11 on, the median rose by"))
        .unwrap_or_else(|| panic!("{sentences:?}"));
    let commits = format!("Commits {}..feedc0ffee01.", short_commit(&first_commit));
    assert!(sentence.contains("(median test, p ") && sentence.ends_with(&commits), "{sentence}");
    // And listed at the top, linked to its series.
    let summary = select(page.root_element(), "table")[1];
    let linked = select(summary, "tr")
        .into_iter()
        .find(|row| text_of(*row).starts_with("history-step / nap / latency11median test +"))
        .unwrap_or_else(|| panic!("{}", summary.html()));
    let anchor = select(linked, "a")[0].value().attr("href").unwrap().trim_start_matches('#').to_owned();
    assert_eq!(latency.value().attr("id"), Some(anchor.as_str()));

    // A filter narrows the page to the series it names.
    let page = report(&db, &scenario.dir.path().join("latency.html"), &["--metric", "latency"]);
    let headings: Vec<String> = select(page.root_element(), "section.series h2").into_iter().map(text_of).collect();
    assert_eq!(headings, ["history-step / nap / latency"]);
}

#[test]
fn a_hostile_scenario_stays_text() {
    let scenario = Scenario::new(
        "scenario: \"<script>alert(1)</script><img src=x onerror=alert(2)>\"
description: \"<img src=x onerror=alert(3)> & <b>bold</b>\"
engines: { cal: { kind: calibrate } }
phases:
  - name: \"<script>alert(4)</script>\"
    workloads:
      - { name: w, engine: cal, op: spin, with: { duration: 50us }, iterations: 20, warmup: 2x }
experiments:
  - { name: \"x<svg onload=alert(5)>\", workload: w, metric: latency.p50, rounds: 2,
      variants: { \"<script>v</script>\": { with: { duration: 40us } } } }
",
    );
    let db = scenario.dir.path().join("history.sqlite");
    let runs: Vec<PathBuf> = (0..2).map(|i| run(&scenario, &format!("run-{i}"), &[])).collect();
    let mut import = vec![
        "import",
        "--tag",
        "<svg onload=alert(6)>",
        "--tag",
        "\" onmouseover=\"x",
        "--tag",
        "after:<script>alert(7)</script>",
    ];
    import.extend(runs.iter().map(|folder| folder.to_str().unwrap()));
    let output = history(&db, &import);
    assert_eq!(status(&output), 0, "{}", text(&output));

    let page = report(&db, &scenario.dir.path().join("history.html"), &[]);
    assert_eq!(page.select(&Selector::parse("script").unwrap()).count(), 0, "a script element made it into the page");
    for element in page.select(&Selector::parse("*").unwrap()) {
        for (name, value) in element.value().attrs() {
            assert!(!name.starts_with("on"), "event handler `{name}` on <{}>", element.value().name());
            assert!(!value.trim_start().to_lowercase().starts_with("javascript:"), "{name}={value}");
        }
    }
    // The names are there as text: in the headings, the chart and the tags.
    let headings: Vec<String> = select(page.root_element(), "section.series h2").into_iter().map(text_of).collect();
    assert!(
        headings.contains(&"<script>alert(1)</script><img src=x onerror=alert(2)> / w / latency".to_owned()),
        "{headings:?}"
    );
    assert!(
        headings.iter().any(|h| h.contains("/ x<svg onload=alert(5)>:<script>v</script> /")),
        "the experiment's arms are series too: {headings:?}"
    );
    let rings: Vec<String> = select(page.root_element(), "svg circle.tagged title").into_iter().map(text_of).collect();
    assert!(rings.iter().any(|ring| ring.contains("<svg onload=alert(6)>")), "{rings:?}");
    let marks: Vec<String> = select(page.root_element(), "table.points span.tag").into_iter().map(text_of).collect();
    assert!(marks.contains(&"<svg onload=alert(6)>".to_owned()), "{marks:?}");
    // The tag names no candidate any campaign proposed: the projection says why.
    let projections = rows(select(page.root_element(), "table.projections")[0]);
    assert!(
        projections.iter().any(|cells| cells.get(1).is_some_and(|c| c == "<script>alert(7)</script>")),
        "{projections:?}"
    );
}

#[test]
fn an_empty_history_writes_a_page_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("empty.sqlite");
    let page = report(&db, &dir.path().join("history.html"), &[]);
    assert!(select(page.root_element(), "section.series").is_empty());
    let notes: Vec<String> = select(page.root_element(), "p.note").into_iter().map(text_of).collect();
    assert!(notes.iter().any(|note| note.starts_with("No series: the history holds no complete run")), "{notes:?}");
    let paragraphs: Vec<String> = select(page.root_element(), "p").into_iter().map(text_of).collect();
    assert!(paragraphs.iter().any(|p| p.starts_with("No campaign is tagged after:NAME")), "{paragraphs:?}");

    // A filter that matches nothing names itself; a bad one is refused and writes nothing.
    let page = report(&db, &dir.path().join("filtered.html"), &["--scenario", "nope", "--run", "r"]);
    let notes: Vec<String> = select(page.root_element(), "p.note").into_iter().map(text_of).collect();
    assert!(notes.iter().any(|note| note.starts_with("No series match scenario nope, run r.")), "{notes:?}");
    let refused = dir.path().join("refused.html");
    let output = history(&db, &["report", "--out", refused.to_str().unwrap(), "--p-value", "2"]);
    assert_eq!(status(&output), 2, "{}", text(&output));
    assert!(!refused.exists());
}

/// An experiment that halves a sleep, proposed by the roadmap, then landed.
const PROPOSAL: &str = "
scenario: history-projection
engines: { cal: { kind: calibrate } }
vars: { d: 600us }
phases:
  - name: p
    workloads:
      - { name: nap, engine: cal, op: sleep, with: { duration: \"${d}\" }, warmup: 10x, iterations: 100 }
experiments:
  - name: shorter
    workload: nap
    metric: latency.p50
    baseline: { with: { duration: \"${d}\" } }
    variants: { half: { with: { duration: 300us } } }
    rounds: 5
    effort: 1d
";

#[test]
fn a_landed_candidate_shows_in_the_projections_table() {
    let scenario = Scenario::new(PROPOSAL);
    let db = scenario.dir.path().join("history.sqlite");
    let before = run(&scenario, "before", &[]);
    let after = run(&scenario, "after", &["--var", "d=300us"]);
    for (folder, tags) in [(&before, &[][..]), (&after, &["--tag", "after:shorter"][..])] {
        let mut args = vec!["import"];
        args.extend(tags);
        args.push(folder.to_str().unwrap());
        let output = history(&db, &args);
        assert_eq!(status(&output), 0, "{}", text(&output));
    }

    let page = report(&db, &scenario.dir.path().join("history.html"), &[]);
    let table = select(page.root_element(), "table.projections");
    assert_eq!(table.len(), 1, "no projections table");
    let rows = rows(table[0]);
    let row = rows.iter().find(|cells| cells.get(1).is_some_and(|c| c == "shorter: half")).expect("the candidate");
    // scenario | candidate | proposed in | landed in | figure | projected | realized | interval | realized / projected
    assert_eq!(row[0], "history-projection");
    assert_eq!(&row[2..5], ["1", "2", "latency p50"]);
    // The same figures `history projections` prints.
    let output = history(&db, &["projections"]);
    let printed = text(&output);
    let line = printed.lines().find(|line| line.contains("shorter: half")).unwrap_or_else(|| panic!("{printed}"));
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    assert_eq!(&row[5..9], &cells[6..10], "{printed}");
    // Halving the sleep is a gain both projected and realized.
    assert!(row[5].starts_with('+') && row[6].starts_with('+'), "{row:?}");
    assert!(row[7].contains(" to "), "{row:?}");
    let ratio: f64 = row[8].parse().unwrap_or_else(|_| panic!("{row:?}"));
    assert!(ratio > 0.0, "{row:?}");

    // The tagged campaign is marked in the chart and in its series' table.
    let latency = section(&page, "history-projection / nap / latency");
    assert_eq!(select(latency, r#"svg circle.tagged[data-campaign="2"]"#).len(), 1, "{}", latency.html());
    let marks: Vec<String> = select(latency, "table.points span.tag").into_iter().map(text_of).collect();
    assert_eq!(marks, ["after:shorter"]);
}
