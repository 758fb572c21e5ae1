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
