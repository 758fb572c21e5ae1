//! Choosing the next token from logits: greedy, temperature, top-k and
//! top-p (nucleus), from a seeded generator.

use crate::engines::rng::SplitMix;

/// Picks tokens from logits.
#[derive(Clone, Debug)]
pub struct Sampler {
    temperature: f64,
    top_k: usize,
    top_p: f64,
    rng: SplitMix,
}

impl Sampler {
    /// `temperature == 0` is greedy; `top_k == 0` keeps every token.
    pub fn new(temperature: f64, top_k: usize, seed: u64) -> Self {
        Sampler { temperature, top_k, top_p: 1.0, rng: SplitMix::new(seed) }
    }

    /// Keeps only the likeliest tokens whose probabilities add up to `top_p`
    /// (after top-k; 1 keeps every token).
    pub fn with_top_p(self, top_p: f64) -> Self {
        Sampler { top_p, ..self }
    }

    /// The temperature (0: greedy).
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// How many of the likeliest tokens are kept (0: all).
    pub fn top_k(&self) -> usize {
        self.top_k
    }

    /// The next uniform draw in [0, 1), for sampling done elsewhere (on a GPU).
    pub fn draw(&mut self) -> f32 {
        self.rng.next_f32()
    }

    /// The next token.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.temperature <= 0.0 || logits.len() < 2 {
            return argmax(logits);
        }
        let mut candidates: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        if self.top_k > 0 && self.top_k < candidates.len() {
            candidates.select_nth_unstable_by(self.top_k - 1, |a, b| b.1.total_cmp(&a.1));
            candidates.truncate(self.top_k);
        }
        let max = candidates.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
        let mut weights: Vec<f64> =
            candidates.iter().map(|c| (f64::from(c.1 - max) / self.temperature).exp()).collect();
        if self.top_p < 1.0 {
            (candidates, weights) = nucleus(candidates, weights, self.top_p);
        }
        let total: f64 = weights.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return argmax(logits);
        }
        let mut target = f64::from(self.rng.next_f32()) * total;
        for (candidate, weight) in candidates.iter().zip(&weights) {
            target -= weight;
            if target <= 0.0 {
                return candidate.0;
            }
        }
        candidates.last().map_or(0, |c| c.0)
    }
}

/// The likeliest candidates whose weights reach `top_p` of the total (at least one).
fn nucleus(candidates: Vec<(u32, f32)>, weights: Vec<f64>, top_p: f64) -> (Vec<(u32, f32)>, Vec<f64>) {
    let total: f64 = weights.iter().sum();
    let mut pairs: Vec<((u32, f32), f64)> = candidates.into_iter().zip(weights).collect();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut kept = 0.0;
    let mut count = 0;
    for (_, weight) in &pairs {
        count += 1;
        kept += weight;
        if kept >= top_p * total {
            break;
        }
    }
    pairs.truncate(count.max(1));
    pairs.into_iter().unzip()
}

/// Index of the largest logit (the first on ties); NaN never wins.
pub fn argmax(logits: &[f32]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn wide(logits: &[f32]) -> u32 {
            argmax_body(logits)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { wide(logits) };
        }
    }
    argmax_body(logits)
}

#[inline(always)]
fn argmax_body(logits: &[f32]) -> u32 {
    // One pass the compiler vectorizes: in independent lanes, the largest
    // value and where it came from (a NaN never wins a `>`, and a later
    // equal value never replaces an earlier one), then the lanes compared.
    const LANES: usize = 16;
    let mut best = [f32::NEG_INFINITY; LANES];
    let mut at = [u32::MAX; LANES];
    let chunks = logits.chunks_exact(LANES);
    let tail = chunks.remainder();
    let mut here: [u32; LANES] = std::array::from_fn(|lane| lane as u32);
    for chunk in chunks {
        for lane in 0..LANES {
            let value = chunk[lane];
            let wins = value > best[lane];
            best[lane] = if wins { value } else { best[lane] };
            at[lane] = if wins { here[lane] } else { at[lane] };
            here[lane] += LANES as u32;
        }
    }
    let start = logits.len() - tail.len();
    let candidates = best.iter().zip(at).chain(tail.iter().zip(start as u32..));
    let (mut winner, mut position) = (f32::NEG_INFINITY, u32::MAX);
    for (&value, index) in candidates {
        if value > winner || (value == winner && index < position) {
            (winner, position) = (value, index);
        }
    }
    // Nothing beat minus infinity: every logit is NaN or minus infinity.
    if position == u32::MAX {
        logits.iter().position(|&value| value == f32::NEG_INFINITY).unwrap_or(0) as u32
    } else {
        position
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest() {
        assert_eq!(Sampler::new(0.0, 0, 1).sample(&[0.1, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0, 0.5]), 1);
        assert_eq!(argmax(&[f32::NAN; 3]), 0);
        // Against the one-pass definition, wherever the largest falls (the
        // vector lanes or the tail) and with ties and NaNs about.
        let mut rng = crate::engines::rng::SplitMix::new(4);
        for len in [1, 15, 16, 17, 37, 100] {
            for _ in 0..50 {
                let logits: Vec<f32> = (0..len)
                    .map(|_| match rng.below(10) {
                        0 => f32::NAN,
                        1 => 0.5,
                        _ => rng.next_f32(),
                    })
                    .collect();
                let expected = (0..len)
                    .filter(|&i| !logits[i].is_nan())
                    .fold(None, |best: Option<usize>, i| match best {
                        Some(b) if logits[b] >= logits[i] => Some(b),
                        _ => Some(i),
                    })
                    .unwrap_or(0);
                assert_eq!(argmax(&logits) as usize, expected, "{logits:?}");
            }
        }
    }

    #[test]
    fn top_k_never_leaves_the_top() {
        let logits: Vec<f32> = (0..100).map(|i| i as f32 / 10.0).collect();
        let mut sampler = Sampler::new(5.0, 3, 7);
        for _ in 0..200 {
            assert!(sampler.sample(&logits) >= 97);
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_set_that_reaches_it() {
        // Probabilities about 0.64, 0.24, 0.09, 0.03: top_p 0.8 keeps the first two.
        let logits = [3.0, 2.0, 1.0, 0.0];
        let mut sampler = Sampler::new(1.0, 0, 3).with_top_p(0.8);
        let drawn: Vec<u32> = (0..300).map(|_| sampler.sample(&logits)).collect();
        assert!(drawn.iter().all(|&t| t < 2));
        assert!(drawn.contains(&0) && drawn.contains(&1));
        let mut tight = Sampler::new(1.0, 0, 3).with_top_p(0.01);
        assert!((0..50).all(|_| tight.sample(&logits) == 0));
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32).collect();
        let draw = |seed| {
            let mut sampler = Sampler::new(1.0, 0, seed);
            (0..20).map(|_| sampler.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(4), draw(4));
        assert_ne!(draw(4), draw(5));
    }
}
