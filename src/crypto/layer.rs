//! Sealed onion layers (`protocol-spec/04-circuits.md#sealed-layers`).
//!
//! Every hop of a circuit has two ChaCha20-Poly1305 keys (one per direction) and a 64-bit
//! counter per direction used as the nonce. A RELAY body is 560 bytes: a 16-byte tag, then
//! the sealed region, then zero padding. At hop `i` (1-based, at most [`MAX_LAYERS`]) the
//! sealed region is `512 + 16·(MAX_LAYERS − i)` bytes and the padding `16·(i − 1)` bytes:
//!
//! ```text
//! body at hop i:  tag_i [16] | region_i [512 + 16(3−i)] | zeros [16(i−1)]
//! region_i plain: tag_{i+1} | region_{i+1} sealed       (the cell goes on)
//!             or: zeros [16(3−i)] | payload [512]       (the cell ends at hop i)
//! ```
//!
//! A hop verifies its own tag before anything else, so a cell that an earlier hop altered,
//! replayed, reordered or dropped a predecessor of fails at the next honest hop. All work is
//! in place on the fixed-size body; cells never change size.
//!
//! Not in this module: circuits, cells, or what a payload means.

use super::aead::ChaChaPoly;
use super::hop::HopKeys;
use crate::error::{ErrorKind, HasKind};
use crate::wire::cell::{BODY_LEN, MAX_LAYERS, RELAY_PAYLOAD_LEN, TAG_LEN};

/// Why a layer operation failed. Every variant tears the circuit down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The hop's tag did not verify: the cell was altered, replayed, reordered or follows a
    /// dropped cell (`04-circuits.md#sealed-layers`).
    #[error("layer tag of hop {hop} does not verify")]
    BadTag {
        /// The hop (1-based) whose layer failed.
        hop: u8,
    },
    /// Padding that must be zero is not (`04-circuits.md#sealed-layers`).
    #[error("non-zero padding at hop {hop}")]
    BadPadding {
        /// The hop (1-based) that saw it.
        hop: u8,
    },
    /// A cell for a hop that does not exist, or marked to go on past the last hop.
    #[error("no hop {hop} on this circuit")]
    NoSuchHop {
        /// The hop (1-based).
        hop: u8,
    },
    /// 2⁶⁴ cells in one direction: the circuit must be replaced.
    #[error("layer counter exhausted")]
    CounterExhausted,
}

impl HasKind for LayerError {
    fn kind(&self) -> ErrorKind {
        match self {
            LayerError::BadTag { .. } => ErrorKind::CryptoFailure,
            LayerError::CounterExhausted => ErrorKind::ResourceLimit,
            LayerError::BadPadding { .. } | LayerError::NoSuchHop { .. } => {
                ErrorKind::PeerProtocolViolation
            }
        }
    }
}

/// Length of the sealed region at hop `i` (1-based).
pub const fn region_len(i: usize) -> usize {
    RELAY_PAYLOAD_LEN + TAG_LEN * (MAX_LAYERS - i)
}

/// One direction of one hop: a key and its counter.
#[derive(Clone)]
pub struct LayerKey {
    aead: ChaChaPoly,
    counter: u64,
}

impl core::fmt::Debug for LayerKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "LayerKey(counter={})", self.counter)
    }
}

impl LayerKey {
    /// A key whose counter starts at zero.
    pub fn new(key: &[u8; 32]) -> Self {
        LayerKey {
            aead: ChaChaPoly::new(key),
            counter: 0,
        }
    }

    /// Cells processed so far in this direction.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The next nonce: 4 zero bytes and the little-endian counter (`04-circuits.md#sealed-layers`).
    fn next_nonce(&mut self) -> Result<[u8; 12], LayerError> {
        let n = self.counter;
        self.counter = n.checked_add(1).ok_or(LayerError::CounterExhausted)?;
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&n.to_le_bytes());
        Ok(nonce)
    }

    /// Seal `body[16..16+len]` in place, tag into `body[..16]`.
    fn seal(&mut self, body: &mut [u8; BODY_LEN], len: usize) -> Result<(), LayerError> {
        let nonce = self.next_nonce()?;
        let (tag_slot, rest) = body.split_at_mut(TAG_LEN);
        let tag = self
            .aead
            .seal(nonce, &[], &mut rest[..len])
            .map_err(|_| LayerError::CounterExhausted)?;
        tag_slot.copy_from_slice(&tag);
        Ok(())
    }

    /// Open `body[16..16+len]` in place against the tag in `body[..16]`, then shift the
    /// plaintext to the front and zero the rest.
    fn open(&mut self, body: &mut [u8; BODY_LEN], len: usize, hop: u8) -> Result<(), LayerError> {
        let nonce = self.next_nonce()?;
        let (tag_slot, rest) = body.split_at_mut(TAG_LEN);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(tag_slot);
        self.aead
            .open(nonce, &[], &mut rest[..len], &tag)
            .map_err(|_| LayerError::BadTag { hop })?;
        body.copy_within(TAG_LEN..TAG_LEN + len, 0);
        body[len..].fill(0);
        Ok(())
    }
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|x| *x == 0)
}

/// Where a plaintext region at hop `i` ends: `Some(payload offset)` if the cell ends here.
fn ends_here(plain: &[u8], i: usize) -> Result<Option<usize>, LayerError> {
    if i == MAX_LAYERS {
        return Ok(Some(0));
    }
    let filler = TAG_LEN * (MAX_LAYERS - i);
    if all_zero(&plain[..TAG_LEN]) {
        if !all_zero(&plain[TAG_LEN..filler]) {
            return Err(LayerError::BadPadding { hop: hop_u8(i) });
        }
        return Ok(Some(filler));
    }
    Ok(None)
}

fn hop_u8(i: usize) -> u8 {
    u8::try_from(i).unwrap_or(u8::MAX)
}

/// Put `payload` as the plaintext of region `i`, marked as ending at hop `i`.
fn place_payload(body: &mut [u8; BODY_LEN], i: usize, payload: &[u8; RELAY_PAYLOAD_LEN]) {
    body.fill(0);
    let off = TAG_LEN + TAG_LEN * (MAX_LAYERS - i);
    body[off..off + RELAY_PAYLOAD_LEN].copy_from_slice(payload);
}

/// What a hop found in a forward cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// The cell ends here: the payload is `body[offset..offset + 512]`.
    Deliver {
        /// Offset of the payload in the body.
        offset: usize,
    },
    /// The body was rewritten for the next hop: pass it on.
    Pass,
}

/// A relay's layer of one circuit: its position and both directions' keys.
#[derive(Debug, Clone)]
pub struct RelayLayer {
    index: usize,
    forward: LayerKey,
    backward: LayerKey,
}

impl RelayLayer {
    /// The layer of the hop at position `index` (1-based, at most [`MAX_LAYERS`]).
    pub fn new(index: u8, keys: &HopKeys) -> Result<Self, LayerError> {
        let index = usize::from(index);
        if index == 0 || index > MAX_LAYERS {
            return Err(LayerError::NoSuchHop { hop: hop_u8(index) });
        }
        Ok(RelayLayer {
            index,
            forward: LayerKey::new(&keys.forward),
            backward: LayerKey::new(&keys.backward),
        })
    }

    /// This hop's position (1-based).
    pub fn index(&self) -> u8 {
        hop_u8(self.index)
    }

    /// Open this hop's layer of a forward cell in place.
    pub fn open_forward(&mut self, body: &mut [u8; BODY_LEN]) -> Result<Forward, LayerError> {
        let i = self.index;
        let len = region_len(i);
        if !all_zero(&body[TAG_LEN + len..]) {
            return Err(LayerError::BadPadding { hop: hop_u8(i) });
        }
        self.forward.open(body, len, hop_u8(i))?;
        Ok(match ends_here(&body[..len], i)? {
            Some(offset) => Forward::Deliver { offset },
            None => Forward::Pass,
        })
    }

    /// Seal a payload this hop originates towards the reader.
    pub fn seal_backward_origin(
        &mut self,
        payload: &[u8; RELAY_PAYLOAD_LEN],
    ) -> Result<[u8; BODY_LEN], LayerError> {
        let mut body = [0u8; BODY_LEN];
        place_payload(&mut body, self.index, payload);
        self.backward.seal(&mut body, region_len(self.index))?;
        Ok(body)
    }

    /// Add this hop's layer to a backward cell from the next hop, in place.
    pub fn seal_backward_relay(&mut self, body: &mut [u8; BODY_LEN]) -> Result<(), LayerError> {
        let i = self.index;
        let len = region_len(i);
        if !all_zero(&body[len..]) {
            return Err(LayerError::BadPadding { hop: hop_u8(i) });
        }
        body.copy_within(0..len, TAG_LEN);
        self.backward.seal(body, len)
    }
}

/// The reader's layers of one circuit, hop 1 first.
#[derive(Debug, Clone, Default)]
pub struct ClientLayers {
    hops: Vec<(LayerKey, LayerKey)>,
}

impl ClientLayers {
    /// No hops yet.
    pub fn new() -> Self {
        ClientLayers::default()
    }

    /// Add the next hop's keys; fails past [`MAX_LAYERS`].
    pub fn push(&mut self, keys: &HopKeys) -> Result<(), LayerError> {
        if self.hops.len() >= MAX_LAYERS {
            return Err(LayerError::NoSuchHop {
                hop: hop_u8(self.hops.len() + 1),
            });
        }
        self.hops
            .push((LayerKey::new(&keys.forward), LayerKey::new(&keys.backward)));
        Ok(())
    }

    /// Hops with keys.
    pub fn len(&self) -> usize {
        self.hops.len()
    }

    /// Whether no hop has keys yet.
    pub fn is_empty(&self) -> bool {
        self.hops.is_empty()
    }

    /// Seal `payload` for hop `target` (1-based) through every hop before it.
    pub fn seal_forward(
        &mut self,
        target: u8,
        payload: &[u8; RELAY_PAYLOAD_LEN],
    ) -> Result<[u8; BODY_LEN], LayerError> {
        let t = usize::from(target);
        if t == 0 || t > self.hops.len() {
            return Err(LayerError::NoSuchHop { hop: target });
        }
        let mut body = [0u8; BODY_LEN];
        place_payload(&mut body, t, payload);
        for j in (1..=t).rev() {
            let len = region_len(j);
            if j < t {
                body.copy_within(0..len, TAG_LEN);
            }
            self.hops[j - 1].0.seal(&mut body, len)?;
        }
        Ok(body)
    }

    /// Open a backward cell in place: returns the hop (1-based) it came from and the offset
    /// of its payload in `body`.
    pub fn open_backward(&mut self, body: &mut [u8; BODY_LEN]) -> Result<(u8, usize), LayerError> {
        for j in 1..=self.hops.len() {
            let len = region_len(j);
            self.hops[j - 1].1.open(body, len, hop_u8(j))?;
            if let Some(offset) = ends_here(&body[..len], j)? {
                return Ok((hop_u8(j), offset));
            }
        }
        Err(LayerError::NoSuchHop {
            hop: hop_u8(self.hops.len() + 1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{ClientLayers, Forward, LayerError, RelayLayer};
    use crate::crypto::hop::HopKeys;
    use crate::wire::cell::{BODY_LEN, RELAY_PAYLOAD_LEN};

    fn keys(n: u8) -> HopKeys {
        HopKeys {
            forward: [n; 32],
            backward: [n + 100; 32],
        }
    }

    fn circuit(n: u8) -> (ClientLayers, Vec<RelayLayer>) {
        let mut c = ClientLayers::new();
        let mut relays = Vec::new();
        for i in 1..=n {
            c.push(&keys(i)).unwrap();
            relays.push(RelayLayer::new(i, &keys(i)).unwrap());
        }
        (c, relays)
    }

    fn payload(b: u8) -> [u8; RELAY_PAYLOAD_LEN] {
        let mut p = [b; RELAY_PAYLOAD_LEN];
        p[0] = 0xAA;
        p
    }

    /// Send forward to `target`, return what the target delivered.
    fn forward(
        c: &mut ClientLayers,
        relays: &mut [RelayLayer],
        target: u8,
        p: &[u8; RELAY_PAYLOAD_LEN],
    ) -> Result<(u8, Vec<u8>), LayerError> {
        let mut body = c.seal_forward(target, p)?;
        for r in relays.iter_mut() {
            match r.open_forward(&mut body)? {
                Forward::Deliver { offset } => {
                    return Ok((r.index(), body[offset..offset + RELAY_PAYLOAD_LEN].to_vec()));
                }
                Forward::Pass => {}
            }
        }
        Err(LayerError::NoSuchHop { hop: 0 })
    }

    fn backward(
        c: &mut ClientLayers,
        relays: &mut [RelayLayer],
        origin: u8,
        p: &[u8; RELAY_PAYLOAD_LEN],
    ) -> Result<(u8, Vec<u8>), LayerError> {
        let o = usize::from(origin);
        let mut body = relays[o - 1].seal_backward_origin(p)?;
        for r in relays[..o - 1].iter_mut().rev() {
            r.seal_backward_relay(&mut body)?;
        }
        let (hop, off) = c.open_backward(&mut body)?;
        Ok((hop, body[off..off + RELAY_PAYLOAD_LEN].to_vec()))
    }

    #[test]
    fn every_hop_can_be_addressed_both_ways() {
        for n in 1..=3u8 {
            let (mut c, mut relays) = circuit(n);
            for round in 0..3u8 {
                for t in 1..=n {
                    let p = payload(t + round);
                    assert_eq!(
                        forward(&mut c, &mut relays, t, &p).unwrap(),
                        (t, p.to_vec())
                    );
                    assert_eq!(
                        backward(&mut c, &mut relays, t, &p).unwrap(),
                        (t, p.to_vec())
                    );
                }
            }
        }
    }

    #[test]
    fn any_altered_bit_is_caught_at_the_next_hop() {
        for bit in (0..BODY_LEN * 8).step_by(37) {
            let (mut c, mut relays) = circuit(3);
            let mut body = c.seal_forward(3, &payload(1)).unwrap();
            assert_eq!(relays[0].open_forward(&mut body), Ok(Forward::Pass));
            // Hop 1 (malicious) flips one bit of what it forwards.
            body[bit / 8] ^= 1 << (bit % 8);
            let r = relays[1].open_forward(&mut body);
            assert!(
                matches!(
                    r,
                    Err(LayerError::BadTag { hop: 2 }) | Err(LayerError::BadPadding { hop: 2 })
                ),
                "bit {bit}: {r:?}"
            );
        }
    }

    #[test]
    fn replayed_and_reordered_cells_fail() {
        let (mut c, mut relays) = circuit(2);
        let first = c.seal_forward(2, &payload(1)).unwrap();
        let second = c.seal_forward(2, &payload(2)).unwrap();
        let mut b = second;
        assert_eq!(
            relays[0].open_forward(&mut b),
            Err(LayerError::BadTag { hop: 1 }),
            "reordered"
        );
        let (mut c, mut relays) = circuit(2);
        let first2 = c.seal_forward(2, &payload(1)).unwrap();
        assert_eq!(first, first2);
        let mut b = first2;
        relays[0].open_forward(&mut b).unwrap();
        let mut again = b;
        relays[1].open_forward(&mut b).unwrap();
        assert_eq!(
            relays[1].open_forward(&mut again),
            Err(LayerError::BadTag { hop: 2 }),
            "replayed"
        );
    }

    #[test]
    fn backward_tampering_is_caught_by_the_reader() {
        let (mut c, mut relays) = circuit(3);
        let mut body = relays[2].seal_backward_origin(&payload(9)).unwrap();
        relays[1].seal_backward_relay(&mut body).unwrap();
        body[300] ^= 4; // hop 2 → hop 1 link: hop 2 is honest, so hop 1 sees… nothing: it seals.
        relays[0].seal_backward_relay(&mut body).unwrap();
        assert!(matches!(
            c.open_backward(&mut body),
            Err(LayerError::BadTag { hop: 2 })
        ));
    }

    #[test]
    fn addressing_a_missing_hop_fails() {
        let (mut c, _) = circuit(2);
        assert_eq!(
            c.seal_forward(3, &payload(0)).unwrap_err(),
            LayerError::NoSuchHop { hop: 3 }
        );
        assert!(RelayLayer::new(4, &keys(1)).is_err());
        assert!(RelayLayer::new(0, &keys(1)).is_err());
    }
}
