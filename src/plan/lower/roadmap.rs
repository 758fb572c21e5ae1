//! Settings of the roadmap document (`roadmap:`).
//!
//! The start date must be `YYYY-MM-DD`, the team a whole number of engineers
//! from 1 to 1000, and success probabilities are given per risk level (`low`,
//! `medium`, `high`) as numbers from 0 to 1 or percentages; anything left out
//! keeps [`RoadmapSpec::default`].

use super::Lowering;
use crate::diagnostic::hint_from;
use crate::engines;
use crate::plan::values::{self, parse_value};
use crate::plan::RoadmapSpec;

impl Lowering<'_> {
    pub(super) fn roadmap(&mut self) -> RoadmapSpec {
        let mut spec = RoadmapSpec::default();
        let Some(raw) = &self.doc.raw.roadmap else { return spec };
        if let Some(start) = &raw.start {
            match chrono::NaiveDate::parse_from_str(start, "%Y-%m-%d") {
                Ok(date) => spec.start = Some(date),
                Err(_) => self.at_value(
                    "roadmap.start",
                    format!("`{start}` is not a date"),
                    Some("write it as YYYY-MM-DD, such as 2026-01-05".into()),
                ),
            }
        }
        if let Some(team) = &raw.team {
            match values::count(team) {
                Ok(n) if (1..=1000).contains(&n) => spec.team = n as u32,
                _ => self.at_value(
                    "roadmap.team",
                    format!("team `{team}` is not a number of engineers"),
                    Some("write a whole number of at least 1".into()),
                ),
            }
        }
        if let Some(probabilities) = &raw.success_probability {
            for (key, value) in probabilities {
                let path = format!("roadmap.success_probability.{key}");
                let slot = match key.as_str() {
                    "low" => 0,
                    "medium" => 1,
                    "high" => 2,
                    other => {
                        self.at_key(
                            &path,
                            format!("unknown risk `{other}`"),
                            hint_from(other, &["low", "medium", "high"]),
                        );
                        continue;
                    }
                };
                match parse_value(value, engines::ValueType::Number { min: 0.0, max: 1.0 }) {
                    Ok(engines::Value::Number(p)) => spec.success_probability[slot] = p,
                    _ => self.at_value(
                        &path,
                        format!("`{value}` is not a probability"),
                        Some("write a number from 0 to 1, or a percentage such as 70%".into()),
                    ),
                }
            }
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use crate::plan::lower::tests::{at, error_of, errors_of, plan_of, workload};

    /// A noop workload followed by `roadmap` lines from line 10.
    fn with_roadmap(roadmap: &[&str]) -> String {
        let mut text = workload(&["engine: cal", "op: noop"]);
        for line in roadmap {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    #[test]
    fn without_a_roadmap_the_defaults_hold() {
        let roadmap = plan_of(&with_roadmap(&[])).roadmap;
        assert_eq!((roadmap.start, roadmap.team, roadmap.success_probability), (None, 1, [0.9, 0.7, 0.5]));
    }

    #[test]
    fn settings_given_replace_the_defaults() {
        let roadmap = plan_of(&with_roadmap(&[
            "roadmap:",
            "  start: 2026-01-05",
            "  team: 3",
            "  success_probability: { low: 50%, high: 0.4 }",
        ]))
        .roadmap;
        assert_eq!(roadmap.start, NaiveDate::from_ymd_opt(2026, 1, 5));
        assert_eq!(roadmap.team, 3);
        assert_eq!(roadmap.success_probability, [0.5, 0.7, 0.4]);
    }

    #[test]
    fn mistakes_are_refused_where_written() {
        let errors = errors_of(&with_roadmap(&[
            "roadmap:",
            "  start: 2026-13-01",
            "  team: 0",
            "  success_probability: { low: 1.5, hihg: 0.2 }",
        ]));
        let found: Vec<(&str, &str, (usize, usize))> =
            errors.iter().map(|d| (d.path.as_str(), d.message.as_str(), at(d))).collect();
        assert_eq!(
            found,
            [
                ("roadmap.start", "`2026-13-01` is not a date", (11, 10)),
                ("roadmap.team", "team `0` is not a number of engineers", (12, 9)),
                ("roadmap.success_probability.low", "`1.5` is not a probability", (13, 31)),
                ("roadmap.success_probability.hihg", "unknown risk `hihg`", (13, 36)),
            ]
        );
        assert_eq!(errors[3].hint.as_deref(), Some("did you mean `high`?"));

        let diagnostic = error_of(&with_roadmap(&["roadmap: { team: 1001 }"]));
        assert_eq!(diagnostic.message, "team `1001` is not a number of engineers");
    }
}
