#!/usr/bin/env python3
"""Writes testdata/malformed/: one small input per bad-input case.

Each file's expected outcome is in EXPECTED below, in
testdata/README.md, and asserted by cli/tests/malformed.rs. Cases that
need special files (FIFO, dangling symlink, gzip bomb, unreadable file)
are created by the tests at run time instead.
Run from the repository root: python3 testdata/make_malformed.py
"""
import base64
import gzip
import hashlib
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "malformed")

DOC = json.dumps({
    "@context": "https://openvex.dev/ns/v0.2.0",
    "@id": "https://example.com/vex/malformed-corpus",
    "statements": [{"vulnerability": {"name": "CVE-2024-9999"},
                    "products": [{"@id": "pkg:npm/ok@1.0.0"}], "status": "fixed"}],
}).encode()


def doc(case):
    """A valid OpenVEX document unique to one case."""
    d = json.loads(DOC)
    d["@id"] = "https://example.com/vex/" + case
    return json.dumps(d).encode()


def env(doc=DOC, **over):
    e = {"digest": "sha256:" + hashlib.sha256(doc).hexdigest(), "providerId": "corpus",
         "sourceUri": "https://example.com/x.json", "retrievedAt": "2024-05-01T00:00:00Z",
         "content": base64.b64encode(doc).decode()}
    e.update(over)
    return json.dumps(e).encode()


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    # (file, bytes) - outcomes are documented in testdata/README.md.
    write("bom.ndjson", b"\xef\xbb\xbf" + env(doc("bom")) + b"\n")
    write("blank-lines.ndjson", b"\n   \n" + env(doc("blank-lines")) + b"\n\n\t\n")
    write("no-final-newline.ndjson", env(doc("no-final-newline")))
    write("truncated-last-line.ndjson",
          env(doc("truncated-last-line")) + b"\n" + env(retrievedAt="2024-05-05T00:00:00Z")[:80])
    write("empty.ndjson", b"")
    write("invalid-utf8-envelope.ndjson", env()[:-2].replace(b'"corpus"', b'"corp\xff\xfeus"') + b"}\n")
    write("nul-byte.ndjson", env().replace(b'"providerId"', b'"provider\x00Id"') + b"\n")
    bad_doc = b'{"@context":"https://openvex.dev/ns/v0.2.0","statements":[],"x":"\xff"}'
    write("invalid-utf8-document.ndjson", env(bad_doc) + b"\n")
    write("crlf.ndjson", env(doc("crlf")) + b"\r\n")
    no_digest = json.loads(env(content="!!!not base64!!!"))
    del no_digest["digest"]
    write("bad-base64.ndjson", json.dumps(no_digest).encode() + b"\n")
    write("content-number.ndjson", json.dumps({"retrievedAt": "2024-05-01", "content": 42}).encode() + b"\n")
    write("missing-content.ndjson", json.dumps({"retrievedAt": "2024-05-01", "providerId": "x"}).encode() + b"\n")
    write("missing-retrieved-at.ndjson", json.dumps({"content": base64.b64encode(DOC).decode()}).encode() + b"\n")
    write("bad-retrieved-at.ndjson", env(retrievedAt="last tuesday") + b"\n")
    write("bad-digest-syntax.ndjson", env(digest="md5:abc") + b"\n")
    write("digest-mismatch.ndjson", env(digest="sha256:" + "0" * 64) + b"\n")
    write("unknown-format-name.ndjson", env(format="spdx") + b"\n")
    write("format-mismatch.ndjson", env(format="csaf") + b"\n")
    write("not-an-object.json", b"[1, 2, 3]")
    write("unknown-format.json", b'{"hello": "world"}')
    write("deep-nesting.json", b"[" * 5000 + b"]" * 5000)
    write("truncated-document.json", DOC[:-10])
    write("scalar-document.json", b"42")
    write("normalizer-error.json", b'{"@context":"https://openvex.dev/ns/v0.2.0","statements":"nope"}')
    with open(os.path.join(OUT, "archive.ndjson.gz"), "wb") as f:
        # mtime=0 keeps the bytes reproducible.
        f.write(gzip.compress(env(doc("gzip")) + b"\n", mtime=0))


if __name__ == "__main__":
    main()
