//! Lossless histogram storage and the summary statistics read from it.
//!
//! Histograms are stored as HdrHistogram V2 compressed blobs in base64, the
//! format every HdrHistogram implementation reads, so runs and shards can be
//! merged exactly later.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Why a stored histogram could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    /// Not base64.
    #[error("histogram is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// Not an HdrHistogram V2 blob.
    #[error("histogram blob does not decode: {0:?}")]
    Decode(hdrhistogram::serialization::DeserializeError),
    /// Could not be encoded.
    #[error("histogram could not be encoded: {0:?}")]
    Encode(hdrhistogram::serialization::V2DeflateSerializeError),
}

/// Encodes a histogram as base64 of its V2 compressed form.
pub fn encode(histogram: &Histogram<u64>) -> Result<String, HistogramError> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new().serialize(histogram, &mut bytes).map_err(HistogramError::Encode)?;
    Ok(STANDARD.encode(bytes))
}

/// Decodes a histogram written by [`encode`].
pub fn decode(text: &str) -> Result<Histogram<u64>, HistogramError> {
    let bytes = STANDARD.decode(text)?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(HistogramError::Decode)
}

/// Summary statistics of a distribution, in base units (seconds, bytes, …).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Standard deviation.
    pub stddev: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

impl Summary {
    /// Reads the summary off a histogram whose units are `1/scale` of a base unit.
    pub fn of(histogram: &Histogram<u64>, scale: f64) -> Summary {
        if histogram.is_empty() {
            return Summary::default();
        }
        let at = |q: f64| histogram.value_at_quantile(q) as f64 / scale;
        Summary {
            count: histogram.len(),
            min: histogram.min() as f64 / scale,
            max: histogram.max() as f64 / scale,
            mean: histogram.mean() / scale,
            stddev: histogram.stdev() / scale,
            p50: at(0.50),
            p90: at(0.90),
            p95: at(0.95),
            p99: at(0.99),
            p999: at(0.999),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::recorder::new_histogram;

    #[test]
    fn round_trips_exactly() {
        let mut histogram = new_histogram();
        for value in [1_u64, 17, 2_000_000, 2_000_000, 95_000_000_000] {
            histogram.record(value).unwrap();
        }
        let back = decode(&encode(&histogram).unwrap()).unwrap();
        assert_eq!(back, histogram);
        assert_eq!(back.len(), 5);
    }

    #[test]
    fn summary_is_in_base_units() {
        let mut histogram = new_histogram();
        for ms in 1..=100_u64 {
            histogram.record(ms * 1_000_000).unwrap();
        }
        let summary = Summary::of(&histogram, 1e9);
        assert_eq!(summary.count, 100);
        assert!((summary.p50 - 0.050).abs() < 0.0001, "{summary:?}");
        assert!((summary.max - 0.100).abs() < 0.0001, "{summary:?}");
        assert!((summary.mean - 0.0505).abs() < 0.0001, "{summary:?}");
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode("not base64!").is_err());
        assert!(decode("AAAA").is_err());
    }
}
