#!/usr/bin/env python3
"""Writes testdata/raw/sample.ndjson: the bundled raw archive.

Every document here was written for this project (none is copied from
elsewhere). Run from the repository root: python3 testdata/make_raw_archive.py
The output is committed; rerunning reproduces it byte for byte.
"""
import base64
import hashlib
import json
import os

OPENVEX_A = {
    "@context": "https://openvex.dev/ns/v0.2.0",
    "@id": "https://example.com/vex/acme-2025-001",
    "author": "ACME PSIRT",
    "timestamp": "2025-03-01T10:00:00Z",
    "version": 2,
    "statements": [
        {
            "vulnerability": {"name": "CVE-2025-1001", "aliases": ["GHSA-aaaa-bbbb-cccc"]},
            "products": [
                {"@id": "pkg:oci/acme-api@sha256%3Aabc123",
                 "subcomponents": [{"@id": "pkg:npm/left-pad@1.3.0"}]}
            ],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
            "impact_statement": "left-pad is only used by the build tooling",
        },
        {
            "vulnerability": {"name": "CVE-2025-1002"},
            "products": [{"@id": "pkg:oci/acme-api@sha256%3Aabc123"}],
            "status": "affected",
            "action_statement": "Upgrade to acme-api 2.1",
        },
    ],
}

OPENVEX_LEGACY = {
    "@context": "https://openvex.dev/ns",
    "@id": "https://example.com/vex/legacy-7",
    "author": "Legacy Bot",
    "timestamp": "2023-01-08T18:02:03Z",
    "version": "1",
    "statements": [
        {"vulnerability": "CVE-2023-2001",
         "products": ["pkg:apk/wolfi/curl@8.0.1-r0?arch=x86_64",
                      "pkg:apk/wolfi/curl@8.0.1-r0?arch=aarch64"],
         "status": "fixed"}
    ],
}

CSAF = {
    "document": {
        "category": "csaf_vex",
        "csaf_version": "2.0",
        "publisher": {"category": "vendor", "name": "ACME", "namespace": "https://acme.example"},
        "title": "ACME widget VEX",
        "tracking": {"id": "ACME-VEX-2025-0042", "version": "3", "status": "final",
                     "initial_release_date": "2025-02-01T00:00:00Z",
                     "current_release_date": "2025-02-03T00:00:00Z",
                     "revision_history": [{"date": "2025-02-01T00:00:00Z", "number": "1", "summary": "Initial"}]},
    },
    "product_tree": {
        "branches": [{"category": "vendor", "name": "ACME", "branches": [
            {"category": "product_name", "name": "widget", "branches": [
                {"category": "product_version", "name": "1.0",
                 "product": {"name": "ACME widget 1.0", "product_id": "WIDGET-1.0",
                             "product_identification_helper": {"purl": "pkg:generic/acme/widget@1.0"}}},
                {"category": "product_version", "name": "1.1",
                 "product": {"name": "ACME widget 1.1", "product_id": "WIDGET-1.1",
                             "product_identification_helper": {"purl": "pkg:generic/acme/widget@1.1"}}},
            ]}]}]
    },
    "vulnerabilities": [{
        "cve": "CVE-2025-3003",
        "product_status": {"known_affected": ["WIDGET-1.0"], "fixed": ["WIDGET-1.1"]},
        "remediations": [{"category": "vendor_fix", "details": "Upgrade to 1.1", "product_ids": ["WIDGET-1.0"]}],
    }],
}

CYCLONEDX = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "serialNumber": "urn:uuid:8f8e7b32-0000-4000-8000-000000000001",
    "version": 1,
    "components": [{"type": "library", "bom-ref": "lib-xml", "name": "libxml",
                    "version": "2.11.0", "purl": "pkg:generic/libxml@2.11.0"}],
    "vulnerabilities": [{
        "id": "CVE-2025-4004",
        "analysis": {"state": "not_affected", "justification": "code_not_reachable",
                     "detail": "The XPath module is not compiled in."},
        "affects": [{"ref": "lib-xml"}],
    }],
}


def line(doc_bytes, retrieved_at, provider, uri, fmt=None, digest="auto", inline=False):
    env = {}
    if digest == "auto":
        env["digest"] = "sha256:" + hashlib.sha256(doc_bytes).hexdigest()
    elif digest is not None:
        env["digest"] = digest
    env["providerId"] = provider
    if fmt:
        env["format"] = fmt
    env["sourceUri"] = uri
    env["retrievedAt"] = retrieved_at
    env["metadata"] = {"etag": hashlib.sha1(doc_bytes).hexdigest()[:16]}
    if inline:
        env["content"] = json.loads(doc_bytes)
    else:
        env["content"] = base64.b64encode(doc_bytes).decode()
    return json.dumps(env, separators=(",", ":"))


def dump(doc):
    return json.dumps(doc, indent=1).encode()


def main():
    a = dump(OPENVEX_A)
    lines = [
        # Deliberately out of retrievedAt order: the engine sorts.
        line(dump(CSAF), "2025-02-03T08:00:00Z", "acme", "https://acme.example/csaf/acme-vex-2025-0042.json", "csaf"),
        line(a, "2025-03-01T12:00:00Z", "acme", "https://acme.example/vex/acme-2025-001.json", "openvex"),
        # Inline JSON content, no digest, no format: digest computed, format detected.
        line(json.dumps(OPENVEX_LEGACY, separators=(",", ":")).encode(), "2023-01-09T00:00:00Z",
             "wolfi", "https://wolfi.example/vex/legacy-7.json", digest=None, inline=True),
        line(dump(CYCLONEDX), "2025-04-01T00:00:00Z", "acme", "https://acme.example/cdx/widget.vex.json"),
        # The same document fetched again later: skipped as a duplicate.
        line(a, "2025-03-02T12:00:00Z", "acme", "https://mirror.example/vex/acme-2025-001.json", "openvex"),
        # Declared digest does not match the bytes: a failure.
        line(b'{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}', "2025-05-01T00:00:00Z",
             "acme", "https://acme.example/vex/tampered.json", "openvex",
             digest="sha256:" + "0" * 64),
        # Parses, but is no VEX format: a failure ("unknown format").
        line(b"{}", "2025-05-02T00:00:00Z", "acme", "https://acme.example/empty.json"),
        # Not JSON at all: a failure.
        '{"digest":"sha256:truncated", "providerId": "acme", "content": "e30=',
    ]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "raw", "sample.ndjson")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
