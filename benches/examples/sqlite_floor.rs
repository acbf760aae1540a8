//! How fast SQLite alone takes EPSS-shaped rows, with no parsing at all: the
//! floor under `backfill epss` into the embedded store.
//!
//! `cargo run --release -p backfill-benches --example sqlite_floor -- ORDER [ROWS] [FILE]`
//!
//! ORDER is `sorted` (CVE order, as real exports) or `interleaved` (27 years
//! round-robin, as `backfill gen epss --order interleaved`). Rows go in
//! batches of 50,000, each sorted by key and written in one transaction of
//! 64-row plain INSERTs (no upsert, no change detection), with the store's
//! settings: 16 KiB pages, WAL, synchronous NORMAL, a final TRUNCATE
//! checkpoint (durable).

use std::time::Instant;

use backfill_engine::CveId;
use rusqlite::Connection;

const BATCH: usize = 50_000;
const PER_INSERT: usize = 64;

fn main() -> rusqlite::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let order = args.get(1).map(String::as_str).unwrap_or("sorted");
    let rows: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let path = args.get(3).cloned().unwrap_or_else(|| "/tmp/sqlite_floor.db".into());
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{ext}"));
    }
    // The ids `backfill gen epss` issues (repeats aside).
    let per_year = rows.div_ceil(27).max(1);
    let ids: Vec<(i64, String)> = (0..rows)
        .map(|n| {
            let (year, number) = match order {
                "interleaved" => (1999 + n % 27, n / 27 + 1),
                _ => (1999 + n / per_year, n % per_year + 1),
            };
            let cve = format!("CVE-{year}-{number:05}");
            (CveId::parse(&cve).map_or(0, |c| c.key()), cve)
        })
        .collect();

    let started = Instant::now();
    let mut conn = Connection::open(&path)?;
    conn.execute_batch(
        "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         PRAGMA cache_size = -163840; PRAGMA wal_autocheckpoint = 4096;
         CREATE TABLE epss (id INTEGER PRIMARY KEY, cve TEXT NOT NULL,
            epss_score REAL NOT NULL, percentile REAL, is_known_exploit INTEGER,
            model_version TEXT, score_date TEXT, created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL);",
    )?;
    let values: Vec<String> = (0..PER_INSERT)
        .map(|i| {
            format!("(?{}, ?{}, ?{}, NULL, 0, NULL, NULL, 1, 1)", 3 * i + 1, 3 * i + 2, 3 * i + 3)
        })
        .collect();
    let many = format!("INSERT OR IGNORE INTO epss VALUES {}", values.join(", "));
    let one = "INSERT OR IGNORE INTO epss VALUES (?1, ?2, ?3, NULL, 0, NULL, NULL, 1, 1)";
    let mut batch: Vec<&(i64, String)> = Vec::with_capacity(BATCH);
    for chunk in ids.chunks(BATCH) {
        batch.clear();
        batch.extend(chunk);
        batch.sort_unstable_by_key(|r| r.0);
        let tx = conn.transaction()?;
        {
            let mut many = tx.prepare_cached(&many)?;
            let mut one = tx.prepare_cached(one)?;
            for group in batch.chunks(PER_INSERT) {
                let st = if group.len() == PER_INSERT { &mut many } else { &mut one };
                for part in group.chunks(if group.len() == PER_INSERT { PER_INSERT } else { 1 }) {
                    for (i, (key, cve)) in part.iter().enumerate() {
                        st.raw_bind_parameter(3 * i + 1, key)?;
                        st.raw_bind_parameter(3 * i + 2, cve.as_str())?;
                        st.raw_bind_parameter(3 * i + 3, 0.5)?;
                    }
                    st.raw_execute()?;
                }
            }
        }
        tx.commit()?;
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let secs = started.elapsed().as_secs_f64();
    drop(conn);
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "{order}: {rows} rows in {secs:.2} s ({:.0} rows/s), file {} MB",
        rows as f64 / secs,
        size / 1_000_000
    );
    Ok(())
}
