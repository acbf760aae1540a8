#!/usr/bin/env python3
"""Offline validation of the deployment files under deploy/.

Run through deploy/validate.sh, which provides the pinned venv. Every YAML
file under deploy/kubernetes/ must:

* parse as YAML (a duplicated mapping key is an error, not "last one wins");
* validate, resource by resource, against the Kubernetes OpenAPI JSON schemas
  bundled in the `kubernetes-validate` package, in strict mode (an unknown
  field anywhere, e.g. a misspelling, is rejected), for the oldest Kubernetes
  release the manifests support and for the newest one the package bundles; a
  kind/apiVersion without a schema is an error too;
* pass the API server rules that a schema cannot express and that the
  manifests depend on (see `consistency`).

deploy/Dockerfile must pass hadolint (parse errors, stage references, best
practices).

Then the validation checks itself: broken copies of the manifests (a
misspelled field, a wrong type, an unknown kind, ...) must each be rejected,
so this script cannot pass by accepting everything.

Exit status 0 when all is well, 1 otherwise. No network, no cluster.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from kubernetes_validate import utils as kv
from kubernetes_validate.version import __version__ as KV_VERSION

ROOT = Path(__file__).resolve().parent
MANIFESTS = ROOT / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"

# The oldest release the manifests support (backoffLimitPerIndex and
# podReplacementPolicy are beta and on by default from 1.29) and the newest
# one whose schemas the pinned package bundles.
MIN_KUBERNETES = "1.29.0"
VERSIONS = [MIN_KUBERNETES, kv.latest_version()]


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate keys (PyYAML keeps the last)."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def pod_spec(doc: dict) -> dict | None:
    """The pod template's spec of a Job or CronJob, else None."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    elif doc.get("kind") != "Job":
        return None
    return (spec.get("template") or {}).get("spec") or {}


def job_spec(doc: dict) -> dict | None:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        return (spec.get("jobTemplate") or {}).get("spec") or {}
    if doc.get("kind") == "Job":
        return spec
    return None


VAR_REF = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def consistency(doc: dict) -> list[str]:
    """API server rules a schema cannot express, and the manifests' own."""
    errors = []
    job, pod = job_spec(doc), pod_spec(doc)
    if job is None or pod is None:
        return errors
    indexed = job.get("completionMode") == "Indexed"
    if job.get("backoffLimitPerIndex") is not None and not indexed:
        errors.append("spec.backoffLimitPerIndex needs completionMode: Indexed")
    if (
        job.get("backoffLimitPerIndex") is not None or job.get("podFailurePolicy")
    ) and pod.get("restartPolicy") != "Never":
        errors.append(
            "backoffLimitPerIndex and podFailurePolicy need restartPolicy: Never, "
            f"not {pod.get('restartPolicy')!r}"
        )
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        errors.append(f"a Job's pods need restartPolicy Never or OnFailure, not {pod.get('restartPolicy')!r}")
    containers = (pod.get("initContainers") or []) + (pod.get("containers") or [])
    for c in containers:
        name = c.get("name")
        # Kubernetes leaves a $(VAR) whose VAR is not defined verbatim: the
        # tool would get the literal text (e.g. a store named "$(STORE_URI)").
        defined = {e.get("name") for e in c.get("env") or []}
        for item in (c.get("command") or []) + (c.get("args") or []):
            for var in VAR_REF.findall(str(item)):
                if var not in defined:
                    errors.append(f"container {name}: $({var}) is not defined in its env")
        args = [str(a) for a in c.get("args") or []]
        shards = None
        for i, a in enumerate(args):
            if a == "--shards" and i + 1 < len(args):
                shards = args[i + 1]
            elif a.startswith("--shards="):
                shards = a.split("=", 1)[1]
        if shards is not None:
            if not indexed:
                errors.append(f"container {name}: --shards needs completionMode: Indexed")
            elif str(job.get("completions")) != shards:
                errors.append(
                    f"container {name}: --shards {shards} but completions is "
                    f"{job.get('completions')}: every shard needs exactly one index"
                )
            if job.get("parallelism") is not None and int(job["parallelism"]) > int(job.get("completions") or 1):
                errors.append("parallelism exceeds completions")
    return errors


def problems(text: str, name: str) -> list[str]:
    """Everything wrong with one manifest file's text; empty when valid."""
    try:
        docs = [d for d in yaml.load_all(text, Loader=UniqueKeyLoader) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return [f"{name}: not valid YAML: {getattr(e, 'problem', None) or e}{at}"]
    if not docs:
        return [f"{name}: no resources"]
    errors = []
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str) or not isinstance(
            doc.get("apiVersion"), str
        ):
            errors.append(f"{name} document {i + 1}: not a Kubernetes resource (kind, apiVersion)")
            continue
        where = f"{name} {doc['kind']}/{(doc.get('metadata') or {}).get('name')}"
        for version in VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path) or "(top)"
                errors.append(f"{where}: Kubernetes {e.version}: {path}: {e.message}")
            except kv.SchemaNotFoundError as e:
                errors.append(f"{where}: {e.message}")
        errors += [f"{where}: {msg}" for msg in consistency(doc)]
    return errors


def dockerfile_problems(text: str, name: str) -> list[str]:
    """hadolint's findings for a Dockerfile's text; empty when clean."""
    proc = subprocess.run(
        [str(HADOLINT), "--no-color", "-"], input=text, capture_output=True, text=True
    )
    if proc.returncode == 0:
        return []
    out = (proc.stdout + proc.stderr).strip().replace("/dev/stdin", name).replace("-:", f"{name}:", 1)
    return [line.strip() for line in out.splitlines() if line.strip()] or [f"{name}: hadolint exit {proc.returncode}"]


def file_problems(rel: str, text: str) -> list[str]:
    name = f"deploy/{rel}"
    if rel == "Dockerfile":
        return dockerfile_problems(text, name)
    return problems(text, name)


# Broken copies that must be rejected: (file, text to replace, replacement,
# what it breaks). The text must occur in the file, so an edit of a manifest
# cannot quietly turn a self-check into a no-op.
SELF_CHECKS = [
    ("kubernetes/backfill-job.yaml", "completionMode: Indexed", "completionMod: Indexed",
     "misspelled JobSpec field"),
    ("kubernetes/backfill-job.yaml", "secretKeyRef:", "secretKeyRefs:",
     "misspelled field deep inside the pod template"),
    ("kubernetes/backfill-job.yaml", "ttlSecondsAfterFinished: 86400", "ttlSecondsAfterFinished: one day",
     "wrong type"),
    ("kubernetes/backfill-job.yaml", "kind: Job\n", "kind: Jobs\n",
     "unknown kind (no schema must not mean valid)"),
    ("kubernetes/backfill-job.yaml", "  parallelism: 4\n", "  parallelism: 4\n  parallelism: 8\n",
     "duplicate key"),
    ("kubernetes/backfill-job.yaml", "restartPolicy: Never", "restartPolicy: OnFailure",
     "restartPolicy the API server refuses with backoffLimitPerIndex"),
    ("kubernetes/backfill-job.yaml", "  completions: 4\n", "  completions: 3\n",
     "completions different from --shards"),
    ("kubernetes/backfill-job.yaml", "- $(STORE_URI)", "- $(STORE_URL)",
     "reference to an undefined env var"),
    ("kubernetes/epss-cronjob.yaml", "activeDeadlineSeconds:", "activeDeadline:",
     "misspelled field in a CronJob's jobTemplate"),
    ("Dockerfile", "ENTRYPOINT [", "ENTRYPONT [", "misspelled Dockerfile instruction"),
    ("Dockerfile", "COPY --from=build ", "COPY --from=builder ", "COPY from an undefined stage"),
]


def main() -> int:
    manifests = sorted(p for p in MANIFESTS.rglob("*") if p.suffix in (".yaml", ".yml"))
    if not manifests:
        print(f"deploy/validate: no manifests under {MANIFESTS}", file=sys.stderr)
        return 1
    failed = False
    texts = {}
    for path in [DOCKERFILE] + manifests:
        rel = path.relative_to(ROOT).as_posix()
        name = f"deploy/{rel}"
        texts[rel] = text = path.read_text(encoding="utf-8")
        errors = file_problems(rel, text)
        if errors:
            failed = True
            for e in errors:
                print(f"FAIL {e}")
        else:
            print(f"ok   {name}")

    rejected = 0
    for file, old, new, what in SELF_CHECKS:
        text = texts.get(file)
        if text is None or old not in text:
            failed = True
            print(f"FAIL self-check '{what}': {old!r} not found in {file}; update SELF_CHECKS")
            continue
        errors = file_problems(file, text.replace(old, new))
        if errors:
            rejected += 1
            print(f"ok   rejected deploy/{file} with {old.strip()!r} -> {new.strip()!r}: {errors[0]}")
        else:
            failed = True
            print(f"FAIL self-check: deploy/{file} with {old.strip()!r} -> {new.strip()!r} ({what}) was accepted")

    versions = ", ".join(kv.major_minor(v) for v in VERSIONS)
    print(
        f"deploy/validate: Dockerfile linted (hadolint); {len(manifests)} manifest file(s) checked "
        f"against Kubernetes {versions} (strict, kubernetes-validate {KV_VERSION}); "
        f"{rejected}/{len(SELF_CHECKS)} broken copies rejected: {'FAILED' if failed else 'ok'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
