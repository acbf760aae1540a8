#!/usr/bin/env python3
"""The loader a user would write first: json + sqlite3, one transaction,
INSERT OR IGNORE into a table keyed by cve. Baseline for BENCHMARKS.md."""
import json
import sqlite3
import sys

src, db = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db)
con.execute("PRAGMA journal_mode=WAL")
con.execute("CREATE TABLE IF NOT EXISTS epss (cve TEXT PRIMARY KEY, epss_score REAL, is_known_exploit INTEGER)")
with open(src, "rb") as f, con:
    con.executemany(
        "INSERT OR IGNORE INTO epss VALUES (?, ?, ?)",
        ((r["cve_id"], r["epss_score"], int(r.get("is_known_exploit", False)))
         for r in map(json.loads, f)),
    )
print(con.execute("SELECT count(*) FROM epss").fetchone()[0])
