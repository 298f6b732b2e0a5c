#!/usr/bin/env bash
# The write path, binary against binary (PostgreSQL): S3 (template purchases) and S5
# (contract settles) for each binary in turn, each run on a fresh copy of one seeded
# database, with pgbench's built-in TPC-B-like transaction (`-b tpcb-like`, the canonical
# "move money between accounts" transaction) measured in the same run at the same
# concurrency as the baseline. Per run it also reports the WAL written per request
# (`pg_current_wal_lsn()` before and after) and, with STATEMENTS=1, the statements one
# purchase and one settle send (PostgreSQL's log, `log_statement = all` for one request).
#
#   scripts/bench-writes.sh SEED_DB SEED_JSON BINARY...
#   e.g. scripts/bench-writes.sh feria_write_seed /var/tmp/seed.json /var/tmp/feria-old target/release/feria
#
# SEED_DB: a database `feria seed --buyers N --contracts M` filled (on the server of
# BENCH_PG_ADMIN_URL); it is only copied (CREATE DATABASE ... TEMPLATE), never changed.
# The seeded buyers' sessions live an hour: seed again after that.
# Environment: BENCH_PG_ADMIN_URL (postgres://feria:feria@127.0.0.1:5432/postgres),
# BENCH_DURATION (10), BENCH_CONCURRENCY (32), BENCH_THREADS (2), BENCH_PORT (18082),
# ROUNDS (2: each binary this many times, alternated), TPCB_SCALE (10), STATEMENTS (0),
# BENCH_PG_SUPERUSER_URL (postgres://postgres@127.0.0.1:5432/postgres: setting
# log_statement for a database takes a superuser).
# Prints one line per run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ "$#" -ge 3 ] || { sed -n 2,19p "$0"; exit 2; }
seed_db="$1"; seed="$2"; shift 2
admin="${BENCH_PG_ADMIN_URL:-postgres://feria:feria@127.0.0.1:5432/postgres}"
superuser="${BENCH_PG_SUPERUSER_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
duration="${BENCH_DURATION:-10}"
concurrency="${BENCH_CONCURRENCY:-32}"
threads="${BENCH_THREADS:-2}"
port="${BENCH_PORT:-18082}"
rounds="${ROUNDS:-2}"
scale="${TPCB_SCALE:-10}"
copy="${seed_db}_run"
work="$(mktemp -d "${TMPDIR:-/tmp}/feria-bench-writes.XXXXXX")"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    psql -q "$admin" -c "DROP DATABASE IF EXISTS $copy WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=scripts/bench-tools.sh
. "$here/bench-tools.sh"
bench_tools
jq -r --argjson threads "$threads" --argjson spare 0 --arg codes "" \
    -f "$here/../bench/config.jq" "$seed" >"$work/config.lua"
url="${admin%/*}/$copy"
sql() { psql -qAt "$url" -c "$1"; }

tpcb() {
    local db="${seed_db}_tpcb"
    if ! psql -qAt "${admin%/*}/$db" -c 'SELECT 1 FROM pgbench_branches LIMIT 1' >/dev/null 2>&1; then
        psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null 2>&1 || true
        pgbench -i -q -s "$scale" "${admin%/*}/$db" >/dev/null 2>&1
    fi
    pgbench -n -b tpcb-like -M prepared -c "$concurrency" -j "$threads" -T "$duration" \
        "${admin%/*}/$db" 2>/dev/null |
        awk '/^latency average/ {lat=$4} /^tps/ {tps=int($3)} END {printf "tpcb-like scale='"$scale"' tps=%d latency_avg_ms=%s\n", tps, lat}'
}

fresh_copy() {
    psql -q "$admin" -c "DROP DATABASE IF EXISTS $copy WITH (FORCE)" >/dev/null
    psql -q "$admin" -c "CREATE DATABASE $copy TEMPLATE $seed_db" >/dev/null
}

start() { # binary
    WRITE_RATE_LIMIT=0 OTP_REQUESTS_PER_IP=100000000 RUST_LOG=warn "$1" serve \
        --database-url "$url" --data-dir "$work/data" --bind "127.0.0.1:$port" \
        >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 600); do
        curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.2
    done
}

run() { # binary scenario
    if [ "${STATEMENTS:-0}" = 1 ]; then statements "$1" "$2"; fi
    fresh_copy
    start "$1"
    local wal0 wal1 made0 made1 table
    case "$2" in purchase) table=purchases ;; *) table="contracts WHERE status = 'settled'" ;; esac
    wal0="$(sql 'SELECT pg_current_wal_lsn()')"
    made0="$(sql "SELECT count(*) FROM $table")"
    BENCH_SCENARIO="$2" BENCH_CONFIG="$work/config.lua" wrk -t"$threads" -c"$concurrency" \
        -d"${duration}s" --timeout 30s --latency -s "$here/../bench/feria.lua" \
        "http://127.0.0.1:$port" >"$work/wrk.txt" 2>&1 || true
    made1="$(sql "SELECT count(*) FROM $table")"
    wal1="$(sql 'SELECT pg_current_wal_lsn()')"
    local wal_bytes made
    wal_bytes="$(sql "SELECT pg_wal_lsn_diff('$wal1', '$wal0')::bigint")"
    made=$((made1 - made0))
    local line
    line="$(sed -n 's/^BENCHJSON //p' "$work/wrk.txt" | jq -r '
        "rps=\((.requests / (.duration_us / 1e6)) | floor) p50_ms=\(.p50_us / 1000 * 100 | round / 100) p99_ms=\(.p99_us / 1000 * 100 | round / 100) errors=\(.non_2xx + .socket_errors)"')"
    echo "$(basename "$1") $2 $line new_rows=$made wal_bytes_per_row=$(( made > 0 ? wal_bytes / made : 0 ))"
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

# Statements per request: on a fresh copy with every statement of it logged, one
# connection for one second of the scenario (each request a first purchase or settle,
# as at the start of the measured run). Background workers' polls add a few lines.
statements() { # binary scenario
    local log before after requests lines
    log="$(ls -t /var/log/postgresql/*.log 2>/dev/null | head -1)"
    [ -r "$log" ] || { echo "  statements: PostgreSQL's log is not readable"; return; }
    fresh_copy
    psql -q "$superuser" -c "ALTER DATABASE $copy SET log_statement = 'all'" >/dev/null ||
        { echo "  statements: could not set log_statement (BENCH_PG_SUPERUSER_URL)"; return; }
    start "$1"
    before="$(wc -l <"$log")"
    BENCH_SCENARIO="$2" BENCH_CONFIG="$work/config.lua" wrk -t1 -c1 -d1s \
        -s "$here/../bench/feria.lua" "http://127.0.0.1:$port" >"$work/one.txt" 2>&1 || true
    after="$(wc -l <"$log")"
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
    requests="$(sed -n 's/^BENCHJSON //p' "$work/one.txt" | jq -r '.requests')"
    lines="$(tail -n +"$((before + 1))" "$log" | head -n "$((after - before))" | grep -c 'LOG:  \(statement\|execute\)' || true)"
    echo "$(basename "$1") $2 statements: $lines logged for $requests requests = $(( requests > 0 ? lines / requests : 0 )) per request (each a round trip; BEGIN and COMMIT included)"
}

tpcb
for round in $(seq 1 "$rounds"); do
    for bin in "$@"; do
        run "$bin" purchase
        run "$bin" settle
    done
    tpcb
done
