//! Directory messages (`protocol-spec/10-directory.md#messages`).
//!
//! They travel in `DIR` link cells, fragmented as DHT messages are (`03-cells.md#dir`):
//! `PUSH` floods new descriptors between relays, `SYNC` sends a summary of the sender's
//! directory (one digest per bucket of node ids) and `ENTRIES` answers it with every
//! descriptor of the buckets that differ. Pure codecs: descriptors stay opaque bytes here
//! (they are parsed and verified by `directory/`).

use super::{DecodeError, Reader, Writer};

/// Buckets of a directory summary: node ids grouped by their first byte's top six bits.
pub const BUCKETS: usize = 64;
/// Bytes of one bucket digest.
pub const DIGEST_LEN: usize = 8;
/// The largest descriptor carried (today's are 187 bytes over IPv6).
pub const MAX_DESCRIPTOR: usize = 512;
/// The most descriptors one `PUSH` carries.
pub const MAX_PUSH: usize = 16;
/// The largest encoded directory message; an `ENTRIES` answer longer than this is split.
pub const MAX_DIR_MESSAGE: usize = 256 * 1024;

/// A directory message (`10-directory.md#messages`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirMsg {
    /// Descriptors new to the sender: check them and pass on the ones new to you.
    Push {
        /// Signed descriptors (their wire encoding).
        descriptors: Vec<Vec<u8>>,
    },
    /// The sender's directory in summary: send every descriptor of each bucket whose digest
    /// differs from yours.
    Sync {
        /// Request id, echoed in the answers.
        id: u32,
        /// One digest per bucket (`10-directory.md#summary`).
        digests: Box<[[u8; DIGEST_LEN]; BUCKETS]>,
    },
    /// Part of the answer to a `SYNC`.
    Entries {
        /// The request id answered.
        id: u32,
        /// Whether more parts follow.
        more: bool,
        /// Signed descriptors.
        descriptors: Vec<Vec<u8>>,
    },
}

const PUSH: u8 = 1;
const SYNC: u8 = 2;
const ENTRIES: u8 = 3;

fn write_list(w: &mut Writer, list: &[Vec<u8>]) -> Result<(), DecodeError> {
    w.u16(
        u16::try_from(list.len()).map_err(|_| DecodeError::LengthOutOfRange {
            field: "descriptors",
            len: list.len(),
            max: usize::from(u16::MAX),
        })?,
    );
    for d in list {
        w.u16_prefixed("descriptor", d, MAX_DESCRIPTOR)?;
    }
    Ok(())
}

fn read_list(r: &mut Reader<'_>, max: usize) -> Result<Vec<Vec<u8>>, DecodeError> {
    let n = usize::from(r.u16()?);
    if n > max {
        return Err(DecodeError::LengthOutOfRange {
            field: "descriptors",
            len: n,
            max,
        });
    }
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push(r.u16_prefixed("descriptor", MAX_DESCRIPTOR)?.to_vec());
    }
    Ok(out)
}

impl DirMsg {
    /// Encode. Fails when a descriptor is over [`MAX_DESCRIPTOR`], a `PUSH` holds more than
    /// [`MAX_PUSH`], or the message would pass [`MAX_DIR_MESSAGE`].
    pub fn encode(&self) -> Result<Vec<u8>, DecodeError> {
        let mut w = Writer::new();
        match self {
            DirMsg::Push { descriptors } => {
                if descriptors.len() > MAX_PUSH {
                    return Err(DecodeError::LengthOutOfRange {
                        field: "push.descriptors",
                        len: descriptors.len(),
                        max: MAX_PUSH,
                    });
                }
                w.u8(PUSH);
                write_list(&mut w, descriptors)?;
            }
            DirMsg::Sync { id, digests } => {
                w.u8(SYNC).u32(*id);
                for d in digests.iter() {
                    w.bytes(d);
                }
            }
            DirMsg::Entries {
                id,
                more,
                descriptors,
            } => {
                w.u8(ENTRIES).u32(*id).u8(u8::from(*more));
                write_list(&mut w, descriptors)?;
            }
        }
        if w.len() > MAX_DIR_MESSAGE {
            return Err(DecodeError::LengthOutOfRange {
                field: "directory message",
                len: w.len(),
                max: MAX_DIR_MESSAGE,
            });
        }
        Ok(w.into_vec())
    }

    /// Decode one whole message.
    pub fn decode(bytes: &[u8]) -> Result<DirMsg, DecodeError> {
        if bytes.len() > MAX_DIR_MESSAGE {
            return Err(DecodeError::LengthOutOfRange {
                field: "directory message",
                len: bytes.len(),
                max: MAX_DIR_MESSAGE,
            });
        }
        let mut r = Reader::new(bytes);
        let msg = match r.u8()? {
            PUSH => DirMsg::Push {
                descriptors: read_list(&mut r, MAX_PUSH)?,
            },
            SYNC => {
                let id = r.u32()?;
                let mut digests = Box::new([[0; DIGEST_LEN]; BUCKETS]);
                for d in digests.iter_mut() {
                    *d = r.array()?;
                }
                DirMsg::Sync { id, digests }
            }
            ENTRIES => {
                let id = r.u32()?;
                let more = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => {
                        return Err(DecodeError::InvalidValue {
                            field: "entries.more",
                        });
                    }
                };
                DirMsg::Entries {
                    id,
                    more,
                    descriptors: read_list(&mut r, usize::from(u16::MAX))?,
                }
            }
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "directory message type",
                });
            }
        };
        r.finish()?;
        Ok(msg)
    }

    /// Split descriptors into `ENTRIES` answers to request `id`, each within
    /// [`MAX_DIR_MESSAGE`]; the last has `more` clear. No descriptors: one empty answer.
    pub fn entries(id: u32, descriptors: Vec<Vec<u8>>) -> Vec<DirMsg> {
        let budget = MAX_DIR_MESSAGE - 16;
        let mut parts: Vec<Vec<Vec<u8>>> = vec![Vec::new()];
        let mut size = 0;
        for d in descriptors {
            if d.len() > MAX_DESCRIPTOR {
                continue;
            }
            if size + d.len() + 2 > budget {
                parts.push(Vec::new());
                size = 0;
            }
            size += d.len() + 2;
            if let Some(last) = parts.last_mut() {
                last.push(d);
            }
        }
        let n = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(i, descriptors)| DirMsg::Entries {
                id,
                more: i + 1 < n,
                descriptors,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{BUCKETS, DirMsg, MAX_DIR_MESSAGE, MAX_PUSH};

    #[test]
    fn round_trip_and_limits() {
        let sync = DirMsg::Sync {
            id: 7,
            digests: Box::new([[3; 8]; BUCKETS]),
        };
        let bytes = sync.encode().unwrap();
        assert_eq!(bytes.len(), 1 + 4 + 8 * BUCKETS);
        assert_eq!(DirMsg::decode(&bytes).unwrap(), sync);
        assert!(DirMsg::decode(&bytes[..bytes.len() - 1]).is_err());
        let push = DirMsg::Push {
            descriptors: vec![vec![1; 100]; MAX_PUSH + 1],
        };
        assert!(push.encode().is_err());
        let mut big = vec![1u8, 0, 17];
        big.extend(std::iter::repeat_n(0, 17 * 2));
        assert!(DirMsg::decode(&big).is_err(), "a PUSH over the cap");
        let parts = DirMsg::entries(9, vec![vec![5; 200]; 3000]);
        assert!(parts.len() >= 3);
        let mut seen = 0;
        for (i, p) in parts.iter().enumerate() {
            let b = p.encode().unwrap();
            assert!(b.len() <= MAX_DIR_MESSAGE);
            let DirMsg::Entries {
                id,
                more,
                descriptors,
            } = DirMsg::decode(&b).unwrap()
            else {
                panic!("not entries")
            };
            assert_eq!((id, more), (9, i + 1 < parts.len()));
            seen += descriptors.len();
        }
        assert_eq!(seen, 3000);
        assert_eq!(DirMsg::entries(1, Vec::new()).len(), 1);
    }
}
