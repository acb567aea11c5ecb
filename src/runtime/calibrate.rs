//! What a hop handshake costs this machine (`protocol-spec/09-relay.md#handshakes`).
//!
//! A relay answers CREATEs within a CPU budget, charging each its cost; the cost is
//! measured here at start, as Tor measures its onionskins: the relay's side of 64 hop
//! handshakes against a throwaway onion key, the fastest of 8 rounds of 8 (time stolen by other
//! processes only ever adds). Reading the clock is why this lives in the runtime.
//! Not in this module: the budget (`relay::handshakes`).

use std::time::{Duration, Instant};

use crate::crypto::hop;
use crate::crypto::keys::LinkKeypair;
use crate::crypto::noise::Randomness;
use crate::crypto::rng::UmbraRng;

/// The relay's cost of one hop handshake, measured now (at least 20 µs).
pub fn hop_handshake_cost(rng: &mut UmbraRng) -> Duration {
    let onion = LinkKeypair::generate(rng);
    let msgs: Vec<Vec<u8>> = (0..8)
        .filter_map(|_| {
            hop::client_start(&onion.public(), 1, Randomness::Seeded(rng.array()))
                .ok()
                .map(|(_, m)| m)
        })
        .collect();
    let rounds: Vec<Duration> = (0..8)
        .map(|_| {
            let t = Instant::now();
            for m in &msgs {
                let _ = hop::server(&onion, m, Randomness::Seeded(rng.array()));
            }
            t.elapsed() / u32::try_from(msgs.len().max(1)).unwrap_or(1)
        })
        .collect();
    rounds
        .into_iter()
        .min()
        .unwrap_or(Duration::from_micros(250))
        .max(Duration::from_micros(20))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_handshake_costs_something_plausible() {
        let mut rng = crate::crypto::rng::UmbraRng::from_u64(1);
        let c = super::hop_handshake_cost(&mut rng);
        assert!(
            c >= std::time::Duration::from_micros(20) && c < std::time::Duration::from_millis(50)
        );
    }
}
