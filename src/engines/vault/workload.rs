//! The YCSB core workloads: which key an operation touches (uniform,
//! scrambled zipfian, latest) and which operation it is (mixes A–F).

use crate::engines::rng::SplitMix;

/// YCSB's Zipfian generator (Gray et al., "Quickly generating billion-record
/// synthetic databases"): rank 0 is the most popular of `items`.
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

/// YCSB's default skew.
pub const ZIPFIAN_THETA: f64 = 0.99;

fn zeta(items: u64, theta: f64) -> f64 {
    (1..=items).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipfian {
    /// A generator over `items` ranks.
    pub fn new(items: u64, theta: f64) -> Zipfian {
        let items = items.max(1);
        let zetan = zeta(items, theta);
        let zeta2 = zeta(2, theta);
        let eta = (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipfian { items, theta, alpha: 1.0 / (1.0 - theta), zetan, eta }
    }

    /// The next rank.
    pub fn next(&self, rng: &mut SplitMix) -> u64 {
        let u = rng.next_f64();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5_f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        ((self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64).min(self.items - 1)
    }
}

/// How an operation picks its key.
#[derive(Clone, Debug)]
pub enum KeyChooser {
    /// Every key equally likely.
    Uniform(u64),
    /// Zipfian ranks scattered over the key space by FNV-1a (YCSB's scrambled zipfian).
    Zipfian(Zipfian),
    /// Zipfian over recency: the newest keys most popular.
    Latest(Zipfian),
}

impl KeyChooser {
    /// A chooser over `keys` preloaded keys.
    pub fn new(distribution: &str, keys: u64) -> KeyChooser {
        match distribution {
            "uniform" => KeyChooser::Uniform(keys.max(1)),
            "latest" => KeyChooser::Latest(Zipfian::new(keys, ZIPFIAN_THETA)),
            _ => KeyChooser::Zipfian(Zipfian::new(keys, ZIPFIAN_THETA)),
        }
    }

    /// A key index below `existing` (keys inserted so far, at least the preloaded ones).
    pub fn next(&self, rng: &mut SplitMix, existing: u64) -> u64 {
        let existing = existing.max(1);
        match self {
            KeyChooser::Uniform(_) => rng.below(existing),
            KeyChooser::Zipfian(zipfian) => {
                super::format_hash(&zipfian.next(rng).to_le_bytes()) % zipfian.items.min(existing)
            }
            KeyChooser::Latest(zipfian) => existing - 1 - zipfian.next(rng).min(existing - 1),
        }
    }
}

/// One kind of operation in a mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Get a key.
    Read,
    /// Overwrite a key.
    Update,
    /// Write a new key.
    Insert,
    /// Read a run of keys in order.
    Scan,
    /// Read a key, then write it back changed.
    ReadModifyWrite,
    /// Delete a key.
    Delete,
}

impl Step {
    /// The per-step latency metric of a mixed workload.
    pub fn metric(self) -> &'static str {
        match self {
            Step::Read => "read_latency",
            Step::Update | Step::ReadModifyWrite | Step::Delete => "update_latency",
            Step::Insert => "insert_latency",
            Step::Scan => "scan_latency",
        }
    }
}

/// Operation proportions, in percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    steps: [(Step, u32); 2],
}

impl Mix {
    /// Always the same step.
    pub fn single(step: Step) -> Mix {
        Mix { steps: [(step, 100), (step, 0)] }
    }

    /// A YCSB core workload by letter.
    pub fn ycsb(letter: &str) -> Option<Mix> {
        let two = |a, pa, b| Mix { steps: [(a, pa), (b, 100 - pa)] };
        Some(match letter {
            "A" => two(Step::Read, 50, Step::Update),
            "B" => two(Step::Read, 95, Step::Update),
            "C" => Mix::single(Step::Read),
            "D" => two(Step::Read, 95, Step::Insert),
            "E" => two(Step::Scan, 95, Step::Insert),
            "F" => two(Step::Read, 50, Step::ReadModifyWrite),
            _ => return None,
        })
    }

    /// The next step.
    pub fn choose(&self, rng: &mut SplitMix) -> Step {
        if rng.below(100) < u64::from(self.steps[0].1) {
            self.steps[0].0
        } else {
            self.steps[1].0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipfian_is_skewed_and_in_range() {
        let zipfian = Zipfian::new(1000, ZIPFIAN_THETA);
        let mut rng = SplitMix::new(1);
        let mut counts = vec![0_u32; 1000];
        for _ in 0..100_000 {
            counts[zipfian.next(&mut rng) as usize] += 1;
        }
        // Rank 0 takes about 1/zeta(1000) ≈ 13% of the draws.
        assert!((10_000..16_000).contains(&counts[0]), "{}", counts[0]);
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
    }

    #[test]
    fn choosers_stay_within_existing_keys() {
        let mut rng = SplitMix::new(2);
        for name in ["uniform", "zipfian", "latest"] {
            let chooser = KeyChooser::new(name, 100);
            for existing in [1, 50, 100, 150] {
                for _ in 0..1000 {
                    assert!(chooser.next(&mut rng, existing) < existing, "{name}");
                }
            }
        }
        let latest = KeyChooser::new("latest", 1000);
        let recent = (0..1000).filter(|_| latest.next(&mut rng, 1000) >= 900).count();
        assert!(recent > 500, "latest favours new keys: {recent}");
    }

    #[test]
    fn mixes_have_their_proportions() {
        let mut rng = SplitMix::new(3);
        let mix = Mix::ycsb("B").unwrap();
        let reads = (0..10_000).filter(|_| mix.choose(&mut rng) == Step::Read).count();
        assert!((9_300..9_700).contains(&reads), "{reads}");
        assert!(Mix::ycsb("G").is_none());
    }
}
