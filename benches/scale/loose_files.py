#!/usr/bin/env python3
"""Writes a mirror-like directory of N loose OpenVEX documents, one small
file per CVE (as Red Hat publishes one VEX file per CVE), for the
million-file benchmark in BENCHMARKS.md. Deterministic: the same N writes
the same bytes (file times aside; the benchmark passes --retrieved-at).

Usage: loose_files.py DIR N [--per-dir K]
  --per-dir K   K files per subdirectory (default: all in DIR itself, the
                worst case for a directory walk)
"""
import argparse
import json
import os

STATUSES = ["affected", "not_affected", "fixed", "under_investigation"]


def document(i):
    statements = []
    for j in range(1 + i % 3):
        status = STATUSES[(i + j) % 4]
        s = {
            "vulnerability": {"name": f"CVE-{2000 + i % 26}-{10000 + i // 26}"},
            "products": [{"@id": f"pkg:rpm/redhat/pkg{i % 5000}@{j}.{i % 97}-1.el9"}],
            "status": status,
        }
        if status == "not_affected":
            s["justification"] = "vulnerable_code_not_present"
        statements.append(s)
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": f"https://vex.example/redhat/{i}",
        "author": "Synthetic PSIRT",
        "timestamp": "2024-05-01T00:00:00Z",
        "version": 1,
        "statements": statements,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("n", type=int)
    ap.add_argument("--per-dir", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    made = set()
    for i in range(a.n):
        d = a.dir if a.per_dir <= 0 else os.path.join(a.dir, f"{i // a.per_dir:05d}")
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        with open(os.path.join(d, f"cve-{i:07d}.json"), "w") as f:
            json.dump(document(i), f, separators=(",", ":"))
    print(f"Wrote {a.n} files to {a.dir}.")


if __name__ == "__main__":
    main()
