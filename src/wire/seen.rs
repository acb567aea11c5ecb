//! The stored records of what a node has seen (`protocol-spec/07-sites.md#memory`): the
//! highest manifest version per site, and proofs of equivocation.
//!
//! A node keeps these in its own store so that a restart never lets it accept an older
//! manifest than one it saw. They never travel between nodes; they are specified so that a
//! store written by one implementation can be read by another and checked against
//! `interop/` vectors. Decoding is total and checks lengths; what a record means (the
//! signature checks on restore) is `crate::site`'s.
//! Not in this module: the tracker that decides with them (`crate::site::seen`), the
//! database (`crate::runtime::store`).

use super::{DecodeError, Reader, Writer};

/// The format byte both records start with.
pub const SEEN_FORMAT: u8 = 1;
/// The largest manifest a record holds (`07-sites.md#limits`: 1 MiB).
pub const MAX_HELD_MANIFEST: usize = 1 << 20;

/// The highest version of a site's manifest a node has seen: its sequence and digest, and
/// the signed manifest itself while the node still keeps it (empty once only the version
/// is remembered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenVersion {
    /// The sequence.
    pub seq: u64,
    /// BLAKE3 of the signed manifest.
    pub digest: [u8; 32],
    /// The first signed manifest seen with this sequence, or empty.
    pub manifest: Vec<u8>,
}

/// Two signed manifests of one site key with one sequence: the first seen and the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EquivocationProof {
    /// The manifest seen first (the one kept in use).
    pub first: Vec<u8>,
    /// The other one.
    pub second: Vec<u8>,
}

fn held(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<u8>, DecodeError> {
    let n = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    if n > MAX_HELD_MANIFEST {
        return Err(DecodeError::InvalidValue { field });
    }
    Ok(r.take(n)?.to_vec())
}

fn format(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    if r.u8()? != SEEN_FORMAT {
        return Err(DecodeError::InvalidValue { field: "format" });
    }
    Ok(())
}

impl SeenVersion {
    /// `format u8 = 1 | seq u64 | digest [32] | len u32 | manifest [len]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(45 + self.manifest.len());
        w.u8(SEEN_FORMAT)
            .u64(self.seq)
            .bytes(&self.digest)
            .u32(self.manifest.len() as u32)
            .bytes(&self.manifest);
        w.into_vec()
    }

    /// The record in `bytes` (exactly).
    pub fn decode(bytes: &[u8]) -> Result<SeenVersion, DecodeError> {
        let mut r = Reader::new(bytes);
        format(&mut r)?;
        let seq = r.u64()?;
        let digest = r.array()?;
        let manifest = held(&mut r, "manifest")?;
        r.finish()?;
        Ok(SeenVersion {
            seq,
            digest,
            manifest,
        })
    }
}

impl EquivocationProof {
    /// `format u8 = 1 | len u32 | first [len] | len u32 | second [len]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(9 + self.first.len() + self.second.len());
        w.u8(SEEN_FORMAT)
            .u32(self.first.len() as u32)
            .bytes(&self.first)
            .u32(self.second.len() as u32)
            .bytes(&self.second);
        w.into_vec()
    }

    /// The record in `bytes` (exactly).
    pub fn decode(bytes: &[u8]) -> Result<EquivocationProof, DecodeError> {
        let mut r = Reader::new(bytes);
        format(&mut r)?;
        let first = held(&mut r, "first")?;
        let second = held(&mut r, "second")?;
        r.finish()?;
        Ok(EquivocationProof { first, second })
    }
}

#[cfg(test)]
mod tests {
    use super::{DecodeError, EquivocationProof, SeenVersion};

    #[test]
    fn records_round_trip_and_bad_bytes_are_typed_errors() {
        let v = SeenVersion {
            seq: 7,
            digest: [3; 32],
            manifest: b"signed".to_vec(),
        };
        assert_eq!(SeenVersion::decode(&v.encode()), Ok(v.clone()));
        let p = EquivocationProof {
            first: b"a".to_vec(),
            second: b"b".to_vec(),
        };
        assert_eq!(EquivocationProof::decode(&p.encode()), Ok(p));
        let mut bad = v.encode();
        bad[0] = 2;
        assert_eq!(
            SeenVersion::decode(&bad),
            Err(DecodeError::InvalidValue { field: "format" })
        );
        let mut long = v.encode();
        long.push(0);
        assert!(matches!(
            SeenVersion::decode(&long),
            Err(DecodeError::TrailingBytes { count: 1 })
        ));
        let enc = v.encode();
        for cut in 0..enc.len() {
            assert!(SeenVersion::decode(&enc[..cut]).is_err());
        }
        let mut huge = vec![1u8];
        huge.extend_from_slice(&(2u32 << 20).to_be_bytes());
        assert_eq!(
            EquivocationProof::decode(&huge),
            Err(DecodeError::InvalidValue { field: "first" })
        );
    }
}
