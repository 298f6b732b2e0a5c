#!/usr/bin/env bash
# Re-measure the read scenarios (healthz, S2 product, S1 browse) against a database that
# `feria seed` filled earlier, without seeding again (1,000,000 listings take 15 to 45
# minutes to seed). For comparing two binaries on the same data, run after run; the
# full report stays `make bench` (docs/BENCHMARKS-HOWTO.md, "Comparing binaries").
#
#   scripts/bench-quick.sh BINARY DATABASE_URL SEED_JSON SCENARIO...
#   e.g. scripts/bench-quick.sh target/release/feria sqlite:///var/tmp/f1m/feria.db \
#            /var/tmp/f1m/seed-sqlite.json product browse
#
# Environment: BENCH_DURATION (seconds per scenario, 20), BENCH_CONCURRENCY (32),
# BENCH_THREADS (2), BENCH_PORT (18081). Prints one line per scenario: wrk's JSON, the
# server's peak RSS (MB), its CPU seconds and its thread count at the end. The seeded
# session's access token lives an hour: the script rotates the refresh token first
# (kept beside the seed report as SEED_JSON.refresh) and uses the new access token.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ "$#" -ge 4 ] || { sed -n 2,16p "$0"; exit 2; }
bin="$1"; url="$2"; seed="$3"; shift 3
duration="${BENCH_DURATION:-20}"
concurrency="${BENCH_CONCURRENCY:-32}"
threads="${BENCH_THREADS:-2}"
port="${BENCH_PORT:-18081}"
work="$(mktemp -d "${TMPDIR:-/tmp}/feria-bench-quick.XXXXXX")"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=scripts/bench-tools.sh
. "$here/bench-tools.sh"
bench_tools
jq -r --argjson threads "$threads" --argjson spare 0 --arg codes "" \
    -f "$here/../bench/config.jq" "$seed" >"$work/config.lua"

WRITE_RATE_LIMIT=0 RUST_LOG="${BENCH_RUST_LOG:-info}" "$bin" serve --database-url "$url" \
    --data-dir "$work/data" --bind "127.0.0.1:$port" --log-format json >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.5
done

refresh="$(cat "$seed.refresh" 2>/dev/null || jq -r '.platforms[0].refresh_token' "$seed")"
answer="$(curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"refresh_token\":\"$refresh\"}" "http://127.0.0.1:$port/api/v1/auth/session/refresh" || true)"
access="$(jq -r '.access_token // empty' <<<"$answer" 2>/dev/null || true)"
if [ -n "$access" ]; then
    jq -r '.refresh_token' <<<"$answer" >"$seed.refresh"
    sed -i "s/access_token = \"[^\"]*\"/access_token = \"$access\"/" "$work/config.lua"
else
    echo "bench-quick.sh: the session could not be refreshed; browse may answer 401" >&2
fi

# A short warm-up, as make bench does.
BENCH_SCENARIO=product BENCH_CONFIG="$work/config.lua" wrk -t1 -c4 -d2s \
    -s "$here/../bench/feria.lua" "http://127.0.0.1:$port" >/dev/null 2>&1 || true
for scenario in "$@"; do
    ( while true; do awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; sleep 0.2; done ) >"$work/rss" &
    watcher=$!
    cpu0="$(awk '{print $14 + $15}' "/proc/$server_pid/stat")"
    BENCH_SCENARIO="$scenario" BENCH_CONFIG="$work/config.lua" wrk -t"$threads" \
        -c"$concurrency" -d"${duration}s" --timeout 30s --latency -s "$here/../bench/feria.lua" \
        "http://127.0.0.1:$port" >"$work/wrk.txt" 2>&1 || true
    cpu1="$(awk '{print $14 + $15}' "/proc/$server_pid/stat")"
    kill "$watcher"; wait "$watcher" 2>/dev/null || true
    echo "$scenario $(sed -n 's/^BENCHJSON //p' "$work/wrk.txt") rss_peak_mb=$(( $(sort -n "$work/rss" | tail -1) / 1024 )) cpu_s=$(( (cpu1 - cpu0) / $(getconf CLK_TCK) )) threads=$(awk '/^Threads/ {print $2}' "/proc/$server_pid/status")"
done
