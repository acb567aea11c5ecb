//! Byte ranges (RFC 9110 §14) and the block plan of a response (`08-gateway.md#ranges`).
//!
//! One range per request is served; a header with several ranges, or one this module does
//! not understand, is ignored and the whole file sent (RFC 9110 allows either). Not in this
//! module: fetching the blocks.

use crate::site::manifest::BLOCK_SIZE;

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// The whole file (no header, or one that is ignored).
    Whole,
    /// Bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// Nothing of the file can satisfy it (416).
    Unsatisfiable,
}

/// Parse a `Range` header against a file of `size` bytes.
pub fn parse(header: Option<&str>, size: u64) -> RangeAsk {
    let Some(h) = header else {
        return RangeAsk::Whole;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = if a.is_empty() {
        // Suffix: the last `b` bytes.
        match b.parse::<u64>() {
            Ok(0) => return RangeAsk::Unsatisfiable,
            Ok(_) if size == 0 => return RangeAsk::Unsatisfiable,
            Ok(n) => (size.saturating_sub(n), size - 1),
            Err(_) => return RangeAsk::Whole,
        }
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return RangeAsk::Whole;
        };
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            match b.parse::<u64>() {
                Ok(e) if e >= start => e.min(size.saturating_sub(1)),
                _ => return RangeAsk::Whole,
            }
        };
        if start >= size {
            return RangeAsk::Unsatisfiable;
        }
        (start, end)
    };
    RangeAsk::Part {
        start: parsed.0,
        end: parsed.1,
    }
}

/// Which blocks a response needs and how much of the first and last to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Status: 200 (whole file), 206 (part), 416 (unsatisfiable).
    pub status: u16,
    /// First byte sent.
    pub start: u64,
    /// Bytes sent.
    pub len: u64,
    /// Index of the first block needed.
    pub first_block: usize,
    /// One past the index of the last block needed.
    pub end_block: usize,
}

impl Plan {
    /// The plan for `ask` on a file of `size` bytes.
    pub fn new(ask: RangeAsk, size: u64) -> Plan {
        let block = BLOCK_SIZE as u64;
        let (status, start, len) = match ask {
            RangeAsk::Whole => (200, 0, size),
            RangeAsk::Part { start, end } => (206, start, end + 1 - start),
            RangeAsk::Unsatisfiable => (416, 0, 0),
        };
        let (first_block, end_block) = if len == 0 {
            (0, 0)
        } else {
            (
                usize::try_from(start / block).unwrap_or(usize::MAX),
                usize::try_from((start + len).div_ceil(block)).unwrap_or(usize::MAX),
            )
        };
        Plan {
            status,
            start,
            len,
            first_block,
            end_block,
        }
    }

    /// The part of block `index` (of `block_len` bytes) that belongs in the response.
    pub fn slice(&self, index: usize, block_len: usize) -> std::ops::Range<usize> {
        let block = BLOCK_SIZE as u64;
        let block_start = index as u64 * block;
        let from = self.start.saturating_sub(block_start);
        let to = (self.start + self.len).saturating_sub(block_start);
        let lo = usize::try_from(from).unwrap_or(usize::MAX).min(block_len);
        let hi = usize::try_from(to).unwrap_or(usize::MAX).min(block_len);
        lo..hi.max(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::{Plan, RangeAsk, parse};
    use crate::site::manifest::BLOCK_SIZE;

    #[test]
    fn ranges() {
        assert_eq!(parse(None, 10), RangeAsk::Whole);
        assert_eq!(
            parse(Some("bytes=2-4"), 10),
            RangeAsk::Part { start: 2, end: 4 }
        );
        assert_eq!(
            parse(Some("bytes=2-"), 10),
            RangeAsk::Part { start: 2, end: 9 }
        );
        assert_eq!(
            parse(Some("bytes=-3"), 10),
            RangeAsk::Part { start: 7, end: 9 }
        );
        assert_eq!(
            parse(Some("bytes=5-100"), 10),
            RangeAsk::Part { start: 5, end: 9 }
        );
        assert_eq!(parse(Some("bytes=10-"), 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse(Some("bytes=1-2,4-5"), 10), RangeAsk::Whole);
        assert_eq!(parse(Some("items=1-2"), 10), RangeAsk::Whole);
        assert_eq!(parse(Some("bytes=4-2"), 10), RangeAsk::Whole);
    }

    #[test]
    fn plans_cover_exactly_the_range() {
        let b = BLOCK_SIZE as u64;
        let size = 3 * b + 100;
        let p = Plan::new(
            RangeAsk::Part {
                start: b - 1,
                end: 2 * b,
            },
            size,
        );
        assert_eq!(
            (p.status, p.len, p.first_block, p.end_block),
            (206, b + 2, 0, 3)
        );
        assert_eq!(p.slice(0, BLOCK_SIZE), BLOCK_SIZE - 1..BLOCK_SIZE);
        assert_eq!(p.slice(1, BLOCK_SIZE), 0..BLOCK_SIZE);
        assert_eq!(p.slice(2, BLOCK_SIZE), 0..1);
        let whole = Plan::new(RangeAsk::Whole, size);
        assert_eq!((whole.first_block, whole.end_block), (0, 4));
        assert_eq!(whole.slice(3, 100), 0..100);
        let empty = Plan::new(RangeAsk::Whole, 0);
        assert_eq!((empty.first_block, empty.end_block), (0, 0));
    }
}
