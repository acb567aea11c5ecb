//! Pure wire codecs (`protocol-spec/01-encoding.md`).
//!
//! One [`Reader`]/[`Writer`] pair used by every format in the protocol; [`Readable`] and
//! [`Writeable`] for each wire type. Decoding is total: any byte string yields a value or a
//! typed [`DecodeError`], never a panic. Not in this module: cryptography, I/O, and any
//! decision about what a decoded value means for a session (that is the caller's).

pub mod cell;
pub mod dht_msg;
pub mod dir_msg;
pub mod hex;
pub mod relay_msg;
pub mod restrict;
pub mod seen;

use crate::error::{ErrorKind, HasKind};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before a field was complete (`01-encoding.md#lengths`).
    #[error("truncated: {needed} more bytes needed at offset {offset}")]
    Truncated {
        /// Bytes missing.
        needed: usize,
        /// Where the read started.
        offset: usize,
    },
    /// Bytes were left over after a value that must fill its input exactly.
    #[error("{count} trailing bytes after a complete value")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A field held a value the format forbids.
    #[error("invalid value in field `{field}`")]
    InvalidValue {
        /// Which field.
        field: &'static str,
    },
    /// A length field exceeds what its container can hold.
    #[error("length {len} in field `{field}` exceeds the limit {max}")]
    LengthOutOfRange {
        /// Which field.
        field: &'static str,
        /// The length found.
        len: usize,
        /// The largest allowed.
        max: usize,
    },
}

impl HasKind for DecodeError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PeerProtocolViolation
    }
}

/// A cursor over bytes being decoded. All integers are big-endian
/// (`01-encoding.md#integers`).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Start reading `buf` from its first byte.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes consumed so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// Take the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                needed: n - self.remaining(),
                offset: self.pos,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Take the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Read one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// Read a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Read a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Read a big-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Read a u16 length `L` (at most `max`) and then `L` bytes (`01-encoding.md#lengths`).
    pub fn u16_prefixed(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16()?);
        if len > max {
            return Err(DecodeError::LengthOutOfRange { field, len, max });
        }
        self.take(len)
    }

    /// Take everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Fail unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }

    /// Decode one `T`.
    pub fn read<T: Readable>(&mut self) -> Result<T, DecodeError> {
        T::read_from(self)
    }
}

/// An append-only buffer being encoded.
#[derive(Debug, Clone, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    /// Append bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// Append one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Append a big-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// Append a big-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// Append a big-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// Append a u16 length and the bytes; fails if they do not fit in a u16 or exceed `max`.
    pub fn u16_prefixed(
        &mut self,
        field: &'static str,
        b: &[u8],
        max: usize,
    ) -> Result<&mut Self, DecodeError> {
        let limit = max.min(usize::from(u16::MAX));
        let len = u16::try_from(b.len())
            .ok()
            .filter(|l| usize::from(*l) <= limit)
            .ok_or(DecodeError::LengthOutOfRange {
                field,
                len: b.len(),
                max: limit,
            })?;
        self.u16(len);
        Ok(self.bytes(b))
    }

    /// Append zero bytes until the buffer is `len` long (no-op if already longer).
    pub fn pad_to(&mut self, len: usize) -> &mut Self {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self
    }

    /// Append an encodable value.
    pub fn write<T: Writeable + ?Sized>(&mut self, v: &T) -> &mut Self {
        v.write_to(self);
        self
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The encoded bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// The encoded bytes so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
}

/// A type with a wire decoding.
pub trait Readable: Sized {
    /// Decode one value from the reader.
    fn read_from(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decode a value that must fill `bytes` exactly.
    fn decode_exact(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::read_from(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// A type with a wire encoding.
pub trait Writeable {
    /// Append the encoding to `w`.
    fn write_to(&self, w: &mut Writer);

    /// The encoding as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write_to(&mut w);
        w.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::{DecodeError, Reader, Writer};

    #[test]
    fn integers_are_big_endian_and_round_trip() {
        let mut w = Writer::new();
        w.u8(1)
            .u16(0x0203)
            .u32(0x0405_0607)
            .u64(0x0809_0a0b_0c0d_0e0f);
        assert_eq!(w.as_slice(), &(1u8..=15).collect::<Vec<_>>()[..]);
        let bytes = w.into_vec();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(0x0203));
        assert_eq!(r.u32(), Ok(0x0405_0607));
        assert_eq!(r.u64(), Ok(0x0809_0a0b_0c0d_0e0f));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn truncation_and_trailing_are_typed() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(
            r.u32(),
            Err(DecodeError::Truncated {
                needed: 1,
                offset: 0
            })
        );
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { count: 1 }));
    }

    #[test]
    fn prefixed_lengths_are_bounded() {
        let mut w = Writer::new();
        assert!(w.u16_prefixed("x", &[0; 10], 9).is_err());
        w.u16_prefixed("x", &[7; 3], 9).unwrap();
        let bytes = w.into_vec();
        assert_eq!(
            Reader::new(&bytes).u16_prefixed("x", 9),
            Ok(&[7u8, 7, 7][..])
        );
        assert_eq!(
            Reader::new(&bytes).u16_prefixed("x", 2),
            Err(DecodeError::LengthOutOfRange {
                field: "x",
                len: 3,
                max: 2
            })
        );
    }
}
