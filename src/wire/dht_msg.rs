//! DHT messages (`protocol-spec/06-dht.md#rpcs`) and the reader↔exit content requests
//! (`06-dht.md#exit-requests`).
//!
//! DHT RPCs travel between relays in `DHT` link cells (fragmented, `03-cells.md#dht`); exit
//! requests travel in a stream to the `dht` service, each framed as `u32 length || message`.
//! Pure codecs: no validation of what a record holds (that needs signatures; see `site/`).

use super::{DecodeError, Reader, Writer};

/// The most nodes one NODES answer carries (the DHT's k).
pub const MAX_NODES: usize = 20;
/// The largest record value (a manifest; `07-sites.md#limits`).
pub const MAX_VALUE: usize = 1 << 20;
/// The largest encoded DHT or exit message.
pub const MAX_MESSAGE: usize = MAX_VALUE + 4096;

/// What a record holds: an open code space (`06-dht.md#records`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKind(pub u8);

impl RecordKind {
    /// A signed site manifest, stored under the site's DHT key.
    pub const MANIFEST: RecordKind = RecordKind(1);
    /// A content block, stored under its BLAKE3 hash.
    pub const BLOCK: RecordKind = RecordKind(2);
    /// A site's signed roster of writers (`11-writers.md#roster`).
    pub const ROSTER: RecordKind = RecordKind(3);
    /// A writer manifest, the newest of one line (`11-writers.md#writer-manifest`).
    pub const WRITER: RecordKind = RecordKind(4);
    /// A writer manifest kept as history, under its BLAKE3 hash (`11-writers.md#history`).
    pub const HISTORY: RecordKind = RecordKind(5);

    /// Signed and sequence-numbered: a higher sequence replaces a lower one, lookups fetch
    /// the highest claimed (`06-dht.md#manifest-lookups`), storers remember versions.
    pub fn is_versioned(self) -> bool {
        matches!(
            self,
            RecordKind::MANIFEST | RecordKind::ROSTER | RecordKind::WRITER
        )
    }
}

/// A DHT record: kind, key, value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What it holds.
    pub kind: RecordKind,
    /// Where it lives in the key space.
    pub key: [u8; 32],
    /// The bytes (a signed manifest, or a block).
    pub value: Vec<u8>,
}

impl Record {
    fn write(&self, w: &mut Writer) {
        w.u8(self.kind.0)
            .bytes(&self.key)
            .u32(u32::try_from(self.value.len()).unwrap_or(u32::MAX))
            .bytes(&self.value);
    }

    fn read(r: &mut Reader<'_>) -> Result<Record, DecodeError> {
        let kind = RecordKind(r.u8()?);
        let key = r.array()?;
        let len = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if len > MAX_VALUE {
            return Err(DecodeError::LengthOutOfRange {
                field: "record.value",
                len,
                max: MAX_VALUE,
            });
        }
        Ok(Record {
            kind,
            key,
            value: r.take(len)?.to_vec(),
        })
    }
}

/// A DHT RPC (`06-dht.md#rpcs`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DhtMsg {
    /// Which nodes do you know closest to `target`?
    FindNode {
        /// Request id, echoed in the answer.
        id: u32,
        /// The key.
        target: [u8; 32],
    },
    /// Do you hold a record of `kind` under `key`? If not, which nodes are closer?
    FindValue {
        /// Request id.
        id: u32,
        /// The key.
        key: [u8; 32],
        /// The record kind asked for.
        kind: RecordKind,
    },
    /// Please store this record until `expires` (`06-dht.md#lifetime`).
    Store {
        /// Request id.
        id: u32,
        /// The record.
        record: Record,
        /// When the storer may drop it (Unix seconds): for a block, the expiry of the
        /// manifest it was published for; ignored for a manifest (its own `expires` rules).
        expires: u64,
    },
    /// The closest nodes the answerer knows.
    Nodes {
        /// Request id.
        id: u32,
        /// Node ids, closest first.
        nodes: Vec<[u8; 32]>,
    },
    /// The record asked for.
    Value {
        /// Request id.
        id: u32,
        /// The record.
        record: Record,
    },
    /// The outcome of a STORE (`06-dht.md#store`).
    Stored {
        /// Request id.
        id: u32,
        /// 0 stored, otherwise a refusal code.
        status: u8,
    },
    /// Which version of the record of `kind` under `key` do you hold? If none, which nodes
    /// are closer? (`06-dht.md#manifest-lookups`)
    FindSeq {
        /// Request id.
        id: u32,
        /// The key.
        key: [u8; 32],
        /// The record kind asked for.
        kind: RecordKind,
    },
    /// Keep the record of `kind` under `key`, if held, until `expires` (`06-dht.md#lifetime`);
    /// answered with `STORED` (status 0 kept, 4 not held).
    Touch {
        /// Request id.
        id: u32,
        /// The key.
        key: [u8; 32],
        /// The record kind.
        kind: RecordKind,
        /// Until when (Unix seconds).
        expires: u64,
    },
    /// The version held: its sequence and the BLAKE3 of its value.
    Seq {
        /// Request id.
        id: u32,
        /// The sequence.
        seq: u64,
        /// BLAKE3 of the value.
        digest: [u8; 32],
    },
}

const FIND_NODE: u8 = 1;
const FIND_VALUE: u8 = 2;
const STORE: u8 = 3;
const NODES: u8 = 4;
const VALUE: u8 = 5;
const STORED: u8 = 6;
const FIND_SEQ: u8 = 7;
const SEQ: u8 = 8;
const TOUCH: u8 = 9;

impl DhtMsg {
    /// The request id.
    pub fn id(&self) -> u32 {
        match self {
            DhtMsg::FindNode { id, .. }
            | DhtMsg::FindValue { id, .. }
            | DhtMsg::Store { id, .. }
            | DhtMsg::Nodes { id, .. }
            | DhtMsg::Value { id, .. }
            | DhtMsg::Stored { id, .. }
            | DhtMsg::FindSeq { id, .. }
            | DhtMsg::Touch { id, .. }
            | DhtMsg::Seq { id, .. } => *id,
        }
    }

    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            DhtMsg::FindNode { id, target } => {
                w.u8(FIND_NODE).u32(*id).bytes(target);
            }
            DhtMsg::FindValue { id, key, kind } => {
                w.u8(FIND_VALUE).u32(*id).bytes(key).u8(kind.0);
            }
            DhtMsg::Store {
                id,
                record,
                expires,
            } => {
                w.u8(STORE).u32(*id);
                record.write(&mut w);
                w.u64(*expires);
            }
            DhtMsg::Nodes { id, nodes } => {
                w.u8(NODES)
                    .u32(*id)
                    .u8(u8::try_from(nodes.len().min(MAX_NODES)).unwrap_or(0));
                for n in nodes.iter().take(MAX_NODES) {
                    w.bytes(n);
                }
            }
            DhtMsg::Value { id, record } => {
                w.u8(VALUE).u32(*id);
                record.write(&mut w);
            }
            DhtMsg::Stored { id, status } => {
                w.u8(STORED).u32(*id).u8(*status);
            }
            DhtMsg::FindSeq { id, key, kind } => {
                w.u8(FIND_SEQ).u32(*id).bytes(key).u8(kind.0);
            }
            DhtMsg::Seq { id, seq, digest } => {
                w.u8(SEQ).u32(*id).u64(*seq).bytes(digest);
            }
            DhtMsg::Touch {
                id,
                key,
                kind,
                expires,
            } => {
                w.u8(TOUCH).u32(*id).bytes(key).u8(kind.0).u64(*expires);
            }
        }
        w.into_vec()
    }

    /// Decode one whole message.
    pub fn decode(bytes: &[u8]) -> Result<DhtMsg, DecodeError> {
        let mut r = Reader::new(bytes);
        let ty = r.u8()?;
        let id = r.u32()?;
        let msg = match ty {
            FIND_NODE => DhtMsg::FindNode {
                id,
                target: r.array()?,
            },
            FIND_VALUE => DhtMsg::FindValue {
                id,
                key: r.array()?,
                kind: RecordKind(r.u8()?),
            },
            STORE => DhtMsg::Store {
                id,
                record: Record::read(&mut r)?,
                expires: r.u64()?,
            },
            NODES => {
                let n = usize::from(r.u8()?);
                if n > MAX_NODES {
                    return Err(DecodeError::LengthOutOfRange {
                        field: "nodes",
                        len: n,
                        max: MAX_NODES,
                    });
                }
                let mut nodes = Vec::with_capacity(n);
                for _ in 0..n {
                    nodes.push(r.array()?);
                }
                DhtMsg::Nodes { id, nodes }
            }
            VALUE => DhtMsg::Value {
                id,
                record: Record::read(&mut r)?,
            },
            STORED => DhtMsg::Stored {
                id,
                status: r.u8()?,
            },
            FIND_SEQ => DhtMsg::FindSeq {
                id,
                key: r.array()?,
                kind: RecordKind(r.u8()?),
            },
            SEQ => DhtMsg::Seq {
                id,
                seq: r.u64()?,
                digest: r.array()?,
            },
            TOUCH => DhtMsg::Touch {
                id,
                key: r.array()?,
                kind: RecordKind(r.u8()?),
                expires: r.u64()?,
            },
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "dht message type",
                });
            }
        };
        r.finish()?;
        Ok(msg)
    }
}

/// A reader's request to the `dht` service of its exit (`06-dht.md#exit-requests`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitRequest {
    /// Find the record of `kind` under `key` (for a manifest: the highest valid sequence).
    Get {
        /// Request id.
        id: u32,
        /// Kind.
        kind: RecordKind,
        /// Key.
        key: [u8; 32],
    },
    /// Make the nodes closest to `key` that hold its record of `kind` keep it until
    /// `expires` (`06-dht.md#lifetime`); nothing is sent for a record nobody holds.
    Refresh {
        /// Request id.
        id: u32,
        /// Kind.
        kind: RecordKind,
        /// Key.
        key: [u8; 32],
        /// Until when (Unix seconds).
        expires: u64,
    },
    /// Store `record` on the nodes closest to its key, until `expires`.
    Put {
        /// Request id.
        id: u32,
        /// The record.
        record: Record,
        /// When storers may drop it (Unix seconds; as in [`DhtMsg::Store`]).
        expires: u64,
    },
}

/// The exit's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitReply {
    /// The record, validated by the exit.
    Found {
        /// Request id.
        id: u32,
        /// The record.
        record: Record,
    },
    /// No valid record was found.
    NotFound {
        /// Request id.
        id: u32,
    },
    /// The record was stored on `copies` nodes.
    Stored {
        /// Request id.
        id: u32,
        /// How many storers accepted it.
        copies: u8,
    },
    /// The request was refused (invalid record, limits).
    Refused {
        /// Request id.
        id: u32,
        /// Why (`06-dht.md#exit-requests`).
        reason: u8,
    },
}

impl ExitRequest {
    /// Encode (without the stream's length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            ExitRequest::Get { id, kind, key } => {
                w.u8(1).u32(*id).u8(kind.0).bytes(key);
            }
            ExitRequest::Refresh {
                id,
                kind,
                key,
                expires,
            } => {
                w.u8(3).u32(*id).u8(kind.0).bytes(key).u64(*expires);
            }
            ExitRequest::Put {
                id,
                record,
                expires,
            } => {
                w.u8(2).u32(*id);
                record.write(&mut w);
                w.u64(*expires);
            }
        }
        w.into_vec()
    }

    /// Decode one message.
    pub fn decode(bytes: &[u8]) -> Result<ExitRequest, DecodeError> {
        let mut r = Reader::new(bytes);
        let ty = r.u8()?;
        let id = r.u32()?;
        let m = match ty {
            1 => ExitRequest::Get {
                id,
                kind: RecordKind(r.u8()?),
                key: r.array()?,
            },
            3 => ExitRequest::Refresh {
                id,
                kind: RecordKind(r.u8()?),
                key: r.array()?,
                expires: r.u64()?,
            },
            2 => ExitRequest::Put {
                id,
                record: Record::read(&mut r)?,
                expires: r.u64()?,
            },
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "exit request type",
                });
            }
        };
        r.finish()?;
        Ok(m)
    }
}

impl ExitReply {
    /// The request id answered.
    pub fn id(&self) -> u32 {
        match self {
            ExitReply::Found { id, .. }
            | ExitReply::NotFound { id }
            | ExitReply::Stored { id, .. }
            | ExitReply::Refused { id, .. } => *id,
        }
    }

    /// Encode (without the stream's length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            ExitReply::Found { id, record } => {
                w.u8(1).u32(*id);
                record.write(&mut w);
            }
            ExitReply::NotFound { id } => {
                w.u8(2).u32(*id);
            }
            ExitReply::Stored { id, copies } => {
                w.u8(3).u32(*id).u8(*copies);
            }
            ExitReply::Refused { id, reason } => {
                w.u8(4).u32(*id).u8(*reason);
            }
        }
        w.into_vec()
    }

    /// Decode one message.
    pub fn decode(bytes: &[u8]) -> Result<ExitReply, DecodeError> {
        let mut r = Reader::new(bytes);
        let ty = r.u8()?;
        let id = r.u32()?;
        let m = match ty {
            1 => ExitReply::Found {
                id,
                record: Record::read(&mut r)?,
            },
            2 => ExitReply::NotFound { id },
            3 => ExitReply::Stored {
                id,
                copies: r.u8()?,
            },
            4 => ExitReply::Refused {
                id,
                reason: r.u8()?,
            },
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "exit reply type",
                });
            }
        };
        r.finish()?;
        Ok(m)
    }
}

/// Reassembles `u32 length || message` frames from a byte stream.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
}

impl StreamFramer {
    /// Frame a message for a stream.
    pub fn frame(msg: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + msg.len());
        v.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
        v.extend_from_slice(msg);
        v
    }

    /// Add stream bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, if buffered; an error for a length above [`MAX_MESSAGE`].
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        let Some(len) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = usize::try_from(u32::from_be_bytes([len[0], len[1], len[2], len[3]]))
            .unwrap_or(usize::MAX);
        if len > MAX_MESSAGE {
            return Err(DecodeError::LengthOutOfRange {
                field: "stream message",
                len,
                max: MAX_MESSAGE,
            });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        Ok(Some(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::{DhtMsg, ExitReply, ExitRequest, Record, RecordKind, StreamFramer};

    #[test]
    fn round_trips() {
        let rec = Record {
            kind: RecordKind::BLOCK,
            key: [3; 32],
            value: vec![1, 2, 3],
        };
        let msgs = [
            DhtMsg::FindNode {
                id: 1,
                target: [1; 32],
            },
            DhtMsg::FindValue {
                id: 2,
                key: [2; 32],
                kind: RecordKind::MANIFEST,
            },
            DhtMsg::Store {
                id: 3,
                record: rec.clone(),
                expires: 1_800_000_000,
            },
            DhtMsg::Nodes {
                id: 4,
                nodes: vec![[4; 32], [5; 32]],
            },
            DhtMsg::Value {
                id: 5,
                record: rec.clone(),
            },
            DhtMsg::Stored { id: 6, status: 0 },
            DhtMsg::Touch {
                id: 9,
                key: [7; 32],
                kind: RecordKind::BLOCK,
                expires: 1_800_000_000,
            },
        ];
        for m in msgs {
            assert_eq!(DhtMsg::decode(&m.encode()).unwrap(), m);
        }
        for m in [
            ExitRequest::Get {
                id: 1,
                kind: RecordKind::BLOCK,
                key: [9; 32],
            },
            ExitRequest::Put {
                id: 2,
                record: rec.clone(),
                expires: 1_800_000_000,
            },
            ExitRequest::Refresh {
                id: 3,
                kind: RecordKind::BLOCK,
                key: [9; 32],
                expires: 1_800_000_000,
            },
        ] {
            assert_eq!(ExitRequest::decode(&m.encode()).unwrap(), m);
        }
        for m in [
            ExitReply::Found { id: 1, record: rec },
            ExitReply::NotFound { id: 2 },
            ExitReply::Stored { id: 3, copies: 8 },
            ExitReply::Refused { id: 4, reason: 1 },
        ] {
            assert_eq!(ExitReply::decode(&m.encode()).unwrap(), m);
        }
        let mut f = StreamFramer::default();
        let framed = StreamFramer::frame(b"hello");
        f.push(&framed[..3]);
        assert_eq!(f.next_message().unwrap(), None);
        f.push(&framed[3..]);
        assert_eq!(f.next_message().unwrap(), Some(b"hello".to_vec()));
        f.push(&[0xff, 0xff, 0xff, 0xff]);
        assert!(f.next_message().is_err());
        assert!(DhtMsg::decode(&[4, 0, 0, 0, 1, 21]).is_err());
    }
}
