//! The DHT's counters (`umbra status`, `/api/status`, `/metrics`).
//! Not in this module: what the counters count (`super`, `super::storing`, `super::upkeep`).

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DhtStats {
    /// RPCs answered.
    pub rpcs_in: u64,
    /// RPCs sent.
    pub rpcs_out: u64,
    /// Records refused as invalid.
    pub invalid_records: u64,
    /// Lookups finished.
    pub lookups: u64,
    /// Bytes of held records sent to other nodes (what this node seeds).
    pub served_bytes: u64,
    /// Messages refused because their sender is not in the directory.
    pub refused_unknown: u64,
    /// `FIND_VALUE`s answered with `NODES` because the asker's bucket was empty.
    pub paced: u64,
    /// Manifest lookups where close nodes held two versions with one sequence.
    pub equivocations: u64,
    /// Proofs of equivocation this storer kept (a second manifest with a held sequence).
    pub proofs_kept: u64,
    /// Store commits (each makes a batch of records durable).
    pub commits: u64,
    /// Records republished (`06-dht.md#republishing`).
    pub republished: u64,
    /// Records not republished because another holder stored them here during the interval.
    pub republish_skipped: u64,
    /// Blocks of held manifests renewed (`06-dht.md#renewal`).
    pub renewals: u64,
    /// Times a short routing table was filled again (`06-dht.md#joining`).
    pub rejoins: u64,
}
