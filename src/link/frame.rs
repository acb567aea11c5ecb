//! Length-prefixed frames (`protocol-spec/02-link.md#framing`).
//!
//! On the byte stream every Noise message travels as `u16 length || message`. The
//! [`FrameDecoder`] buffers stream bytes and yields whole messages, refusing a length above
//! the limit its owner sets *before* buffering the message. It never panics and never
//! allocates more than one maximal frame beyond what it was given. Not in this module:
//! decryption or what a frame holds.

use super::LinkError;

/// Length of the frame length prefix.
pub const LEN_PREFIX: usize = 2;

/// Append `message` to `out` as one frame.
pub fn encode_frame(message: &[u8], out: &mut Vec<u8>) -> Result<(), LinkError> {
    let len = u16::try_from(message.len()).map_err(|_| LinkError::Oversized {
        len: message.len(),
        max: usize::from(u16::MAX),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(())
}

/// Reassembles frames from stream bytes.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        FrameDecoder::default()
    }

    /// Drop frames already returned, before new bytes are appended: the buffer restarts at
    /// zero when empty, and is compacted once more than 64 KiB of it is consumed. (Only
    /// here: compacting between the frames of one read would move the rest each time.)
    fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Add bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame if one is buffered, borrowed from the decoder's buffer (no
    /// copy; valid until the next `push`). A length prefix above `max` (or below `min`) is an
    /// error as soon as the prefix is seen (`02-link.md#framing`).
    pub fn next_frame(&mut self, min: usize, max: usize) -> Result<Option<&[u8]>, LinkError> {
        let avail = &self.buf[self.start..];
        let Some(prefix) = avail.get(..LEN_PREFIX) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        if len > max {
            return Err(LinkError::Oversized { len, max });
        }
        if len < min {
            return Err(LinkError::Malformed {
                what: "frame shorter than its minimum",
            });
        }
        if avail.len() < LEN_PREFIX + len {
            return Ok(None);
        }
        let begin = self.start + LEN_PREFIX;
        self.start = begin + len;
        Ok(Some(&self.buf[begin..begin + len]))
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The stream ended: an error if part of a frame is still buffered.
    pub fn finish(&self) -> Result<(), LinkError> {
        match self.buffered() {
            0 => Ok(()),
            buffered => Err(LinkError::Truncated { buffered }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FrameDecoder, encode_frame};
    use crate::link::LinkError;

    #[test]
    fn frames_reassemble_across_arbitrary_splits() {
        let mut stream = Vec::new();
        encode_frame(b"hello", &mut stream).unwrap();
        encode_frame(b"", &mut stream).unwrap();
        encode_frame(&[9; 300], &mut stream).unwrap();
        for split in 0..stream.len() {
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            d.push(&stream[..split]);
            while let Some(f) = d.next_frame(0, 1000).unwrap() {
                got.push(f.to_vec());
            }
            d.push(&stream[split..]);
            while let Some(f) = d.next_frame(0, 1000).unwrap() {
                got.push(f.to_vec());
            }
            assert_eq!(got, vec![b"hello".to_vec(), vec![], vec![9; 300]]);
            assert!(d.finish().is_ok());
        }
    }

    #[test]
    fn oversized_is_refused_before_buffering() {
        let mut d = FrameDecoder::new();
        d.push(&[0xff, 0xff]);
        assert_eq!(
            d.next_frame(0, 1000),
            Err(LinkError::Oversized {
                len: 65535,
                max: 1000
            })
        );
    }

    #[test]
    fn truncated_at_end_of_stream() {
        let mut d = FrameDecoder::new();
        d.push(&[0, 10, 1, 2, 3]);
        assert_eq!(d.next_frame(0, 100), Ok(None));
        assert_eq!(d.finish(), Err(LinkError::Truncated { buffered: 5 }));
    }
}
