//! Shares of the circuit table under pressure (`protocol-spec/09-relay.md#shares`).
//!
//! Every circuit is charged to the **source** of its previous hop: another relay by its
//! identity, or an anonymous peer by its network (an IPv4 address, an IPv6 /64). When the
//! table is full, a CREATE from a source holding fewer circuits than the largest source
//! takes the place of that source's oldest circuit; a CREATE from the largest source itself
//! is refused. So one client, however many links it opens from one network, holds at most
//! what the table has left once everyone else got an equal share, and honest circuits keep
//! being built through a relay under a flood.
//!
//! Not in this module: the table itself, idle expiry (`timers`), or the decision to admit.

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet};

use super::CircKey;
use crate::crypto::keys::NodeId;

/// Who a circuit's previous hop is, for table shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A relay, by identity (its link proved it).
    Relay(NodeId),
    /// An anonymous peer, by network: an IPv4 address, or the /64 of an IPv6 address.
    Net([u8; 16]),
}

impl Source {
    /// The source of an anonymous peer at `ip`.
    pub fn of_ip(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::Net(v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::Net(v4.to_ipv6_mapped().octets()),
                None => {
                    let mut o = v6.octets();
                    o[8..].fill(0);
                    Source::Net(o)
                }
            },
        }
    }
}

/// Circuits per source, oldest first, and the sources by size.
#[derive(Debug, Default)]
pub(super) struct Shares {
    by_source: BTreeMap<Source, BTreeSet<(u64, CircKey)>>,
    sizes: BTreeSet<(usize, Source)>,
}

impl Shares {
    fn count(&self, s: &Source) -> usize {
        self.by_source.get(s).map_or(0, BTreeSet::len)
    }

    fn resize(&mut self, s: Source, before: usize, after: usize) {
        if before > 0 {
            self.sizes.remove(&(before, s));
        }
        if after > 0 {
            self.sizes.insert((after, s));
        }
    }

    /// Charge circuit `key` (created as number `seq`) to `s`.
    pub(super) fn add(&mut self, s: Source, seq: u64, key: CircKey) {
        let before = self.count(&s);
        self.by_source.entry(s).or_default().insert((seq, key));
        let after = self.count(&s);
        self.resize(s, before, after);
    }

    /// Release circuit `key`.
    pub(super) fn remove(&mut self, s: Source, seq: u64, key: CircKey) {
        let before = self.count(&s);
        if let Some(set) = self.by_source.get_mut(&s) {
            set.remove(&(seq, key));
            if set.is_empty() {
                self.by_source.remove(&s);
            }
        }
        let after = self.count(&s);
        self.resize(s, before, after);
    }

    /// With the table full, the circuit a CREATE from `s` may replace: the oldest of the
    /// largest source, if that source holds at least two more circuits than `s`.
    pub(super) fn victim_for(&self, s: &Source) -> Option<CircKey> {
        let &(largest, big) = self.sizes.last()?;
        if big == *s || self.count(s) + 1 >= largest {
            return None;
        }
        self.by_source.get(&big)?.first().map(|&(_, key)| key)
    }

    /// Sources holding circuits.
    #[cfg(test)]
    fn sources(&self) -> usize {
        self.by_source.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{Shares, Source};
    use crate::ids::LinkId;
    use crate::wire::cell::CircId;

    fn key(l: u64, c: u32) -> (LinkId, CircId) {
        (LinkId(l), CircId::new(c).unwrap())
    }

    #[test]
    fn the_largest_source_gives_way_to_smaller_ones() {
        let flood = Source::of_ip("10.0.0.9".parse().unwrap());
        let honest = Source::of_ip("10.0.0.1".parse().unwrap());
        let mut s = Shares::default();
        for i in 1..=5 {
            s.add(flood, u64::from(i), key(1, i));
        }
        // The flooder itself gets nothing more; a smaller source takes its oldest circuit.
        assert_eq!(s.victim_for(&flood), None);
        assert_eq!(s.victim_for(&honest), Some(key(1, 1)));
        s.remove(flood, 1, key(1, 1));
        s.add(honest, 6, key(2, 1));
        assert_eq!(s.victim_for(&honest), Some(key(1, 2)));
        // Equal shares: nobody replaces anybody.
        for i in 2..=3 {
            s.remove(flood, u64::from(i), key(1, i));
        }
        s.add(honest, 7, key(2, 2));
        assert_eq!(s.victim_for(&honest), None);
        assert_eq!(s.sources(), 2);
    }

    #[test]
    fn ipv6_sources_are_slash_64_and_mapped_v4_is_v4() {
        let a = Source::of_ip("2001:db8:1:2:3:4:5:6".parse().unwrap());
        let b = Source::of_ip("2001:db8:1:2:ffff:4:5:7".parse().unwrap());
        let c = Source::of_ip("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            Source::of_ip("::ffff:10.0.0.1".parse().unwrap()),
            Source::of_ip("10.0.0.1".parse().unwrap())
        );
    }
}
