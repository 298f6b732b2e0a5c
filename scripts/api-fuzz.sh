#!/usr/bin/env bash
# Schema fuzzing: schemathesis (PyPI, pinned below) against a real `feria serve`, on SQLite
# or, with FUZZ_DATABASE_URL=postgres://..., on PostgreSQL. See scripts/api_fuzz.py and
# docs/RELIABILITY.md.
#
#   scripts/api-fuzz.sh                       # the CI run: fixed seed, 25 examples per operation
#   FUZZ_MAX_EXAMPLES=500 scripts/api-fuzz.sh # the long run (make fuzz-long)
#   FUZZ_SEED=7 scripts/api-fuzz.sh           # another seed
#
# Environment: FERIA_BIN (default: build the debug binary into CARGO_TARGET_DIR or ./target),
# FUZZ_HOME ($HOME/.cache/feria: where the virtualenv lives).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
home="${FUZZ_HOME:-${HOME:-/tmp}/.cache/feria}"
venv="$home/st-venv"
version="4.32.5"

say() { printf 'api-fuzz.sh: %s\n' "$*" >&2; }

mkdir -p "$home"
exec 9>"$home/st-venv.lock"
flock -w 600 9 || { say "timed out waiting for another install"; exit 1; }
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
    say "installing schemathesis $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi
exec 9>&-

if [ -z "${FERIA_BIN:-}" ]; then
    (cd "$root" && cargo build --quiet --bin feria)
    FERIA_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/feria"
fi
export FERIA_BIN ST_BIN="$venv/bin/st"
exec "$venv/bin/python" "$here/api_fuzz.py"
