//! Path selection (`protocol-spec/09-relay.md#path-selection`).
//!
//! Three hops: a guard from the reader's persistent guard set, a middle, and an exit. No
//! two hops in one /16 (IPv4) or /32 (IPv6) network or in one declared family, and no relay
//! twice. Choices are weighted by advertised bandwidth and drawn from the injected RNG.

use core::net::IpAddr;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Descriptor, Directory, Roles};
use crate::crypto::keys::NodeId;
use crate::crypto::rng::UmbraRng;

/// How many guards a reader keeps.
pub const GUARD_SET_SIZE: usize = 3;

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
        }
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

    /// Drop guards no longer listed and top the set up to [`GUARD_SET_SIZE`].
    pub fn refresh(&mut self, dir: &Directory, rng: &mut UmbraRng) {
        self.chosen
            .retain(|g| dir.get(g).is_some_and(|d| d.roles.contains(Roles::GUARD)));
        while self.chosen.len() < GUARD_SET_SIZE {
            let taken: Vec<Arc<Descriptor>> = self
                .chosen
                .iter()
                .filter_map(|g| dir.get(g).cloned())
                .collect();
            let pick = weighted(
                rng,
                dir.relays().filter(|d| {
                    d.roles.contains(Roles::GUARD) && taken.iter().all(|t| compatible(t, d))
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

/// Pick one descriptor weighted by bandwidth (at least 1 each).
fn weighted<'a>(
    rng: &mut UmbraRng,
    candidates: impl Iterator<Item = &'a Arc<Descriptor>>,
) -> Option<&'a Arc<Descriptor>> {
    let list: Vec<&Arc<Descriptor>> = candidates.collect();
    let total: u64 = list.iter().map(|d| u64::from(d.bandwidth.max(1))).sum();
    if total == 0 {
        return None;
    }
    let mut x = rng.below(total);
    for d in &list {
        let w = u64::from(d.bandwidth.max(1));
        if x < w {
            return Some(d);
        }
        x -= w;
    }
    list.last().copied()
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
    let exit = weighted(
        rng,
        dir.relays().filter(|d| {
            d.roles.contains(Roles::EXIT) && !avoid.contains(&d.node_id()) && compatible(&guard, d)
        }),
    )
    .ok_or(PathError::NoExit)?
    .clone();
    let middle = weighted(
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

    use super::{Guards, PathError, compatible, select_path};
    use crate::crypto::keys::{IdentityKey, X25519Public};
    use crate::crypto::rng::UmbraRng;
    use crate::directory::{Descriptor, Directory, Roles, Verified};
    use crate::time::WallTime;

    fn relay(i: u8, net: u8, family: u8) -> Verified {
        let k = IdentityKey::from_secret_bytes([i; 32]);
        let fk = IdentityKey::from_secret_bytes([family.wrapping_add(100); 32]);
        let d = Descriptor {
            identity: k.public(),
            addr: format!("10.{net}.0.{i}:4000").parse().unwrap(),
            link_key: X25519Public([i; 32]),
            onion_key: X25519Public([i; 32]),
            bandwidth: 100,
            family: if family == 0 {
                [0; 32]
            } else {
                fk.public().to_bytes()
            },
            family_cert: (family != 0).then(|| crate::directory::family_cert(&fk, &k.public())),
            roles: Roles::ALL,
            published: WallTime(0),
            expires: WallTime(100),
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
        guards.refresh(&dir, &mut rng);
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
        guards.refresh(&dir, &mut rng);
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
}
