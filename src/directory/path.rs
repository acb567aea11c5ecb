//! Path selection (`protocol-spec/09-relay.md#path-selection`).
//!
//! Three hops: a guard from the reader's persistent guard set, a middle, and an exit. No
//! two hops in one /16 (IPv4) or /32 (IPv6) network or in one declared family, and no relay
//! twice. Choices are weighted ([`weight`]) by advertised bandwidth, clamped to a multiple
//! of the median over networks so that a claim cannot buy traffic, and shared among the relays
//! of one network beyond [`NETWORK_SHARE`], so that many relays in one /16 weigh as two.
//! Guards are chosen among relays this node has known for at least the configured guard age
//! (`09-relay.md#guards`). Draws come from the injected RNG. Not here: what the directory
//! admits (its caps, [`super::Admission`]).

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Descriptor, Directory, Roles};
use crate::crypto::keys::NodeId;
use crate::crypto::rng::UmbraRng;
use crate::time::WallTime;

/// How many guards a reader keeps.
pub const GUARD_SET_SIZE: usize = 3;

/// How many relays' worth of weight one network gets at most (`09-relay.md#path-selection`):
/// its relays share it when they are more.
pub const NETWORK_SHARE: u64 = 2;

/// A relay's advertised bandwidth counts up to this multiple of the median over networks
/// (each network's median bandwidth, then the median of those).
pub const BANDWIDTH_CLAMP: u64 = 2;

/// The network a relay's address belongs to for path diversity: /16 for IPv4, /32 for IPv6.
pub fn subnet(ip: IpAddr) -> [u8; 4] {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            [4, o[0], o[1], 0]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[0], o[1], o[2], o[3]]
        }
    }
}

/// Whether two relays may share a path.
pub fn compatible(a: &Descriptor, b: &Descriptor) -> bool {
    a.node_id() != b.node_id()
        && subnet(a.addr.ip()) != subnet(b.addr.ip())
        && (a.family == [0; 32] || a.family != b.family)
}

/// A reader's persistent guards (`09-relay.md#guards`): chosen once, kept while listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guards {
    chosen: Vec<NodeId>,
    down: BTreeSet<NodeId>,
    /// The relay this node itself is: never its own guard (`09-relay.md#path-selection`).
    me: Option<NodeId>,
}

impl Guards {
    /// No guards yet.
    pub fn new() -> Self {
        Guards::default()
    }

    /// The guards, in preference order.
    pub fn list(&self) -> &[NodeId] {
        &self.chosen
    }

    /// Restore a saved guard list.
    pub fn from_list(list: Vec<NodeId>) -> Self {
        Guards {
            chosen: list,
            down: BTreeSet::new(),
            me: None,
        }
    }

    /// This node is the relay `me`: it is never chosen (and is dropped if it was).
    pub fn exclude(&mut self, me: NodeId) {
        self.me = Some(me);
        self.chosen.retain(|g| *g != me);
    }

    /// Mark a guard unreachable (it is skipped until [`Guards::mark_up`]).
    pub fn mark_down(&mut self, id: NodeId) {
        self.down.insert(id);
    }

    /// Forget every down mark.
    pub fn clear_down(&mut self) {
        self.down.clear();
    }

    /// Mark a guard reachable again.
    pub fn mark_up(&mut self, id: NodeId) {
        self.down.remove(&id);
    }

    /// Drop guards no longer listed and top the set up to [`GUARD_SET_SIZE`], choosing among
    /// the relays this directory has known for at least `min_age` at `now`; only when none
    /// qualifies (a young network) among all guard-capable relays.
    pub fn refresh(
        &mut self,
        dir: &Directory,
        now: WallTime,
        min_age: core::time::Duration,
        rng: &mut UmbraRng,
    ) {
        let me = self.me;
        self.chosen.retain(|g| {
            Some(*g) != me && dir.get(g).is_some_and(|d| d.roles.contains(Roles::GUARD))
        });
        if self.chosen.len() >= GUARD_SET_SIZE {
            return;
        }
        let weights = Weights::of(dir);
        let old_enough = |d: &Descriptor| {
            dir.first_seen(&d.node_id())
                .is_some_and(|t| now.0.saturating_sub(t.0) >= min_age.as_secs())
        };
        let any_old = dir
            .relays()
            .any(|d| d.roles.contains(Roles::GUARD) && old_enough(d));
        while self.chosen.len() < GUARD_SET_SIZE {
            let taken: Vec<Arc<Descriptor>> = self
                .chosen
                .iter()
                .filter_map(|g| dir.get(g).cloned())
                .collect();
            let pick = weights.pick(
                rng,
                dir.relays().filter(|d| {
                    d.roles.contains(Roles::GUARD)
                        && Some(d.node_id()) != me
                        && (!any_old || old_enough(d))
                        && taken.iter().all(|t| compatible(t, d))
                }),
            );
            match pick {
                Some(d) => self.chosen.push(d.node_id()),
                None => break,
            }
        }
    }

    /// The first guard that is listed and not marked down.
    pub fn current<'a>(&self, dir: &'a Directory) -> Option<&'a Arc<Descriptor>> {
        self.chosen
            .iter()
            .filter(|g| !self.down.contains(g))
            .find_map(|g| dir.get(g))
    }
}

impl Directory {
    /// How many relays of network `net` ([`subnet`]) the directory holds.
    pub fn in_network(&self, net: [u8; 4]) -> usize {
        self.per_subnet.get(&net).copied().unwrap_or(0)
    }

    /// The median over networks of each network's median advertised bandwidth
    /// (`09-relay.md#path-selection`; 1 when empty): relays of one network count once, so
    /// many relays claiming much cannot move it. Cached until the directory changes.
    pub fn network_median_bandwidth(&self) -> u64 {
        *self.network_median.get_or_init(|| {
            fn median(v: &mut [u64]) -> u64 {
                v.sort_unstable();
                v.get(v.len() / 2).copied().unwrap_or(1)
            }
            let mut networks: BTreeMap<[u8; 4], Vec<u64>> = BTreeMap::new();
            for e in self.entries.values() {
                networks
                    .entry(subnet(e.desc.addr.ip()))
                    .or_default()
                    .push(u64::from(e.desc.bandwidth));
            }
            let mut medians: Vec<u64> = networks.values_mut().map(|v| median(v)).collect();
            median(&mut medians)
        })
    }
}

/// What path selection weighs relays by: the directory's network median (cached there until
/// the directory changes) and its per-network counts, so a choice costs one pass over the
/// candidates.
struct Weights<'d> {
    dir: &'d Directory,
    clamp: u64,
}

impl<'d> Weights<'d> {
    fn of(dir: &'d Directory) -> Weights<'d> {
        let clamp = dir
            .network_median_bandwidth()
            .max(1)
            .saturating_mul(BANDWIDTH_CLAMP);
        Weights { dir, clamp }
    }

    fn of_relay(&self, d: &Descriptor) -> u64 {
        let n = self.dir.in_network(subnet(d.addr.ip())).max(1);
        weight(u64::from(d.bandwidth), self.clamp, n as u64)
    }

    /// Pick one descriptor by weight.
    fn pick<'a>(
        &self,
        rng: &mut UmbraRng,
        candidates: impl Iterator<Item = &'a Arc<Descriptor>>,
    ) -> Option<&'a Arc<Descriptor>> {
        let list: Vec<(&Arc<Descriptor>, u64)> =
            candidates.map(|d| (d, self.of_relay(d))).collect();
        let total: u64 = list.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut x = rng.below(total);
        for (d, w) in &list {
            if x < *w {
                return Some(d);
            }
            x -= w;
        }
        list.last().map(|(d, _)| *d)
    }
}

/// A relay's path-selection weight (`09-relay.md#path-selection`): its advertised bandwidth
/// clamped to `clamp` (at least 1), times [`NETWORK_SHARE`] / `in_network` when its network
/// holds more relays than that. In 1/1024 units so that shares stay whole; never 0.
pub fn weight(bandwidth: u64, clamp: u64, in_network: u64) -> u64 {
    let bw = bandwidth.clamp(1, clamp.max(1));
    let share = if in_network > NETWORK_SHARE {
        bw.saturating_mul(1024 * NETWORK_SHARE) / in_network
    } else {
        bw.saturating_mul(1024)
    };
    share.max(1)
}

/// Why no path could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// No usable guard.
    #[error("no usable guard")]
    NoGuard,
    /// No middle compatible with the guard.
    #[error("no middle relay compatible with the guard")]
    NoMiddle,
    /// No exit compatible with the other hops.
    #[error("no exit compatible with the other hops")]
    NoExit,
}

impl crate::error::HasKind for PathError {
    fn kind(&self) -> crate::error::ErrorKind {
        // Too few usable relays in the directory for a path.
        crate::error::ErrorKind::PeerUnreachable
    }
}

/// Choose a 3-hop path: the current guard, a middle, an exit. Relays in `avoid` are not
/// used as middle or exit (recently failed ones, for retries on a fresh path).
pub fn select_path(
    dir: &Directory,
    guards: &Guards,
    avoid: &BTreeSet<NodeId>,
    rng: &mut UmbraRng,
) -> Result<[Arc<Descriptor>; 3], PathError> {
    let guard = guards.current(dir).ok_or(PathError::NoGuard)?.clone();
    let weights = Weights::of(dir);
    let exit = weights
        .pick(
            rng,
            dir.relays().filter(|d| {
                d.roles.contains(Roles::EXIT)
                    && !avoid.contains(&d.node_id())
                    && compatible(&guard, d)
            }),
        )
        .ok_or(PathError::NoExit)?
        .clone();
    let middle = weights
        .pick(
            rng,
            dir.relays().filter(|d| {
                d.roles.contains(Roles::RELAY)
                    && !avoid.contains(&d.node_id())
                    && compatible(&guard, d)
                    && compatible(&exit, d)
            }),
        )
        .ok_or(PathError::NoMiddle)?
        .clone();
    Ok([guard, middle, exit])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use core::time::Duration;

    use super::{Guards, NETWORK_SHARE, PathError, compatible, select_path, weight};
    use crate::crypto::keys::{IdentityKey, X25519Public};
    use crate::crypto::rng::UmbraRng;
    use crate::directory::Admission;
    use crate::directory::{Descriptor, Directory, Roles, Verified};
    use crate::time::WallTime;

    const DAY: Duration = Duration::from_secs(86_400);

    fn relay(i: u8, net: u8, family: u8) -> Verified {
        relay_bw(i, net, family, 100)
    }

    fn relay_bw(i: u8, net: u8, family: u8, bandwidth: u32) -> Verified {
        let k = IdentityKey::from_secret_bytes([i; 32]);
        let fk = IdentityKey::from_secret_bytes([family.wrapping_add(100); 32]);
        let d = Descriptor {
            identity: k.public(),
            addr: format!("10.{net}.0.{i}:4000").parse().unwrap(),
            link_key: X25519Public([i; 32]),
            onion_key: X25519Public([i; 32]),
            bandwidth,
            family: if family == 0 {
                [0; 32]
            } else {
                fk.public().to_bytes()
            },
            family_cert: (family != 0).then(|| crate::directory::family_cert(&fk, &k.public())),
            roles: Roles::ALL,
            published: WallTime(0),
            expires: WallTime(100 * 86_400),
        };
        crate::directory::parse(&d.sign(&k).unwrap())
            .unwrap()
            .verify(WallTime(1))
            .unwrap()
    }

    #[test]
    fn paths_respect_subnets_and_families() {
        let mut dir = Directory::new();
        for i in 1..=30u8 {
            dir.insert(relay(i, i % 6, i % 4));
        }
        let mut rng = UmbraRng::from_u64(5);
        let mut guards = Guards::new();
        guards.refresh(&dir, WallTime(1), DAY, &mut rng);
        assert_eq!(guards.list().len(), 3);
        let first_guard = guards.list()[0];
        for _ in 0..200 {
            let p = select_path(&dir, &guards, &BTreeSet::new(), &mut rng).unwrap();
            assert_eq!(p[0].node_id(), first_guard, "guards are persistent");
            assert!(
                compatible(&p[0], &p[1]) && compatible(&p[0], &p[2]) && compatible(&p[1], &p[2])
            );
        }
        guards.mark_down(first_guard);
        let p = select_path(&dir, &guards, &BTreeSet::new(), &mut rng).unwrap();
        assert_ne!(p[0].node_id(), first_guard);
    }

    #[test]
    fn impossible_paths_are_typed() {
        let mut dir = Directory::new();
        for i in 1..=5u8 {
            dir.insert(relay(i, 1, 0)); // one /16: no two may share a path
        }
        let mut rng = UmbraRng::from_u64(6);
        let mut guards = Guards::new();
        guards.refresh(&dir, WallTime(1), DAY, &mut rng);
        assert_eq!(guards.list().len(), 1);
        assert_eq!(
            select_path(&dir, &guards, &BTreeSet::new(), &mut rng).unwrap_err(),
            PathError::NoExit
        );
        assert_eq!(
            select_path(
                &Directory::new(),
                &Guards::new(),
                &BTreeSet::new(),
                &mut rng
            )
            .unwrap_err(),
            PathError::NoGuard
        );
    }

    /// Guards come from relays this node has known for the guard age; relays that arrived
    /// since (a Sybil flood) are not chosen, however many. A young network with no relay old
    /// enough still gets guards.
    #[test]
    fn guards_come_from_relays_known_long_enough() {
        let now = WallTime(30 * 86_400);
        let mut dir = Directory::new();
        for i in 1..=4u8 {
            dir.admit(relay(i, i, 0), WallTime(0), &Admission::UNLIMITED)
                .unwrap();
        }
        for i in 5..=60u8 {
            dir.admit(relay(i, i, 0), now, &Admission::UNLIMITED)
                .unwrap();
        }
        for seed in 0..20 {
            let mut guards = Guards::new();
            guards.refresh(&dir, now, 8 * DAY, &mut UmbraRng::from_u64(seed));
            assert_eq!(guards.list().len(), 3);
            for g in guards.list() {
                let seen = dir.first_seen(g).unwrap();
                assert_eq!(seen, WallTime(0), "a newcomer became a guard");
            }
        }
        let mut young = Directory::new();
        for i in 5..=10u8 {
            young
                .admit(relay(i, i, 0), now, &Admission::UNLIMITED)
                .unwrap();
        }
        let mut guards = Guards::new();
        guards.refresh(&young, now, 8 * DAY, &mut UmbraRng::from_u64(1));
        assert_eq!(guards.list().len(), 3, "a young network still has guards");
    }

    /// Eight relays of one network claiming the largest bandwidth there is weigh as
    /// [`NETWORK_SHARE`] relays at twice the median: ten honest relays keep most of the
    /// middle and exit choices.
    #[test]
    fn one_network_weighs_as_two_relays_and_claims_are_clamped() {
        assert_eq!(weight(100, 200, 1), 100 * 1024);
        assert_eq!(weight(u64::MAX, 200, 1), 200 * 1024, "clamped");
        assert_eq!(weight(0, 200, 1), 1024, "at least 1");
        assert_eq!(weight(100, 200, 8), 100 * 1024 * NETWORK_SHARE / 8);
        let mut dir = Directory::new();
        for i in 1..=10u8 {
            dir.insert(relay_bw(i, i, 0, 100));
        }
        assert_eq!(dir.network_median_bandwidth(), 100);
        for i in 11..=18u8 {
            dir.insert(relay_bw(i, 200, 0, u32::MAX));
        }
        // Eight relays of one network count once: the median stays (and the cached value was
        // recomputed after the change, or a later change would be missed).
        assert_eq!(dir.network_median_bandwidth(), 100);
        assert_eq!(
            dir.in_network(super::subnet("10.200.0.1".parse().unwrap())),
            8
        );
        let mut grown = dir.clone();
        for i in 19..=40u8 {
            grown.insert(relay_bw(i, i, 0, 500));
        }
        assert_eq!(
            grown.network_median_bandwidth(),
            500,
            "the cache follows changes"
        );
        let mut rng = UmbraRng::from_u64(9);
        let mut guards = Guards::new();
        guards.refresh(&dir, WallTime(1), DAY, &mut rng);
        let (mut sybil, mut all) = (0, 0);
        for _ in 0..2000 {
            let p = select_path(&dir, &guards, &BTreeSet::new(), &mut rng).unwrap();
            for hop in &p[1..] {
                all += 1;
                sybil += usize::from(hop.addr.ip().to_string().starts_with("10.200."));
            }
        }
        let share = sybil as f64 / all as f64;
        // 8 relays × 200 (clamped) × 2/8 = 400 against 10 × 100 = 1000, less the hops the
        // guard's network excludes: about 0.29.
        assert!(share < 0.35, "the one network carried {share:.2} of hops");
        assert!(share > 0.15, "but it is still used ({share:.2})");
    }
}
