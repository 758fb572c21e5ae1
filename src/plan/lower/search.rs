//! `load: { search: … }`: the range a capacity search varies and its budget.

use super::Lowering;
use crate::dsl::raw::RawWorkload;
use crate::dsl::raw::{RawLoad, RawSearch};
use crate::dsl::Scalar;
use crate::plan::template::Scope;
use crate::plan::values;
use crate::plan::{Load, SearchAxis, SearchLoad, Target, DEFAULT_MAX_IN_FLIGHT};

/// What a search range's ends must be, and how they are read.
#[derive(Clone, Copy)]
enum Ends {
    Rates,
    Workers,
}

impl Lowering<'_> {
    /// Checks that a searching workload has a condition to hold: a target
    /// that does not name `capacity` (that one is judged on the search's result).
    pub(super) fn search_condition(&mut self, workload: &RawWorkload, path: &str, targets: &[Target]) {
        let condition = targets.iter().any(|target| !target.names_capacity());
        // A target that failed to lower has its own diagnostic already.
        if condition || targets.len() < workload.targets.len() {
            return;
        }
        let at = if workload.targets.is_empty() { format!("{path}.load.search") } else { format!("{path}.targets") };
        self.at_key(
            &at,
            "a capacity search needs a target to hold at each load it probes",
            Some("add one, such as `targets: [\"latency.p99 < 3ms\"]`; the capacity is the highest load where every target other than `capacity` holds".into()),
        );
    }

    /// Lowers a `load:` holding `search:`.
    pub(super) fn search_load(
        &mut self,
        raw: &RawLoad,
        search: &RawSearch,
        load_path: &str,
        scope: &Scope,
    ) -> Option<Load> {
        let search_path = format!("{load_path}.search");
        for (set, key) in [(raw.rate.is_some(), "rate"), (raw.concurrency.is_some(), "concurrency")] {
            if set {
                self.at_key(
                    &format!("{load_path}.{key}"),
                    format!("`load` sets both `search` and `{key}`"),
                    Some(format!(
                        "a search chooses the {key} of each probe itself: give its range as `search: {{ {key}: [low, high] }}`"
                    )),
                );
                return None;
            }
        }
        let (range, key, ends) = match (&search.rate, &search.concurrency) {
            (Some(_), Some(_)) => {
                self.at_key(
                    &format!("{search_path}.concurrency"),
                    "`search` varies both `rate` and `concurrency`",
                    Some("a search varies one load: `rate` (open loop) or `concurrency` (closed loop)".into()),
                );
                return None;
            }
            (None, None) => {
                self.at_key(
                    &search_path,
                    "`search` names no load to vary",
                    Some(
                        "give a range: `rate: [10/s, 20000/s]` (open loop) or `concurrency: [1, 256]` (closed loop)"
                            .into(),
                    ),
                );
                return None;
            }
            (Some(range), None) => (range, "rate", Ends::Rates),
            (None, Some(range)) => (range, "concurrency", Ends::Workers),
        };
        let axis = match ends {
            Ends::Rates => {
                let max_in_flight = self.load_count(
                    &raw.max_in_flight,
                    load_path,
                    "max_in_flight",
                    u64::from(DEFAULT_MAX_IN_FLIGHT),
                    scope,
                );
                let arrival = self.arrival(raw, load_path, scope);
                Some(SearchAxis::Rate { max_in_flight: max_in_flight? as u32, arrival: arrival? })
            }
            Ends::Workers => self
                .open_loop_only(raw, load_path, "search a `rate` range (open loop)")
                .then_some(SearchAxis::Concurrency),
        };
        let range = self.search_range(range, &format!("{search_path}.{key}"), key, ends, scope);
        let budget = match &search.budget {
            None => Some(None),
            Some(raw) => {
                let budget_path = format!("{search_path}.budget");
                let scalar = self.substitute(raw, &budget_path, scope)?;
                match values::duration(&scalar) {
                    Ok(budget) if budget.is_zero() => {
                        self.at_value(
                            &budget_path,
                            "`budget` is zero",
                            Some("give the search a time such as `2m`".into()),
                        );
                        None
                    }
                    Ok(budget) => Some(Some(budget)),
                    Err(error) => {
                        self.value_error(&budget_path, &scalar, error);
                        None
                    }
                }
            }
        };
        let (low, high) = range?;
        Some(Load::Search(SearchLoad { axis: axis?, low, high, budget: budget? }))
    }

    /// A search range `[low, high]` with `low < high`.
    fn search_range(
        &mut self,
        range: &[Scalar],
        path: &str,
        key: &str,
        ends: Ends,
        scope: &Scope,
    ) -> Option<(f64, f64)> {
        let example = match ends {
            Ends::Rates => "[10/s, 20000/s]",
            Ends::Workers => "[1, 256]",
        };
        if range.len() != 2 {
            self.at_value(
                path,
                format!("a search range has two ends, low and high; this one has {}", range.len()),
                Some(format!("write `{key}: {example}`")),
            );
            return None;
        }
        let read = |this: &mut Self, index: usize| -> Option<f64> {
            let end_path = format!("{path}[{index}]");
            let scalar = this.substitute(&range[index], &end_path, scope)?;
            match ends {
                Ends::Rates => match values::rate(&scalar) {
                    Ok(rate) => Some(rate),
                    Err(error) => {
                        this.value_error(&end_path, &scalar, error);
                        None
                    }
                },
                Ends::Workers => this.worker_count(&scalar, &end_path, key).map(|n| n as f64),
            }
        };
        let (low, high) = (read(self, 0), read(self, 1));
        let (low, high) = (low?, high?);
        if low >= high {
            self.at_value(
                path,
                format!("the search range's low end is not below its high end ({key} {} to {})", range[0], range[1]),
                Some(format!("write the lower {key} first, such as `{key}: {example}`")),
            );
            return None;
        }
        Some((low, high))
    }
}
