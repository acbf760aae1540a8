#!/usr/bin/env python3
"""DuckDB loads of an EPSS NDJSON file into a persistent database, three ways
(BENCHMARKS.md): plain CTAS, CTAS with SELECT DISTINCT, and INSERT OR IGNORE
into a table keyed by cve. Usage: duckdb_load.py MODE FILE DB"""
import sys

import duckdb

mode, src, db = sys.argv[1:4]
con = duckdb.connect(db)
if mode == "ctas":
    con.execute(f"CREATE TABLE epss AS SELECT * FROM read_ndjson_auto('{src}')")
elif mode == "distinct":
    con.execute(f"CREATE TABLE epss AS SELECT DISTINCT * FROM read_ndjson_auto('{src}')")
elif mode == "keyed":
    con.execute("CREATE TABLE epss (cve_id VARCHAR PRIMARY KEY, epss_score DOUBLE, is_known_exploit BOOLEAN)")
    con.execute(f"INSERT OR IGNORE INTO epss SELECT cve_id, epss_score, is_known_exploit FROM read_ndjson_auto('{src}')")
else:
    sys.exit(f"unknown mode {mode}")
con.execute("CHECKPOINT")
print(con.execute("SELECT count(*) FROM epss").fetchone()[0])
