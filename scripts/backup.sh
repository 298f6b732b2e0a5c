#!/usr/bin/env bash
# Back up Feria's database to one file, while the server runs (docs/DEPLOYMENT.md, "Backups").
#
#   DATABASE_URL=postgres://feria:...@db/feria scripts/backup.sh /backups/feria-$(date +%F).dump
#   DATABASE_URL=sqlite://./data/feria.db        scripts/backup.sh /backups/feria-$(date +%F).db
#
# PostgreSQL: `pg_dump --format=custom`, one consistent snapshot (a repeatable-read
# transaction), whatever is being written meanwhile. Its client must be at least the
# server's major version. SQLite: the online backup API (through python3's sqlite3 module,
# no sqlite3 CLI needed), also a consistent copy while the server writes. Either way the
# file holds everything: tenants, users, the ledger, events and the migrations applied.
# Uploaded images live in DATA_DIR/media, outside the database: copy that directory too.
set -euo pipefail

usage() { echo "usage: DATABASE_URL=... $0 OUTPUT_FILE" >&2; exit 2; }
[ $# -eq 1 ] || usage
out=$1
url=${DATABASE_URL:-}
[ -n "$url" ] || { echo "DATABASE_URL is not set" >&2; exit 2; }
[ -e "$out" ] && { echo "$out exists; a backup never overwrites a file" >&2; exit 1; }
tmp="$out.partial"
trap 'rm -f "$tmp"' EXIT

case "$url" in
postgres://* | postgresql://*)
    command -v pg_dump >/dev/null || { echo "pg_dump is required (Debian: postgresql-client)" >&2; exit 1; }
    # Feria's DATABASE_URL is libpq's URI (sslmode, sslrootcert and hostaddr mean the same;
    # sslrootcert=system needs a libpq 16 client).
    pg_dump --format=custom --no-owner --no-privileges --file="$tmp" --dbname="$url"
    ;;
sqlite://*)
    path=${url#sqlite://}
    path=${path%%\?*}
    [ -f "$path" ] || { echo "no SQLite database at $path" >&2; exit 1; }
    python3 - "$path" "$tmp" <<'PY'
import sqlite3, sys
source = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
target = sqlite3.connect(sys.argv[2])
with target:
    source.backup(target)
check = target.execute("PRAGMA integrity_check").fetchone()[0]
if check != "ok":
    sys.exit(f"the copy does not pass integrity_check: {check}")
target.close()
source.close()
PY
    ;;
*)
    echo "unsupported DATABASE_URL scheme (postgres:// or sqlite://)" >&2
    exit 2
    ;;
esac
mv "$tmp" "$out"
trap - EXIT
echo "backed up to $out ($(wc -c <"$out") bytes)"
