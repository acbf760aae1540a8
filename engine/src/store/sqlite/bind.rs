//! Statement inserts that SQLite reads in place: the one `unsafe` part of
//! the SQLite store, kept alone so its contract can be checked in one file.
//!
//! rusqlite binds every string as `SQLITE_TRANSIENT`, which makes SQLite
//! allocate and copy each value: a sixth of the single writer's time when
//! replaying statements. [`StaticStatement`] binds them `SQLITE_STATIC`
//! instead, which is sound only under the contract below.

use rusqlite::{ffi, Connection};

/// A value for [`StaticStatement::execute`].
#[derive(Clone, Copy)]
pub(super) enum Bind<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

impl<'a> From<Option<&'a str>> for Bind<'a> {
    fn from(v: Option<&'a str>) -> Bind<'a> {
        v.map_or(Bind::Null, Bind::Text)
    }
}

/// A prepared statement that SQLite reads its text parameters from in place
/// (`SQLITE_STATIC`).
///
/// # Safety
///
/// Two rules keep it sound:
///
/// * The connection it was prepared on must stay open until it is dropped
///   (it keeps raw handles to both): the caller of
///   [`prepare`](Self::prepare) promises this.
/// * SQLite may read a bound text only while the value lives. The type
///   guarantees this itself: [`execute`](Self::execute) binds, steps,
///   resets and clears the bindings within one borrow of the values, so no
///   pointer to them is left behind when it returns, even on an error.
pub(super) struct StaticStatement {
    stmt: std::ptr::NonNull<ffi::sqlite3_stmt>,
    db: *mut ffi::sqlite3,
}

// SAFETY: the statement belongs to one connection, which may move between
// threads (rusqlite's `Connection` is `Send`) but is never shared: both are
// used only through `&mut SqliteStore`.
unsafe impl Send for StaticStatement {}

impl StaticStatement {
    /// Prepares `sql` on `conn`.
    ///
    /// # Safety
    ///
    /// `conn` must stay open until the statement is dropped: the statement
    /// keeps its raw handle.
    pub(super) unsafe fn prepare(
        conn: &Connection,
        sql: &str,
    ) -> rusqlite::Result<StaticStatement> {
        let len = std::ffi::c_int::try_from(sql.len()).map_err(|_| {
            rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_TOOBIG), None)
        })?;
        // SAFETY: the handle is valid while `conn` lives; SQLite reads `len`
        // bytes of `sql` (no terminator needed) and writes the statement.
        unsafe {
            let db = conn.handle();
            let mut stmt = std::ptr::null_mut();
            let rc = ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT as std::ffi::c_uint,
                &mut stmt,
                std::ptr::null_mut(),
            );
            match std::ptr::NonNull::new(stmt) {
                Some(stmt) if rc == ffi::SQLITE_OK => Ok(StaticStatement { stmt, db }),
                _ => {
                    ffi::sqlite3_finalize(stmt);
                    Err(sqlite_error(db, rc))
                }
            }
        }
    }

    /// Binds `values` to parameters 1.., runs the statement to completion
    /// and leaves it reset with no bindings.
    pub(super) fn execute(&mut self, values: &[Bind<'_>]) -> rusqlite::Result<()> {
        let result = self.bind_and_step(values);
        // SAFETY: a valid statement; afterwards it refers to none of `values`.
        unsafe {
            ffi::sqlite3_reset(self.stmt.as_ptr());
            ffi::sqlite3_clear_bindings(self.stmt.as_ptr());
        }
        result
    }

    fn bind_and_step(&mut self, values: &[Bind<'_>]) -> rusqlite::Result<()> {
        let stmt = self.stmt.as_ptr();
        for (i, v) in values.iter().enumerate() {
            let n = (i + 1) as std::ffi::c_int;
            // SAFETY: a valid statement; a text pointer stays valid until
            // `execute` clears the bindings (`values` is borrowed until then).
            let rc = unsafe {
                match *v {
                    Bind::Null => ffi::sqlite3_bind_null(stmt, n),
                    Bind::Int(x) => ffi::sqlite3_bind_int64(stmt, n, x),
                    Bind::Text(s) => {
                        // A static pointer for "" (a `String`'s may dangle).
                        let p = if s.is_empty() { "".as_ptr() } else { s.as_ptr() };
                        ffi::sqlite3_bind_text64(
                            stmt,
                            n,
                            p.cast(),
                            s.len() as ffi::sqlite3_uint64,
                            ffi::SQLITE_STATIC(),
                            ffi::SQLITE_UTF8 as std::ffi::c_uchar,
                        )
                    }
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(sqlite_error(self.db, rc));
            }
        }
        // SAFETY: a valid statement with its parameters bound.
        match unsafe { ffi::sqlite3_step(stmt) } {
            ffi::SQLITE_DONE => Ok(()),
            rc => Err(sqlite_error(self.db, rc)),
        }
    }
}

impl Drop for StaticStatement {
    fn drop(&mut self) {
        // SAFETY: finalized once, while its connection is still open.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// The error of a failed call on `db`, with SQLite's message. `db` must be
/// an open handle: only this file calls it, with a statement's own.
fn sqlite_error(db: *mut ffi::sqlite3, rc: std::ffi::c_int) -> rusqlite::Error {
    // SAFETY: a valid handle; the message is copied before the next call.
    let (code, message) = unsafe {
        let m = ffi::sqlite3_errmsg(db);
        let m = (!m.is_null()).then(|| std::ffi::CStr::from_ptr(m).to_string_lossy().into_owned());
        (ffi::sqlite3_extended_errcode(db), m)
    };
    let code = if code == ffi::SQLITE_OK { rc } else { code };
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_statements_store_what_was_bound_and_report_errors() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c TEXT NOT NULL)")
            .unwrap();
        // SAFETY (here and below): `conn` outlives the statements.
        let mut insert = unsafe {
            StaticStatement::prepare(&conn, "INSERT INTO t VALUES (?1, ?2, ?3), (?4, ?5, ?6)")
        }
        .unwrap();
        for round in 0..3i64 {
            // Values that are freed right after `execute`: SQLite must have
            // copied what it stored.
            let texts: Vec<String> = (0..2).map(|i| format!("text {round} {i}")).collect();
            insert
                .execute(&[
                    Bind::Int(round * 2),
                    Bind::Text(&texts[0]),
                    Bind::Text(""),
                    Bind::Int(round * 2 + 1),
                    Bind::Null,
                    Bind::Text(&texts[1]),
                ])
                .unwrap();
        }
        let rows: Vec<(i64, Option<String>, String)> = conn
            .prepare("SELECT a, b, c FROM t ORDER BY a")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[4], (4, Some("text 2 0".into()), String::new()));
        assert_eq!(rows[5], (5, None, "text 2 1".into()));
        // A failed execute leaves the statement reusable.
        let e = insert
            .execute(&[
                Bind::Int(7),
                Bind::Null,
                Bind::Null,
                Bind::Int(8),
                Bind::Null,
                Bind::Text("x"),
            ])
            .unwrap_err();
        assert!(e.to_string().contains("NOT NULL constraint failed: t.c"), "{e}");
        insert
            .execute(&[
                Bind::Int(7),
                Bind::Null,
                Bind::Text("y"),
                Bind::Int(8),
                Bind::Null,
                Bind::Text("z"),
            ])
            .unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 8);
        let bad = unsafe { StaticStatement::prepare(&conn, "INSERT INTO nowhere VALUES (1)") }
            .err()
            .unwrap();
        assert!(bad.to_string().contains("no such table: nowhere"), "{bad}");
    }
}
