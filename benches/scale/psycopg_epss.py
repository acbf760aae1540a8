#!/usr/bin/env python3
"""Baseline for the PostgreSQL EPSS rows of BENCHMARKS.md: a plain psycopg
`executemany` upsert loader of a GitLab EPSS NDJSON file (or a bucket's
*.ndjson files), deduplicated by CVE (last row wins), in batches of 50,000
rows, one committed (durable) transaction each, with the same table and the
same change rule as backfill's PostgreSQL store.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install 'psycopg[binary]'
    /tmp/venv/bin/python benches/scale/psycopg_epss.py postgres://…/db FILE_OR_DIR
"""
import json
import pathlib
import sys
import time

import psycopg

BATCH = 50_000
DDL = """CREATE TABLE IF NOT EXISTS epss_baseline (
    cve text COLLATE "C" PRIMARY KEY, cve_key bigint NOT NULL UNIQUE,
    epss_score double precision NOT NULL, percentile double precision,
    is_known_exploit boolean, model_version text, score_date text,
    created_at bigint NOT NULL, updated_at bigint NOT NULL)"""
UPSERT = """INSERT INTO epss_baseline AS o (cve, cve_key, epss_score, percentile,
        is_known_exploit, model_version, score_date, created_at, updated_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (cve) DO UPDATE SET
        epss_score = excluded.epss_score,
        percentile = coalesce(excluded.percentile, o.percentile),
        is_known_exploit = coalesce(excluded.is_known_exploit, o.is_known_exploit),
        model_version = coalesce(excluded.model_version, o.model_version),
        score_date = coalesce(excluded.score_date, o.score_date),
        updated_at = excluded.updated_at
    WHERE o.epss_score IS DISTINCT FROM excluded.epss_score
        OR (excluded.percentile IS NOT NULL AND o.percentile IS DISTINCT FROM excluded.percentile)
        OR (excluded.is_known_exploit IS NOT NULL
            AND coalesce(o.is_known_exploit, false) IS DISTINCT FROM excluded.is_known_exploit)
        OR (excluded.model_version IS NOT NULL
            AND o.model_version IS DISTINCT FROM excluded.model_version)"""


def cve_key(cve):
    """The lossless integer of a CVE id, as backfill's `CveId::key`."""
    _, year, num = cve.split("-")
    before = sum(10**k for k in range(4, len(num)))
    return int(year) * 1_111_111_111_110_000 + before + int(num)


def rows(path):
    p = pathlib.Path(path)
    files = sorted(p.rglob("*.ndjson")) if p.is_dir() else [p]
    latest = {}
    for f in files:
        with open(f, "rb") as fh:
            for line in fh:
                r = json.loads(line)
                latest[r["cve_id"]] = r
    return latest


def main():
    uri, path = sys.argv[1], sys.argv[2]
    start = time.monotonic()
    latest = rows(path)
    now = int(time.time() * 1_000_000)
    with psycopg.connect(uri) as conn:
        conn.execute(DDL)
        conn.commit()
        batch = []
        with conn.cursor() as cur:
            for cve in sorted(latest):
                r = latest[cve]
                batch.append((cve, cve_key(cve), r["epss_score"], r.get("percentile"),
                              r.get("is_known_exploit"), r.get("model_version"),
                              r.get("score_date"), now, now))
                if len(batch) == BATCH:
                    cur.executemany(UPSERT, batch)
                    conn.commit()
                    batch.clear()
            if batch:
                cur.executemany(UPSERT, batch)
                conn.commit()
    print(f"{len(latest)} rows in {time.monotonic() - start:.3f} s")


if __name__ == "__main__":
    main()
