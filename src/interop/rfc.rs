//! Runners for the bundled RFC and BLAKE3 vector files (`interop/README.md#public-vectors`).
//!
//! Formats are those of `interop/vectors/public/` (see each file's `encoding` field).

use serde_json::Value;

use super::{RunOptions, Status, Summary, case_name, expect_eq, hex_array, hex_field, int_field};
use crate::crypto::hash;
use crate::crypto::keys::{IdentityKey, IdentityPublic, Signature};
use crate::crypto::primitives;

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(|s| s.get("vectors").or(Some(s)))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// RFC 7748 X25519: single-step vectors, iterated vectors and the DH example.
pub fn rfc7748(v: &Value, opts: RunOptions) -> Summary {
    let mut s = Summary::new("RFC 7748 X25519");
    for (i, c) in list(v, "single_step").iter().enumerate() {
        let r = (|| {
            let k = hex_array::<32>(c, "scalar")?;
            let u = hex_array::<32>(c, "u")?;
            let want = hex_field(c, "output")?;
            let got = primitives::x25519(&k, &u).map_err(|e| e.to_string())?;
            expect_eq("output", &got, &want)
        })();
        s.check(case_name("rfc7748/single_step", c, i), r);
    }
    if let Some(it) = v.get("iterated") {
        let init = (
            hex_array::<32>(it, "initial_k"),
            hex_array::<32>(it, "initial_u"),
        );
        for c in super::list(it, "results") {
            let n = int_field(c, "iterations").unwrap_or(0);
            let name = format!("rfc7748/iterated/{n}");
            if n > 1000 && !opts.slow {
                s.push(
                    name,
                    Status::Skipped(format!(
                        "{n} iterations take about a minute; run with --slow"
                    )),
                );
                continue;
            }
            let r = (|| {
                let (mut k, mut u) = (init.0.clone()?, init.1.clone()?);
                for _ in 0..n {
                    let next = primitives::x25519_unchecked(&k, &u);
                    u = k;
                    k = next;
                }
                expect_eq("k", &k, &hex_field(c, "k")?)
            })();
            s.check(name, r);
        }
    }
    if let Some(c) = v.get("diffie_hellman") {
        let r = (|| {
            let a = hex_array::<32>(c, "alice_private")?;
            let b = hex_array::<32>(c, "bob_private")?;
            let ap = primitives::x25519_base(&a);
            let bp = primitives::x25519_base(&b);
            expect_eq("alice_public", &ap, &hex_field(c, "alice_public")?)?;
            expect_eq("bob_public", &bp, &hex_field(c, "bob_public")?)?;
            let want = hex_field(c, "shared_secret")?;
            let s1 = primitives::x25519(&a, &bp).map_err(|e| e.to_string())?;
            let s2 = primitives::x25519(&b, &ap).map_err(|e| e.to_string())?;
            expect_eq("alice's shared secret", &s1, &want)?;
            expect_eq("bob's shared secret", &s2, &want)
        })();
        s.check("rfc7748/diffie_hellman", r);
    }
    s
}

/// RFC 8439: ChaCha20 block and encryption, Poly1305, Poly1305 key generation, AEAD.
pub fn rfc8439(v: &Value) -> Summary {
    let mut s = Summary::new("RFC 8439 ChaCha20-Poly1305");
    for key in ["quarter_round", "quarter_round_on_state"] {
        for (i, c) in list(v, key).iter().enumerate() {
            s.push(
                case_name(&format!("rfc8439/{key}"), c, i),
                Status::Skipped(
                    "the quarter round is internal to the cipher; the block vectors cover it"
                        .into(),
                ),
            );
        }
    }
    for (i, c) in list(v, "chacha20_block").iter().enumerate() {
        let r = (|| {
            let key = hex_array::<32>(c, "key")?;
            let nonce = hex_array::<12>(c, "nonce")?;
            let counter =
                u32::try_from(int_field(c, "counter")?).map_err(|_| "counter".to_string())?;
            let mut block = [0u8; 64];
            primitives::chacha20_xor(&key, &nonce, counter, &mut block);
            expect_eq("keystream", &block, &hex_field(c, "keystream")?)
        })();
        s.check(case_name("rfc8439/chacha20_block", c, i), r);
    }
    for (i, c) in list(v, "chacha20_encryption").iter().enumerate() {
        let r = (|| {
            let key = hex_array::<32>(c, "key")?;
            let nonce = hex_array::<12>(c, "nonce")?;
            let counter =
                u32::try_from(int_field(c, "counter")?).map_err(|_| "counter".to_string())?;
            let mut data = hex_field(c, "plaintext")?;
            primitives::chacha20_xor(&key, &nonce, counter, &mut data);
            expect_eq("ciphertext", &data, &hex_field(c, "ciphertext")?)
        })();
        s.check(case_name("rfc8439/chacha20_encryption", c, i), r);
    }
    for (i, c) in list(v, "poly1305").iter().enumerate() {
        let r = (|| {
            let key = hex_array::<32>(c, "key")?;
            let tag = primitives::poly1305(&key, &hex_field(c, "message")?);
            expect_eq("tag", &tag, &hex_field(c, "tag")?)
        })();
        s.check(case_name("rfc8439/poly1305", c, i), r);
    }
    for (i, c) in list(v, "poly1305_key_generation").iter().enumerate() {
        let r = (|| {
            let key = hex_array::<32>(c, "key")?;
            let nonce = hex_array::<12>(c, "nonce")?;
            let mut block = [0u8; 64];
            primitives::chacha20_xor(&key, &nonce, 0, &mut block);
            expect_eq("poly1305_key", &block[..32], &hex_field(c, "poly1305_key")?)
        })();
        s.check(case_name("rfc8439/poly1305_key_generation", c, i), r);
    }
    for (i, c) in list(v, "aead_chacha20_poly1305").iter().enumerate() {
        let r = (|| {
            let key = hex_field(c, "key")?;
            let nonce = hex_field(c, "nonce")?;
            let aad = hex_field(c, "aad")?;
            let plain = hex_field(c, "plaintext")?;
            let mut want = hex_field(c, "ciphertext")?;
            want.extend(hex_field(c, "tag")?);
            let sealed = primitives::chacha20poly1305_seal(&key, &nonce, &aad, &plain)
                .map_err(|e| e.to_string())?;
            expect_eq("ciphertext||tag", &sealed, &want)?;
            let opened = primitives::chacha20poly1305_open(&key, &nonce, &aad, &want)
                .map_err(|e| e.to_string())?;
            expect_eq("plaintext", &opened, &plain)?;
            let mut forged = want.clone();
            if let Some(last) = forged.last_mut() {
                *last ^= 1;
            }
            match primitives::chacha20poly1305_open(&key, &nonce, &aad, &forged) {
                Err(_) => Ok(()),
                Ok(_) => Err("a forged tag was accepted".into()),
            }
        })();
        s.check(case_name("rfc8439/aead", c, i), r);
    }
    s
}

/// RFC 8032 Ed25519: public key from secret, deterministic signature, strict verification.
pub fn rfc8032(v: &Value) -> Summary {
    let mut s = Summary::new("RFC 8032 Ed25519");
    for (i, c) in super::list(v, "vectors").iter().enumerate() {
        let r = (|| {
            let key = IdentityKey::from_secret_bytes(hex_array::<32>(c, "secret_key")?);
            let public = hex_array::<32>(c, "public_key")?;
            expect_eq("public key", &key.public().to_bytes(), &public)?;
            let msg = hex_field(c, "message")?;
            let sig = key.sign_raw(&msg);
            expect_eq("signature", &sig.0, &hex_field(c, "signature")?)?;
            let pk = IdentityPublic::from_bytes(&public).map_err(|e| e.to_string())?;
            pk.verify_raw(&msg, &Signature(hex_array::<64>(c, "signature")?))
                .map_err(|e| e.to_string())?;
            let mut other = msg.clone();
            other.push(0);
            match pk.verify_raw(&other, &sig) {
                Err(_) => Ok(()),
                Ok(()) => Err("signature verified over another message".into()),
            }
        })();
        s.check(case_name("rfc8032", c, i), r);
    }
    s
}

/// The official BLAKE3 vectors: hash, keyed hash and key derivation, extended output.
pub fn blake3(v: &Value) -> Summary {
    let mut s = Summary::new("BLAKE3");
    let key: Result<[u8; 32], String> = v
        .get("key")
        .and_then(Value::as_str)
        .and_then(|k| k.as_bytes().try_into().ok())
        .ok_or_else(|| "missing 32-byte `key`".to_string());
    let context = v.get("context_string").and_then(Value::as_str);
    for c in super::list(v, "cases") {
        let len = int_field(c, "input_len").unwrap_or(0);
        let r = (|| {
            let n = usize::try_from(len).map_err(|_| "input_len".to_string())?;
            let input: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let want = hex_field(c, "hash")?;
            let mut out = vec![0u8; want.len()];
            hash::hash_xof(&input, &mut out);
            expect_eq("hash", &out, &want)?;
            let want = hex_field(c, "keyed_hash")?;
            let mut out = vec![0u8; want.len()];
            hash::keyed_hash_xof(&key.clone()?, &input, &mut out);
            expect_eq("keyed_hash", &out, &want)?;
            let want = hex_field(c, "derive_key")?;
            let mut out = vec![0u8; want.len()];
            hash::derive_key(context.ok_or("missing `context_string`")?, &input, &mut out);
            expect_eq("derive_key", &out, &want)
        })();
        s.check(format!("blake3/input_len={len}"), r);
    }
    s
}
