#!/usr/bin/env bash
# Verify an entitlement receipt with PyJWT, independently of Feria's own code (the receipt
# tests use it; docs/ONCHAIN.md, "Receipts"). Installs PyJWT and cryptography from PyPI
# (pinned in scripts/receipt-verify-requirements.txt) into a virtualenv on first use.
#
#   scripts/receipt-verify.sh JWKS_FILE RECEIPT [PLATFORM_ID]   print the verified claims
#   scripts/receipt-verify.sh install                           only install
#
# Safe to run from many processes at once (a lock serialises the install).
# Environment: RECEIPT_VERIFY_HOME ($HOME/.cache/feria: the venv lives there), PYTHON.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
requirements="$here/receipt-verify-requirements.txt"
home="${RECEIPT_VERIFY_HOME:-${HOME:-/tmp}/.cache/feria}"
venv="$home/receipt-verify-venv"
lockfile="$home/receipt-verify.lock"
stamp="$venv/.requirements.sha256"

say() { printf 'receipt-verify.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

install() {
    want=$(sha256sum "$requirements" | cut -c1-64)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return
    fi
    python="${PYTHON:-python3}"
    command -v "$python" >/dev/null 2>&1 || die "python3 is required to verify receipts"
    say "installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv" >/dev/null 2>&1 ||
        die "cannot create a virtualenv with $python (install python3-venv)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" ||
        die "pip could not install $requirements"
    echo "$want" >"$stamp"
}

mkdir -p "$home"
(
    exec 9>"$lockfile"
    flock -w 600 9 || die "timed out waiting for another receipt-verify.sh"
    install
)
[ "${1:-}" = install ] && exit 0
exec "$venv/bin/python" "$here/receipt_verify.py" "$@"
