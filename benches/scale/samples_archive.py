#!/usr/bin/env python3
"""Writes a raw NDJSON archive of the real sample documents (../shared/samples),
each repeated until the archive reaches TARGET_MB, every copy with its own
digest (a top-level "x-replay" member added; the normalizers ignore it).

    benches/scale/samples_archive.py SAMPLES_DIR OUT.ndjson TARGET_MB

Documents that do not parse as JSON (the corpus's deliberately malformed
ones) are left out: this archive measures throughput, not failures."""
import base64
import hashlib
import json
import pathlib
import sys

root, out, target_mb = pathlib.Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
docs = []
for fmt in ("csaf", "cyclonedx", "openvex"):
    for p in sorted((root / fmt).glob("*.json")):
        try:
            doc = json.loads(p.read_bytes().decode("utf-8-sig"))
        except ValueError:
            continue
        if isinstance(doc, dict) and doc:
            docs.append((fmt, p.name, doc))
target = int(target_mb * 1e6)
written, k = 0, 0
with open(out, "w") as f:
    while written < target:
        for fmt, name, doc in docs:
            doc = dict(doc, **{"x-replay": k})
            raw = json.dumps(doc, separators=(",", ":")).encode()
            line = json.dumps({
                "digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
                "providerId": fmt,
                "sourceUri": f"https://samples.example/{name}?copy={k}",
                "retrievedAt": f"2025-01-01T00:00:{k % 60:02d}Z",
                "content": base64.b64encode(raw).decode(),
            })
            f.write(line + "\n")
            written += len(line) + 1
        k += 1
print(f"{len(docs)} documents x {k} copies, {written / 1e6:.0f} MB", file=sys.stderr)
