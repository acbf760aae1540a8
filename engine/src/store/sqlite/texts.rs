//! Repeated long texts stored once (layout 4): a statement's `detail`,
//! `action` or `aliases` of [`INTERN_MIN_BYTES`] or more that the writer
//! has met before is a row of `texts`, and the statement holds its id; its
//! `metadata` is stored as its key list's id and its values, each repeated
//! one by id ([`Texts::metadata`]).
//!
//! Vendors repeat the same remediation text, description and notes over
//! every product a document covers (a Red Hat VEX document can carry one
//! 1 KB text for thousands of products), so storing each once is much of
//! a store's size. A text met for the first time stays in the row: most
//! long values that are not repeated (a statement's own metadata) never
//! touch `texts`, whose inserts would otherwise cost a write each; a text
//! stored by an earlier run is found at its second meeting. The
//! columns are declared without a type, so one holds either the text or
//! an INTEGER id into `texts`; readers resolve both through [`resolved`].
//!
//! Ids are assigned in order (appends, like the statements table); each
//! row keeps the xxh3 hash of its body, indexed, so a writer in another
//! process or a later run finds a text already stored. A hash names
//! candidates only: the body is compared before an id is reused, and in
//! memory a second, seeded hash tells texts with one xxh3 apart.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};

/// Values shorter than this stay in the statement row: an id costs a few
/// bytes, and a lookup.
pub(super) const INTERN_MIN_BYTES: usize = 48;

/// Metadata values shorter than this stay in the row (an id is a few
/// digits of JSON).
const VALUE_MIN_BYTES: usize = 16;

/// Most hashes remembered (texts met once, and texts stored) before that
/// memory is cleared: bounded memory on any input (about 24 bytes each).
const MAX_REMEMBERED: usize = 4 << 20;

/// The SQL expression reading column `col` (qualified) as text: the value,
/// or the body its id names.
pub(super) fn resolved(col: &str) -> String {
    format!(
        "CASE typeof({col}) WHEN 'integer' THEN (SELECT body FROM texts WHERE id = {col}) \
         ELSE {col} END"
    )
}

/// The SQL expression reading metadata column `col` (see
/// [`Texts::metadata`]; the encoding itself, when repeated, is stored once
/// like other texts) as its JSON object text, keys in order; a JSON
/// object kept as it was (a value the migration could not read as string
/// pairs) reads as itself.
pub(super) fn resolved_metadata(col: &str) -> String {
    let body = |id: &str| format!("(SELECT body FROM texts WHERE id = {id})");
    // A repeated encoding is itself stored once.
    let col = &resolved(col);
    format!(
        "CASE WHEN {col} IS NULL OR substr({col}, 1, 1) = '{{' THEN {col} \
         ELSE (SELECT json_group_object(k.value, \
         CASE v.type WHEN 'integer' THEN {} ELSE v.value END) \
         FROM json_each({}) k JOIN json_each({col}) v ON v.key = k.key + 1) END",
        body("v.value"),
        body(&format!("json_extract({col}, '$[0]')"))
    )
}

/// A text's two hashes: xxh3 (stored, indexed) and a seeded one (memory
/// only) to tell apart texts whose xxh3 is the same.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Hashes {
    xxh3: i64,
    check: u64,
}

fn hashes(text: &str) -> Hashes {
    Hashes {
        xxh3: xxhash_rust::xxh3::xxh3_64(text.as_bytes()) as i64,
        check: xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), 0x5eed_7e47),
    }
}

/// What the writer remembers: texts met once (by hash), and the ids of
/// texts stored; entries a transaction adds are pending until it commits.
#[derive(Default)]
pub(super) struct Texts {
    /// xxh3 → check of texts met once, not stored.
    seen: HashMap<i64, u64>,
    /// (xxh3, check) → id of stored texts.
    stored: HashMap<(i64, u64), i64>,
    pending: HashMap<(i64, u64), i64>,
}

/// A statement's text column as bound: the text, or its id.
pub(super) enum Stored<'a> {
    Inline(&'a str),
    Id(i64),
}

impl Texts {
    /// `text` as it is stored in a statement row: inline when short or met
    /// for the first time, else the id of its row in `texts` (added in
    /// `conn`'s transaction when missing).
    pub(super) fn store<'a>(
        &mut self,
        conn: &Connection,
        text: Option<&'a str>,
    ) -> rusqlite::Result<Option<Stored<'a>>> {
        match text {
            None => Ok(None),
            Some(t) => self.store_from(conn, t, INTERN_MIN_BYTES).map(Some),
        }
    }

    /// [`Texts::store`] of one text, interned from `min` bytes.
    fn store_from<'a>(
        &mut self,
        conn: &Connection,
        t: &'a str,
        min: usize,
    ) -> rusqlite::Result<Stored<'a>> {
        if t.len() < min {
            return Ok(Stored::Inline(t));
        }
        let h = hashes(t);
        if let Some(id) = self.known(h) {
            return Ok(Stored::Id(id));
        }
        if self.seen.get(&h.xxh3) != Some(&h.check) {
            // The first time (here): inline, without asking the table (an
            // earlier run's row is found at the second meeting).
            if self.seen.len() >= MAX_REMEMBERED {
                self.seen.clear();
            }
            self.seen.insert(h.xxh3, h.check);
            return Ok(Stored::Inline(t));
        }
        self.add(conn, h, t).map(Stored::Id)
    }

    /// The id of `text`, stored now if it is not yet (for texts known to
    /// repeat, such as metadata key lists).
    fn intern(&mut self, conn: &Connection, text: &str) -> rusqlite::Result<i64> {
        let h = hashes(text);
        match self.known(h) {
            Some(id) => Ok(id),
            None => self.add(conn, h, text),
        }
    }

    /// The id of a text this writer knows is stored.
    fn known(&self, h: Hashes) -> Option<i64> {
        let key = (h.xxh3, h.check);
        self.stored.get(&key).or_else(|| self.pending.get(&key)).copied()
    }

    /// Finds `text` in the table, or inserts it; pending until commit.
    fn add(&mut self, conn: &Connection, h: Hashes, text: &str) -> rusqlite::Result<i64> {
        let id = match find(conn, h.xxh3, text)? {
            Some(id) => id,
            None => {
                conn.prepare_cached("INSERT INTO texts (hash, body) VALUES (?1, ?2)")?
                    .execute(rusqlite::params![h.xxh3, text])?;
                conn.last_insert_rowid()
            }
        };
        self.pending.insert((h.xxh3, h.check), id);
        Ok(id)
    }

    /// A statement's metadata as stored: a JSON array whose first element
    /// is the id of its key list (a JSON array of the keys, in order) and
    /// the rest its values, each a string or the id of a repeated one. A
    /// Red Hat statement's metadata repeats almost never as a whole, but
    /// its key names and most of its values (platform, CPE, relationship)
    /// do. `None` for no metadata.
    pub(super) fn metadata(
        &mut self,
        conn: &Connection,
        entries: &[(&str, &str)],
    ) -> rusqlite::Result<Option<String>> {
        use std::fmt::Write as _;
        if entries.is_empty() {
            return Ok(None);
        }
        let keys: Vec<&str> = entries.iter().map(|&(k, _)| k).collect();
        let keys = serde_json::to_string(&keys).unwrap_or_default();
        let mut out =
            String::with_capacity(16 + entries.iter().map(|(_, v)| v.len() + 3).sum::<usize>());
        let _ = write!(out, "[{}", self.intern(conn, &keys)?);
        for &(_, v) in entries {
            match self.store_from(conn, v, VALUE_MIN_BYTES)? {
                Stored::Id(id) => {
                    let _ = write!(out, ",{id}");
                }
                Stored::Inline(s) => {
                    out.push(',');
                    out.push_str(&serde_json::to_string(s).unwrap_or_default());
                }
            }
        }
        out.push(']');
        Ok(Some(out))
    }

    /// The transaction committed: what it stored is known.
    pub(super) fn committed(&mut self) {
        if self.stored.len() + self.pending.len() > MAX_REMEMBERED {
            self.stored.clear();
        }
        for (key, id) in self.pending.drain() {
            self.seen.remove(&key.0);
            self.stored.insert(key, id);
        }
    }

    /// The transaction rolled back: forget what it stored.
    pub(super) fn rolled_back(&mut self) {
        self.pending.clear();
    }
}

/// The id of `text` in `texts`, if it is there (`hash` is its xxh3).
fn find(conn: &Connection, hash: i64, text: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM texts WHERE hash = ?1 AND body = ?2")?
        .query_row(rusqlite::params![hash, text], |r| r.get(0))
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE texts (id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, body TEXT NOT NULL);
             CREATE INDEX texts_hash ON texts (hash);",
        )
        .unwrap();
        c
    }

    fn id(s: Option<Stored<'_>>) -> Option<i64> {
        match s {
            Some(Stored::Id(id)) => Some(id),
            _ => None,
        }
    }

    fn count(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM texts", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_repeated_text_is_stored_once_and_read_back_through_its_id() {
        let c = conn();
        let mut t = Texts::default();
        let long = "x".repeat(100);
        // Met once: inline. Twice: stored, and the same id from then on.
        assert!(matches!(t.store(&c, Some(&long)).unwrap(), Some(Stored::Inline(_))));
        let a = id(t.store(&c, Some(&long)).unwrap()).expect("stored the second time");
        assert_eq!(id(t.store(&c, Some(&long)).unwrap()), Some(a));
        t.committed();
        assert_eq!(id(t.store(&c, Some(&long)).unwrap()), Some(a));
        // Another writer (a new memory) finds its row at its second meeting.
        let mut other = Texts::default();
        assert!(matches!(other.store(&c, Some(&long)).unwrap(), Some(Stored::Inline(_))));
        assert_eq!(id(other.store(&c, Some(&long)).unwrap()), Some(a));
        assert_eq!(count(&c), 1);
        let body: String =
            c.query_row(&format!("SELECT {}", resolved("?1")), [a], |r| r.get(0)).unwrap();
        assert_eq!(body, long);
        let inline: String =
            c.query_row(&format!("SELECT {}", resolved("?1")), ["short"], |r| r.get(0)).unwrap();
        assert_eq!(inline, "short");
        assert!(matches!(t.store(&c, Some("short")).unwrap(), Some(Stored::Inline("short"))));
        assert!(t.store(&c, None).unwrap().is_none());
    }

    #[test]
    fn metadata_is_its_key_list_and_values_and_reads_back_as_the_object() {
        let c = conn();
        let mut t = Texts::default();
        let platform = "Red Hat Enterprise Linux AppStream 9";
        let read = |stored: &str| -> String {
            c.query_row(&format!("SELECT {}", resolved_metadata("?1")), [stored], |r| r.get(0))
                .unwrap()
        };
        let mut rows = Vec::new();
        for component in ["kernel-0:5.14.0-1.el9.x86_64", "kernel-0:5.14.0-2.el9.x86_64"] {
            let entries = [
                ("component", component),
                ("platformName", platform),
                ("quote", "a \"quoted\" \\ line\nand ünïcode"),
                ("status", "fixed"),
            ];
            let stored = t.metadata(&c, &entries).unwrap().unwrap();
            let object: serde_json::Value = serde_json::from_str(&read(&stored)).unwrap();
            let expected: serde_json::Map<String, serde_json::Value> =
                entries.iter().map(|&(k, v)| (k.to_owned(), v.into())).collect();
            assert_eq!(object, serde_json::Value::Object(expected), "{stored}");
            rows.push(stored);
        }
        // The second row refers to the repeated platform name by id.
        assert!(rows[0].contains(platform) && !rows[1].contains(platform), "{rows:?}");
        assert!(t.metadata(&c, &[]).unwrap().is_none());
        // A repeated encoding is stored once, and reads the same by its id.
        t.store(&c, Some(&rows[0])).unwrap();
        let Some(Stored::Id(id)) = t.store(&c, Some(&rows[0])).unwrap() else { panic!("interned") };
        let by_id: String = c
            .query_row(&format!("SELECT {}", resolved_metadata("?1")), [id], |r| r.get(0))
            .unwrap();
        assert_eq!(by_id, read(&rows[0]));
        // A JSON object (kept as it was by a migration) reads as itself.
        assert_eq!(read("{\"a\":\"b\"}"), "{\"a\":\"b\"}");
    }

    #[test]
    fn texts_with_one_hash_are_told_apart_by_their_body() {
        let c = conn();
        let text = "y".repeat(64);
        let h = hashes(&text);
        // Another text already stored under this text's hash.
        c.execute("INSERT INTO texts (hash, body) VALUES (?1, 'someone else')", [h.xxh3]).unwrap();
        let mut t = Texts::default();
        t.store(&c, Some(&text)).unwrap();
        let got = id(t.store(&c, Some(&text)).unwrap()).unwrap();
        assert_ne!(got, 1, "a row of its own");
        let body: String =
            c.query_row("SELECT body FROM texts WHERE id = ?1", [got], |r| r.get(0)).unwrap();
        assert_eq!(body, text);
        // In memory, a text met once with another check hash is not this one.
        let mut t = Texts::default();
        t.seen.insert(h.xxh3 ^ 1, 0);
        t.seen.insert(h.xxh3, h.check ^ 1);
        let other = "z".repeat(64);
        assert!(matches!(t.store(&c, Some(&other)).unwrap(), Some(Stored::Inline(_))));
    }

    #[test]
    fn a_rolled_back_insert_is_forgotten() {
        let mut c = conn();
        let mut t = Texts::default();
        let text = "z".repeat(64);
        t.store(&c, Some(&text)).unwrap();
        let tx = c.transaction().unwrap();
        id(t.store(&tx, Some(&text)).unwrap()).unwrap();
        drop(tx);
        t.rolled_back();
        assert_eq!(count(&c), 0);
        let again = id(t.store(&c, Some(&text)).unwrap()).expect("stored again");
        t.committed();
        let n: i64 =
            c.query_row("SELECT count(*) FROM texts WHERE id = ?1", [again], |r| r.get(0)).unwrap();
        assert_eq!(n, 1, "inserted again after the rollback");
    }
}
