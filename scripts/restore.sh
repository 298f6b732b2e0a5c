#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh into an EMPTY database (docs/DEPLOYMENT.md,
# "Backups"). The server must not be running on the target.
#
#   DATABASE_URL=postgres://feria:...@db/feria_restored scripts/restore.sh feria.dump
#   DATABASE_URL=sqlite://./data/feria.db              scripts/restore.sh feria.db
#
# PostgreSQL: `pg_restore` in one transaction (all or nothing), refusing a database that
# already has tables. SQLite: the backup file becomes the database file, refusing to
# replace an existing one. Then check it: `feria ledger verify` (the journal balances)
# and `feria migrate` (brings an older backup up to this release's schema).
set -euo pipefail

usage() { echo "usage: DATABASE_URL=... $0 BACKUP_FILE" >&2; exit 2; }
[ $# -eq 1 ] || usage
backup=$1
url=${DATABASE_URL:-}
[ -n "$url" ] || { echo "DATABASE_URL is not set" >&2; exit 2; }
[ -f "$backup" ] || { echo "no backup file at $backup" >&2; exit 1; }

case "$url" in
postgres://* | postgresql://*)
    command -v pg_restore >/dev/null || { echo "pg_restore is required (Debian: postgresql-client)" >&2; exit 1; }
    tables=$(psql --no-psqlrc --quiet --tuples-only --no-align --dbname="$url" \
        --command="SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    if [ "$tables" != "0" ]; then
        echo "the target database already has $tables tables; restore into an empty database" >&2
        exit 1
    fi
    pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname="$url" "$backup"
    ;;
sqlite://*)
    path=${url#sqlite://}
    path=${path%%\?*}
    if [ -e "$path" ]; then
        echo "$path exists; move it away first (a restore never replaces a database)" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$path")"
    cp "$backup" "$path.partial"
    mv "$path.partial" "$path"
    ;;
*)
    echo "unsupported DATABASE_URL scheme (postgres:// or sqlite://)" >&2
    exit 2
    ;;
esac
echo "restored $backup; now run: feria ledger verify && feria migrate"
