//! Document digests and the in-run dedupe set.
//!
//! The pipeline decides "seen before?" in two places: the store's
//! `documents` ledger (earlier runs) and a [`DigestSet`] (earlier in this
//! run). The set is sharded by an xxh3 hash of the digest so that workers
//! can probe it concurrently without a global lock.

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::str::FromStr;
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

/// A SHA-256 document digest, shown as `sha256:<64 lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 7 + 64];
        out[..7].copy_from_slice(b"sha256:");
        for (i, b) in self.0.iter().enumerate() {
            out[7 + 2 * i] = HEX[(b >> 4) as usize];
            out[8 + 2 * i] = HEX[(b & 15) as usize];
        }
        // Only ASCII was written above.
        f.write_str(std::str::from_utf8(&out).unwrap_or_default())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = String;

    /// Parses `sha256:<64 hex>` (hex case-insensitive).
    fn from_str(s: &str) -> Result<Digest, String> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("digest {s:?} does not start with \"sha256:\""))?;
        if hex.len() != 64 {
            return Err(format!("digest {s:?} does not have 64 hex digits"));
        }
        let mut out = [0u8; 32];
        let bytes = hex.as_bytes();
        for (i, o) in out.iter_mut().enumerate() {
            let hi = hex_val(bytes[2 * i]);
            let lo = hex_val(bytes[2 * i + 1]);
            match (hi, lo) {
                (Some(h), Some(l)) => *o = (h << 4) | l,
                _ => return Err(format!("digest {s:?} is not hexadecimal")),
            }
        }
        Ok(Digest(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A `Hasher` built on one-shot xxh3: each `write` hashes its bytes seeded
/// with the state so far. Cheaper than a streaming state for the short keys
/// hashed here (digests, ids), and safe with untrusted input.
#[derive(Default)]
pub struct Xxh3Hasher(u64);

impl Hasher for Xxh3Hasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }

    // `str` and slices hash a terminator or length besides their bytes;
    // mixing those in cheaply saves a second xxh3 call per key.
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0 ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
}

type Shard = Mutex<HashSet<Digest, BuildHasherDefault<Xxh3Hasher>>>;

const SHARDS: usize = 64;

/// A concurrent set of digests, sharded by xxh3 so threads rarely contend.
pub struct DigestSet {
    shards: Box<[Shard]>,
}

impl Default for DigestSet {
    fn default() -> DigestSet {
        DigestSet { shards: (0..SHARDS).map(|_| Shard::default()).collect() }
    }
}

impl DigestSet {
    /// An empty set.
    pub fn new() -> DigestSet {
        DigestSet::default()
    }

    fn shard(&self, d: &Digest) -> &Shard {
        let h = xxhash_rust::xxh3::xxh3_64(&d.0);
        &self.shards[(h as usize) % SHARDS]
    }

    /// Adds `d`; true when it was not already present.
    pub fn insert(&self, d: Digest) -> bool {
        // A poisoned shard only means another thread panicked mid-insert;
        // the set itself is still valid.
        self.shard(&d).lock().unwrap_or_else(|e| e.into_inner()).insert(d)
    }

    /// True when `d` is present.
    pub fn contains(&self, d: &Digest) -> bool {
        self.shard(d).lock().unwrap_or_else(|e| e.into_inner()).contains(d)
    }

    /// Number of digests held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }

    /// True when the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn digest_round_trips_through_text() {
        let d = Digest::of(b"{}");
        let s = d.to_string();
        assert_eq!(s, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
        assert_eq!(s.parse::<Digest>().unwrap(), d);
        assert_eq!(s.to_uppercase().replace("SHA256", "sha256").parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn malformed_digests_are_rejected() {
        assert!("md5:abc".parse::<Digest>().is_err());
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "g".repeat(64)).parse::<Digest>().is_err());
    }

    #[test]
    fn concurrent_inserts_count_each_digest_once() {
        let set = DigestSet::new();
        let fresh: usize = (0..10_000u32)
            .into_par_iter()
            .filter(|i| set.insert(Digest::of(&(i % 2_500).to_le_bytes())))
            .count();
        assert_eq!(fresh, 2_500);
        assert_eq!(set.len(), 2_500);
    }
}
