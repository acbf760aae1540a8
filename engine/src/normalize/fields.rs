//! Reading values from a parsed document: [`Fields`], whose lookups take
//! the last value of a repeated key, and the helpers the normalizers read
//! strings, scalars and arrays with.

use std::borrow::Cow;

use simd_json::prelude::*;

use super::{FastMap, Value};

/// Object lookups for the normalizers. A repeated key takes its last
/// value, as JavaScript, Python, jq and serde_json read it (simd-json's own
/// `get` returns the first), so every consumer of a document agrees on it.
pub trait Fields<'a> {
    /// The value of `key` (the last one when the key repeats); `None` when
    /// absent or when this is not an object.
    fn field(&self, key: &str) -> Option<Value<'a>>;

    /// [`Fields::field`] when it is a string.
    fn field_str(&self, key: &str) -> Option<&'a str> {
        self.field(key).and_then(ValueIntoString::into_string)
    }

    /// The values of `names` (each the last one when its key repeats), in
    /// one pass over the object: cheaper than a lookup per name where a
    /// normalizer reads several fields of one object.
    fn pick<const N: usize>(&self, names: [&str; N]) -> [Option<Value<'a>>; N];
}

impl<'a> Fields<'a> for Value<'a> {
    #[inline]
    fn field(&self, key: &str) -> Option<Value<'a>> {
        // One forward pass over the object (the tape cannot be walked
        // backwards): no slower than a miss, and objects here are small.
        let obj = self.as_object()?;
        let mut found = None;
        for (k, v) in &obj {
            if k == key {
                found = Some(v);
            }
        }
        found
    }

    #[inline]
    fn pick<const N: usize>(&self, names: [&str; N]) -> [Option<Value<'a>>; N] {
        let mut out = [None; N];
        if let Some(obj) = self.as_object() {
            for (k, v) in &obj {
                if let Some(i) = names.iter().position(|n| *n == k) {
                    out[i] = Some(v);
                }
            }
        }
        out
    }
}

impl<'a> Fields<'a> for Option<Value<'a>> {
    #[inline]
    fn field(&self, key: &str) -> Option<Value<'a>> {
        self.as_ref().and_then(|v| v.field(key))
    }

    #[inline]
    fn pick<const N: usize>(&self, names: [&str; N]) -> [Option<Value<'a>>; N] {
        self.as_ref().map_or([None; N], |v| v.pick(names))
    }
}

/// A string value, trimmed, when it is not empty (what [`non_empty`]
/// reads from a field).
pub fn non_empty_str(v: Option<Value<'_>>) -> Option<&str> {
    v.and_then(ValueIntoString::into_string).map(str::trim).filter(|s| !s.is_empty())
}

/// The fields of an object, each key once with its last value (see
/// [`Fields`]), in the order the keys first appear. For the few objects
/// whose keys are data (CSAF `product_status`), not names looked up.
pub(crate) fn distinct_fields<'a>(v: Value<'a>) -> Vec<(&'a str, Value<'a>)> {
    let mut out = Vec::new();
    distinct_fields_into(v, &mut out);
    out
}

/// [`distinct_fields`] into `out` (cleared first), so a caller reuses one
/// buffer across the objects of a document.
pub(crate) fn distinct_fields_into<'a>(v: Value<'a>, out: &mut Vec<(&'a str, Value<'a>)>) {
    out.clear();
    let Some(obj) = v.as_object() else { return };
    if obj.len() <= 16 {
        for (k, v) in &obj {
            match out.iter_mut().find(|(seen, _)| *seen == k) {
                Some(slot) => slot.1 = v,
                None => out.push((k, v)),
            }
        }
    } else {
        // A hostile object with many keys: no quadratic scan.
        let mut at: FastMap<&'a str, usize> = FastMap::default();
        for (k, v) in &obj {
            match at.get(k) {
                Some(&i) => out[i].1 = v,
                None => {
                    at.insert(k, out.len());
                    out.push((k, v));
                }
            }
        }
    }
}

/// Renders a scalar JSON value (string, number, bool) as a string; `None`
/// for null, arrays and objects. Versions and revisions come as either.
pub fn scalar_string(v: Value<'_>) -> Option<String> {
    scalar_str(v).map(Cow::into_owned)
}

/// [`scalar_string`], borrowing a string value from the document.
pub fn scalar_str(v: Value<'_>) -> Option<Cow<'_, str>> {
    if let Some(s) = v.into_string() {
        return Some(Cow::Borrowed(s));
    }
    if v.is_null() || v.is_array() || v.is_object() {
        return None;
    }
    Some(Cow::Owned(v.encode()))
}

/// The elements of an optional array; nothing when it is absent or not an
/// array.
pub fn elements<'a>(v: Option<Value<'a>>) -> impl Iterator<Item = Value<'a>> {
    v.and_then(|v| v.as_array()).into_iter().flat_map(|a| a.iter())
}

/// A non-empty string field of an object (trimmed).
pub fn non_empty<'a>(v: Value<'a>, key: &str) -> Option<&'a str> {
    non_empty_str(v.field(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::testutil::with_doc;

    #[test]
    fn repeated_keys_take_the_last_value() {
        with_doc(r#"{"a":1,"b":2,"a":"last","c":{"a":0}}"#, |d| {
            assert_eq!(d.field_str("a"), Some("last"));
            assert_eq!(d.field("b").and_then(|v| v.as_u64()), Some(2));
            assert_eq!(d.field("missing"), None);
            assert_eq!(d.field("c").field("a").and_then(|v| v.as_u64()), Some(0));
            let keys: Vec<_> = distinct_fields(d).iter().map(|(k, v)| (*k, v.encode())).collect();
            assert_eq!(
                keys,
                [("a", r#""last""#.to_owned()), ("b", "2".into()), ("c", r#"{"a":0}"#.into())]
            );
        });
        // Many keys take the hashed path: same answer.
        let many: Vec<String> = (0..40).map(|i| format!(r#""k{}":{i}"#, i % 20)).collect();
        with_doc(&format!("{{{}}}", many.join(",")), |d| {
            let f = distinct_fields(d);
            assert_eq!(f.len(), 20);
            assert_eq!(f[3], ("k3", d.field("k3").unwrap()));
            assert_eq!(f[3].1.as_u64(), Some(23));
        });
        assert!(with_doc("[1]", |d| d.field("a").is_none()));
        with_doc(r#"{"a":1,"b":2,"a":3,"z":0}"#, |d| {
            let [a, b, c] = d.pick(["a", "b", "c"]);
            assert_eq!(
                (a.and_then(|v| v.as_u64()), b.and_then(|v| v.as_u64())),
                (Some(3), Some(2))
            );
            assert!(c.is_none());
        });
    }

    #[test]
    fn scalar_string_renders_numbers() {
        let v = |json| with_doc(json, |d| scalar_string(d.get("v").unwrap()));
        assert_eq!(v(r#"{"v":1}"#), Some("1".into()));
        assert_eq!(v(r#"{"v":"2"}"#), Some("2".into()));
        assert_eq!(v(r#"{"v":null}"#), None);
    }
}
