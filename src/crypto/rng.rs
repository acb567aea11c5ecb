//! The node's seeded CSPRNG (`protocol-spec/README.md#determinism`).
//!
//! One [`UmbraRng`] per node, seeded by the driver (from the OS in `runtime/`, from the
//! world's seed in the simulator); parts get sub-generators with [`UmbraRng::fork`]. Nothing
//! here reads the OS RNG.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// A ChaCha20-based CSPRNG with an explicit seed.
#[derive(Debug, Clone)]
pub struct UmbraRng(ChaCha20Rng);

impl UmbraRng {
    /// A generator from a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        UmbraRng(ChaCha20Rng::from_seed(seed))
    }

    /// A generator from a small number, for tests and simulations (printed seeds).
    pub fn from_u64(seed: u64) -> Self {
        UmbraRng(ChaCha20Rng::seed_from_u64(seed))
    }

    /// An independent generator seeded from this one.
    pub fn fork(&mut self) -> UmbraRng {
        UmbraRng::from_seed(self.array())
    }

    /// Fill `dest` with random bytes.
    pub fn fill(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }

    /// `N` random bytes.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.0.fill_bytes(&mut out);
        out
    }

    /// A random u64.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniform integer in `0..n` (`n > 0`; returns 0 for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Rejection sampling for an unbiased result.
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.0.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::UmbraRng;

    #[test]
    fn seeded_generators_repeat_and_forks_differ() {
        let mut a = UmbraRng::from_u64(7);
        let mut b = UmbraRng::from_u64(7);
        assert_eq!(a.array::<16>(), b.array::<16>());
        let mut fa = a.fork();
        assert_ne!(fa.array::<16>(), a.array::<16>());
        for _ in 0..1000 {
            assert!(a.below(3) < 3);
        }
    }
}
