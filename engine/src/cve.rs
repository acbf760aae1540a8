//! CVE ids: `CVE-\d{4}-\d{4,15}`, kept inline, with a lossless integer
//! key.

use std::fmt;

use serde::{Deserialize, Serialize};

/// True when `s` is `CVE-\d{4}-\d{4,15}`.
pub fn valid_cve(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 13
        && b.len() <= 24
        && b.starts_with(b"CVE-")
        && b[4..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..].iter().all(u8::is_ascii_digit)
}

/// Every digit string of length 4 to 15, numbered consecutively: `0000` is
/// 0, `9999` is 9,999, `00000` is 10,000 and so on. 1,111,111,111,110,000
/// numbers in all.
const CVE_NUMBERS: u64 = 1_111_111_111_110_000;

/// A CVE id (`CVE-\d{4}-\d{4,15}`): valid by construction, and kept
/// inline rather than on the heap, since a sync handles millions of rows
/// and the embedded store's writer reads them one after another.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CveId {
    len: u8,
    bytes: [u8; 24],
}

impl CveId {
    /// `None` unless `s` is `CVE-\d{4}-\d{4,15}`.
    pub fn parse(s: &str) -> Option<CveId> {
        if !valid_cve(s) {
            return None;
        }
        let mut bytes = [0u8; 24];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(CveId { len: s.len() as u8, bytes })
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // ASCII by construction, so this never falls back.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// A lossless integer for the id: `year * CVE_NUMBERS + number`, where
    /// `number` counts the id's digit string as above, so `CVE-2024-0001`
    /// and `CVE-2024-00001` differ. The largest key (year 9999) is below
    /// 2^64; it is returned as the same 64 bits in an `i64` (negative for
    /// years above 8302), which is what SQLite stores. Integer keys make
    /// the embedded store's `epss` table a rowid B-tree, several times
    /// cheaper to upsert than text keys.
    pub fn key(&self) -> i64 {
        let b = &self.bytes[..usize::from(self.len)];
        let digits = |s: &[u8]| s.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        let year = digits(&b[4..8]);
        let num = &b[9..];
        // Numbers of all shorter lengths come first: 10^4 + ... + 10^(len-1).
        let before: u64 = (4..num.len() as u32).map(|k| 10u64.pow(k)).sum();
        (year * CVE_NUMBERS + before + digits(num)) as i64
    }
}

impl std::ops::Deref for CveId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for CveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<&str> for CveId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for CveId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CveId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<CveId, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        CveId::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a CVE id")))
    }
}

/// [`CveId::key`] of `cve`; `None` for anything that is not a CVE id.
pub fn cve_key(cve: &str) -> Option<i64> {
    CveId::parse(cve).map(|c| c.key())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cve_keys_are_distinct_and_cover_the_whole_id_space() {
        let ids = [
            "CVE-1999-0001",
            "CVE-1999-00001",
            "CVE-1999-0010",
            "CVE-2021-44228",
            "CVE-2024-123456789012345",
            "CVE-9999-999999999999999",
            "CVE-0000-0000",
        ];
        let keys: std::collections::HashSet<i64> =
            ids.iter().map(|c| cve_key(c).unwrap()).collect();
        assert_eq!(keys.len(), ids.len());
        assert_eq!(cve_key("CVE-0000-0000"), Some(0));
        assert_eq!(cve_key("CVE-0000-9999"), Some(9_999));
        assert_eq!(cve_key("CVE-0000-00000"), Some(10_000));
        assert_eq!(cve_key("CVE-0001-0000"), Some(CVE_NUMBERS as i64));
        // The largest id fits in 64 bits (as the same bits of an i64).
        assert_eq!(
            cve_key("CVE-9999-999999999999999").unwrap() as u64,
            9_999 * CVE_NUMBERS + CVE_NUMBERS - 1
        );
        assert_eq!(cve_key("GHSA-xxxx"), None);
        assert_eq!(cve_key("CVE-2024-123"), None);
    }

    #[test]
    fn cve_ids() {
        assert!(valid_cve("CVE-2021-44228"));
        assert!(valid_cve("CVE-1999-0001"));
        assert!(valid_cve("CVE-2024-123456789012345"));
        assert!(!valid_cve("CVE-2024-123"));
        assert!(!valid_cve("CVE-2024-1234567890123456"));
        assert!(!valid_cve("cve-2024-1234"));
        assert!(!valid_cve("invalid"));
        assert!(!valid_cve("CVE-20x4-1234"));
    }
}
