//! Text that PostgreSQL cannot hold as it is: U+0000. A `text` or `jsonb`
//! value may not contain it, while a document may (`"detail": "a\u0000b"`)
//! and the other stores keep it. So strings are stored with a lossless
//! escape, and read back unescaped: U+0000 is stored as U+E000 U+E002, and
//! U+E000 (a private-use character, the escape) as U+E000 U+E001. A string
//! with neither, which is every string in practice, is stored as it is.

use std::borrow::Cow;

/// The escape character.
const ESCAPE: char = '\u{E000}';

/// `s` as stored.
pub(super) fn store(s: &str) -> Cow<'_, str> {
    if !s.contains(['\0', ESCAPE]) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\u{E000}\u{E002}"),
            ESCAPE => out.push_str("\u{E000}\u{E001}"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` as stored, for an optional value.
pub(super) fn store_opt(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.map(store)
}

/// A stored string as it was given.
pub(super) fn load(s: String) -> String {
    if !s.contains(ESCAPE) {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != ESCAPE {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\u{E002}') => out.push('\0'),
            Some('\u{E001}') | None => out.push(ESCAPE),
            Some(other) => {
                out.push(ESCAPE);
                out.push(other);
            }
        }
    }
    out
}

/// A stored optional string as it was given.
pub(super) fn load_opt(s: Option<String>) -> Option<String> {
    s.map(load)
}

/// Every string (keys too) in a JSON value, as stored or as loaded.
pub(super) fn map_json(v: serde_json::Value, f: &dyn Fn(String) -> String) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(f(s)),
        Value::Array(a) => Value::Array(a.into_iter().map(|v| map_json(v, f)).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (f(k), map_json(v, f))).collect())
        }
        other => other,
    }
}

/// A JSON value as stored.
pub(super) fn store_json(v: serde_json::Value) -> serde_json::Value {
    map_json(v, &|s| store(&s).into_owned())
}

/// A stored JSON value as it was given.
pub(super) fn load_json(v: serde_json::Value) -> serde_json::Value {
    map_json(v, &load)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_with_nul_or_the_escape_round_trip_and_others_are_kept() {
        for s in
            ["", "plain", "a\0b", "\0", "\u{E000}", "x\u{E000}\u{E002}\0\u{E001}y", "\u{E000}\0"]
        {
            let stored = store(s).into_owned();
            assert!(!stored.contains('\0'), "{stored:?}");
            assert_eq!(load(stored), s);
        }
        assert!(matches!(store("plain"), Cow::Borrowed(_)));
        let v = serde_json::json!({"k\0": ["a\0", 1, {"b": "\u{E000}"}]});
        assert_eq!(load_json(store_json(v.clone())), v);
        assert!(!store_json(v).to_string().contains("\\u0000"));
    }
}
