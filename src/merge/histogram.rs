//! Histograms of the pieces of a run added into the histogram of the whole.
//!
//! Every piece counts its samples in the same buckets (three significant
//! digits from 1, auto-resizing), so adding the counts bucket by bucket is
//! exact: the merged histogram is the one a single process recording every
//! sample would have kept. The merge records each piece's buckets into a
//! fresh histogram rather than calling `Histogram::add`, because `add` sizes
//! the result to the addend's largest value while recording sizes it to a
//! whole bucket; by recording, the merged histogram encodes bit for bit as
//! the whole would have.

use hdrhistogram::Histogram;

use crate::engines::recorder::new_histogram;

/// Adds every count of `piece` into `merged`.
pub fn add_into(merged: &mut Histogram<u64>, piece: &Histogram<u64>) {
    for bucket in piece.iter_recorded() {
        // The bucket's highest equivalent value lands in the same bucket; as
        // `recorder::record`, clamped only past the largest trackable value
        // (`saturating_record_n` alone would clamp instead of resizing).
        let (value, count) = (bucket.value_iterated_to(), bucket.count_at_value());
        if merged.record_n(value, count).is_err() {
            merged.saturating_record_n(value, count);
        }
    }
}

/// The histogram of all `pieces` together.
pub fn sum<'a>(pieces: impl IntoIterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut merged = new_histogram();
    for piece in pieces {
        add_into(&mut merged, piece);
    }
    merged
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::engines::recorder::record;
    use crate::results::histogram::{decode, encode};

    fn recorded(samples: &[u64]) -> Histogram<u64> {
        let mut histogram = new_histogram();
        for &sample in samples {
            record(&mut histogram, sample);
        }
        histogram
    }

    /// `samples` cut at `cuts` (positions taken modulo its length + 1).
    fn split(samples: &[u64], cuts: &[usize]) -> Vec<Vec<u64>> {
        let mut at: Vec<usize> = cuts.iter().map(|cut| cut % (samples.len() + 1)).collect();
        at.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for end in at.into_iter().chain([samples.len()]) {
            pieces.push(samples[start..end].to_vec());
            start = end;
        }
        pieces
    }

    /// Through the stored form, as a merge reads the pieces.
    fn stored(histogram: &Histogram<u64>) -> Histogram<u64> {
        decode(&encode(histogram).unwrap()).unwrap()
    }

    /// Samples from nanoseconds to hours, with repeats and zeros.
    fn samples() -> impl Strategy<Value = Vec<u64>> {
        prop::collection::vec(prop_oneof![0_u64..2_000, 0_u64..5_000_000_000, 0_u64..u64::MAX / 4], 0..300)
    }

    #[test]
    fn pieces_far_apart_in_size_merge_into_the_whole() {
        let samples = [0, 1, 999, 1_000_000, 2_000_000, 95_000_000_000, 7];
        let pieces = [recorded(&samples[..3]), recorded(&samples[3..])];
        let merged = sum(pieces.iter().map(stored).collect::<Vec<_>>().iter());
        assert_eq!(encode(&merged).unwrap(), encode(&recorded(&samples)).unwrap());
        assert_eq!(merged.len(), 7);
    }

    #[test]
    fn the_check_catches_a_merge_that_loses_values() {
        let samples = [5, 1_000, 1_000_000, 95_000_000_000];
        let pieces = [recorded(&samples[..2]), recorded(&samples[2..])];
        let whole = encode(&recorded(&samples)).unwrap();
        assert_eq!(encode(&sum(&pieces)).unwrap(), whole);
        // Clamping into the first piece's range (`saturating_record_n` alone,
        // the bug this module's property test found) is caught.
        let mut clamped = pieces[0].clone();
        for bucket in pieces[1].iter_recorded() {
            clamped.saturating_record_n(bucket.value_iterated_to(), bucket.count_at_value());
        }
        assert_ne!(encode(&clamped).unwrap(), whole);
        // So is a merge that drops a piece's largest value.
        let mut short = pieces[0].clone();
        for bucket in pieces[1].iter_recorded().filter(|bucket| bucket.value_iterated_to() < 1_000_000_000) {
            short.record_n(bucket.value_iterated_to(), bucket.count_at_value()).unwrap();
        }
        assert_ne!(encode(&short).unwrap(), whole);
    }

    proptest! {
        #[test]
        fn any_split_merges_into_the_whole_bit_for_bit(
            samples in samples(),
            cuts in prop::collection::vec(any::<usize>(), 0..6),
        ) {
            let pieces: Vec<Histogram<u64>> = split(&samples, &cuts).iter().map(|p| stored(&recorded(p))).collect();
            let merged = sum(&pieces);
            prop_assert_eq!(encode(&merged).unwrap(), encode(&recorded(&samples)).unwrap());
        }

        #[test]
        fn merging_is_associative_and_ignores_order(
            samples in samples(),
            cuts in prop::collection::vec(any::<usize>(), 2..6),
            keys in prop::collection::vec(any::<u64>(), 6),
        ) {
            let pieces: Vec<Histogram<u64>> = split(&samples, &cuts).iter().map(|p| recorded(p)).collect();
            let flat = encode(&sum(&pieces)).unwrap();
            // Grouped: the first two pieces merged first, then the rest onto them.
            let (left, right) = pieces.split_at(2);
            let grouped = sum([&sum(left), &sum(right)]);
            prop_assert_eq!(encode(&grouped).unwrap(), flat.clone());
            // Shuffled: the pieces in the order of random keys.
            let mut order: Vec<usize> = (0..pieces.len()).collect();
            order.sort_by_key(|&i| keys[i]);
            prop_assert_eq!(encode(&sum(order.iter().map(|&i| &pieces[i]))).unwrap(), flat);
        }
    }
}
