#!/usr/bin/env bash
# Validates the deployment files, offline: every Kubernetes manifest under
# deploy/kubernetes/ (YAML syntax, the Kubernetes API schemas in strict mode,
# unknown fields rejected) and deploy/Dockerfile (hadolint), then checks that
# broken copies of them are rejected. See deploy/validate.py. Run by
# scripts/test.
#
# Needs python3 with the venv module. The pinned tools (deploy/requirements.txt)
# are installed from PyPI into .venv/deploy-validate on first use, and again
# only when the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv/deploy-validate
REQS=deploy/requirements.txt
STAMP="$VENV/.requirements.sha256"

die() {
    echo "deploy/validate.sh: $*" >&2
    exit 1
}

want=$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$REQS") ||
    die "python3 is needed to validate the Kubernetes manifests"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    rm -rf "$VENV"
    mkdir -p .venv
    python3 -m venv "$VENV" ||
        die "cannot create a Python venv in $VENV (on Debian: apt-get install -y python3-venv)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$REQS" ||
        die "cannot install $REQS from PyPI"
    echo "$want" >"$STAMP"
fi

exec "$VENV/bin/python" deploy/validate.py
