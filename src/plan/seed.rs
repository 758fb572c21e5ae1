//! Seeds of runs and of the plan's own random choices, derived from the scenario's.

/// `seed` mixed with `name` (FNV-1a, then splitmix64): a run's seed from its
/// id, or the seed of a choice the plan makes, such as an experiment's arm order.
pub fn derive_seed(seed: u64, name: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ hash;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
