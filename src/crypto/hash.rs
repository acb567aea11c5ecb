//! BLAKE3 helpers (`protocol-spec/01-encoding.md#hashing`).
//!
//! Plain hashing, keyed hashing and key derivation, always with an explicit Umbra context
//! string for derivations. Not in this module: what is hashed (callers decide).

/// A 32-byte BLAKE3 output.
pub type Digest32 = [u8; 32];

/// BLAKE3 of `data`.
pub fn hash(data: &[u8]) -> Digest32 {
    *blake3::hash(data).as_bytes()
}

/// BLAKE3 over data given in pieces (a file written block by block).
#[derive(Debug, Clone, Default)]
pub struct Hasher(blake3::Hasher);

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Hasher(blake3::Hasher::new())
    }

    /// Hash `data` next.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// BLAKE3 of everything given.
    pub fn finalize(&self) -> Digest32 {
        *self.0.finalize().as_bytes()
    }
}

/// BLAKE3 of `data`, `out.len()` bytes of extended output.
pub fn hash_xof(data: &[u8], out: &mut [u8]) {
    let mut h = blake3::Hasher::new();
    h.update(data);
    h.finalize_xof().fill(out);
}

/// Keyed BLAKE3 (a MAC) of `data`.
pub fn keyed_hash(key: &[u8; 32], data: &[u8]) -> Digest32 {
    *blake3::keyed_hash(key, data).as_bytes()
}

/// Keyed BLAKE3 of `data`, `out.len()` bytes of extended output.
pub fn keyed_hash_xof(key: &[u8; 32], data: &[u8], out: &mut [u8]) {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(data);
    h.finalize_xof().fill(out);
}

/// BLAKE3 key derivation with a context string, `out.len()` bytes.
pub fn derive_key(context: &str, material: &[u8], out: &mut [u8]) {
    let mut h = blake3::Hasher::new_derive_key(context);
    h.update(material);
    h.finalize_xof().fill(out);
}

/// Constant-time equality of two 32-byte values.
pub fn ct_eq_32(a: &Digest32, b: &Digest32) -> bool {
    blake3::Hash::from_bytes(*a) == blake3::Hash::from_bytes(*b)
}

#[cfg(test)]
mod tests {
    use super::{ct_eq_32, derive_key, hash, hash_xof};

    #[test]
    fn xof_prefix_is_the_hash() {
        let mut long = [0u8; 64];
        hash_xof(b"umbra", &mut long);
        assert_eq!(&long[..32], &hash(b"umbra"));
        let mut k1 = [0u8; 32];
        let mut k2 = [0u8; 32];
        derive_key("umbra test a", b"m", &mut k1);
        derive_key("umbra test b", b"m", &mut k2);
        assert!(!ct_eq_32(&k1, &k2));
    }
}
