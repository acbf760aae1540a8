#!/usr/bin/env python3
"""Shape of a store's statements, from `backfill export statements` on stdin:
statements per document, exported bytes per statement, and how much of that
is repeated text (action, detail, metadata).

    backfill export --store S | benches/scale/shape_stats.py [STORE_FILE]

With STORE_FILE (a SQLite store), also its bytes per statement."""
import collections
import json
import os
import statistics
import sys

per_doc = collections.Counter()
actions_per_doc = collections.defaultdict(set)
total = line_bytes = action_bytes = detail_bytes = meta_bytes = 0
actions, details = set(), set()
for line in sys.stdin:
    s = json.loads(line)
    d = s["document"]["digest"]
    per_doc[d] += 1
    total += 1
    line_bytes += len(line)
    a, t = s.get("action") or "", s.get("detail") or ""
    action_bytes += len(a.encode())
    detail_bytes += len(t.encode())
    meta_bytes += len(json.dumps(s.get("metadata") or {}, separators=(",", ":")).encode())
    actions.add(a)
    details.add(t)
    actions_per_doc[d].add(a)
counts = sorted(per_doc.values())
q = statistics.quantiles(counts, n=10) if len(counts) > 1 else counts * 9
print(f"documents {len(counts)}, statements {total}")
print(f"statements per document: median {statistics.median(counts):.0f}, p90 {q[8]:.0f}, max {counts[-1]}")
print(f"exported bytes per statement {line_bytes / total:.0f}; action {action_bytes / total:.0f}, "
      f"detail {detail_bytes / total:.0f}, metadata {meta_bytes / total:.0f}")
print(f"distinct actions {len(actions)}, details {len(details)}; distinct actions per document: "
      f"median {statistics.median(len(v) for v in actions_per_doc.values()):.0f}")
if len(sys.argv) > 1:
    size = sum(os.path.getsize(sys.argv[1] + ext) for ext in ("", "-wal") if os.path.exists(sys.argv[1] + ext))
    print(f"store bytes per statement {size / total:.0f}")
