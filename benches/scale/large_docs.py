#!/usr/bin/env python3
"""Large CSAF documents for the memory figures in BENCHMARKS.md.

    large_docs.py redhat N OUT   # Red Hat-shaped VEX: N products with purls in one
                                 # product_version branch, one CVE, one remediation
    large_docs.py dense N OUT    # worst case: N bare products in full_product_names

Every product is known_affected by CVE-2024-0001, so each is one statement.
"""
import json
import sys


def redhat(n):
    prods = [{"name": f"pkg-{i}", "product_id": f"P{i}",
              "product_identification_helper": {"purl": f"pkg:rpm/redhat/pkg-{i}@1.0-1.el9"}}
             for i in range(n)]
    ids = [p["product_id"] for p in prods]
    return {
        "document": {"category": "csaf_vex", "csaf_version": "2.0", "title": "large",
                     "publisher": {"category": "vendor", "name": "x", "namespace": "https://x"},
                     "tracking": {"id": "LARGE-1", "version": "1", "status": "final",
                                  "initial_release_date": "2024-01-01T00:00:00Z",
                                  "current_release_date": "2024-01-01T00:00:00Z",
                                  "revision_history": [{"number": "1", "date": "2024-01-01T00:00:00Z",
                                                        "summary": "x"}]}},
        "product_tree": {"branches": [{"category": "vendor", "name": "x", "branches": [
            {"category": "product_version", "name": p["name"], "product": p} for p in prods]}]},
        "vulnerabilities": [{"cve": "CVE-2024-0001", "product_status": {"known_affected": ids},
                             "remediations": [{"category": "vendor_fix", "details": "Update. " * 20,
                                               "product_ids": ids}]}],
    }


def dense(n):
    prods = [{"name": f"p{i}", "product_id": f"{i}"} for i in range(n)]
    return {
        "document": {"category": "csaf_vex", "csaf_version": "2.0", "title": "dense",
                     "tracking": {"id": "D-1", "version": "1"}},
        "product_tree": {"full_product_names": prods},
        "vulnerabilities": [{"cve": "CVE-2024-0001",
                             "product_status": {"known_affected": [p["product_id"] for p in prods]}}],
    }


if __name__ == "__main__":
    shape, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    doc = {"redhat": redhat, "dense": dense}[shape](n)
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
