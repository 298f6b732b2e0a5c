#!/usr/bin/env bash
# `make bench`: build the release binary, seed each backend with `feria seed`, drive load
# with wrk (bench/feria.lua), measure a baseline of the same query in the same run
# (pgbench on PostgreSQL, `feria bench-baseline` in-process on SQLite and PostgreSQL), and
# write BENCHMARKS.md. See docs/BENCHMARKS-HOWTO.md. It reports; it never fails a build
# because of a number (only because the tooling itself broke).
#
#   make bench                                  # BENCH_SIZE=medium, SQLite then PostgreSQL
#   make bench BENCH_SIZE=small                 # 20k listings and products, under 5 minutes
#   make bench BENCH_SIZE=full                  # the issue's 1,000,000 listings and products
#   BENCH_BACKENDS=sqlite make bench            # one backend
#
# Environment: BENCH_SIZE (small|medium|full), BENCH_BACKENDS ("sqlite postgres"),
# BENCH_CONCURRENCY (32), BENCH_DURATION (seconds per scenario; by size), BENCH_THREADS
# (wrk threads, 2), BENCH_PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres),
# BENCH_PG_DB (feria_bench), BENCH_PORT (18080), BENCH_OUT (BENCHMARKS.md), FERIA_BIN (skip
# the build), BENCH_RUST_LOG (the server's RUST_LOG, default info: request logs included),
# BENCH_NOTE (a line added to the report's notes, e.g. what else the machine was doing),
# BENCH_LISTINGS / BENCH_PRODUCTS / BENCH_USERS / BENCH_CONTRACTS (override the size's
# counts).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
say() { printf 'bench.sh: %s\n' "$*" >&2; }

size="${BENCH_SIZE:-medium}"
case "$size" in
    small) listings=20000; products=20000; users=1000; credited=200; buyers=50; contracts=1500; duration=8 ;;
    medium) listings=200000; products=200000; users=5000; credited=500; buyers=100; contracts=5000; duration=20 ;;
    full) listings=1000000; products=1000000; users=20000; credited=1000; buyers=200; contracts=10000; duration=30 ;;
    *) say "BENCH_SIZE must be small, medium or full (got $size)"; exit 2 ;;
esac
# Size overrides, e.g. the issue's 1,000,000 listings for S1 without as many products.
listings="${BENCH_LISTINGS:-$listings}"
products="${BENCH_PRODUCTS:-$products}"
users="${BENCH_USERS:-$users}"
contracts="${BENCH_CONTRACTS:-$contracts}"
duration="${BENCH_DURATION:-$duration}"
concurrency="${BENCH_CONCURRENCY:-32}"
threads="${BENCH_THREADS:-2}"
platforms=3
port="${BENCH_PORT:-18080}"
pg_admin="${BENCH_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_db="${BENCH_PG_DB:-feria_bench}"
pg_url="${pg_admin%/*}/$pg_db"
out="${BENCH_OUT:-$root/BENCHMARKS.md}"
backends="${BENCH_BACKENDS:-sqlite postgres}"

# ---- tools ---------------------------------------------------------------------------
# shellcheck source=scripts/bench-tools.sh
. "$root/scripts/bench-tools.sh"
bench_tools || exit 1
if [ -z "${FERIA_BIN:-}" ]; then
    say "building the release binary"
    (cd "$root" && cargo build --release --quiet --bin feria)
    FERIA_BIN="${CARGO_TARGET_DIR:-$root/target}/release/feria"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/feria-bench.XXXXXX")"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    # BENCH_KEEP_WORK=1 keeps the run's directory (server logs, seed JSON, pgbench output).
    if [ -n "${BENCH_KEEP_WORK:-}" ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
rows="$work/rows.md"
: >"$rows"
notes="$work/notes.md"
: >"$notes"
if [ -n "${BENCH_NOTE:-}" ]; then echo "- $BENCH_NOTE" >>"$notes"; fi

# ---- measuring -----------------------------------------------------------------------
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# Polls the server's resident set size every 0.2 s into $1 (the peak, in kB) until killed.
watch_rss() {
    local file="$1" peak=0 now
    while true; do
        now="$(rss_kb "$server_pid")"
        [ "${now:-0}" -gt "$peak" ] && peak="$now" && echo "$peak" >"$file"
        sleep 0.2
    done
}

start_server() { # backend database_url
    local log="$work/server-$1.log"
    # Sign-in codes and writes are rate limited per client address (writes also per
    # credential); the load comes from one address and a few credentials.
    OTP_REQUESTS_PER_IP=100000000 WRITE_RATE_LIMIT=0 \
        RUST_LOG="${BENCH_RUST_LOG:-info}" "$FERIA_BIN" serve --database-url "$2" \
        --data-dir "$work/data-$1" --bind "127.0.0.1:$port" --log-format json >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    say "the server did not start; its log:"; tail -20 "$log" >&2; exit 1
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# Runs one wrk scenario against the server; prints "rps p50_ms p99_ms errors rss_mb cpu_per_1k".
run_wrk() { # scenario
    local hz cpu0 cpu1 peak peak_file="$work/peak" out_file="$work/wrk-$1.txt" watcher json
    hz="$(getconf CLK_TCK)"
    echo "$(rss_kb "$server_pid")" >"$peak_file"
    watch_rss "$peak_file" &
    watcher=$!
    cpu0="$(cpu_ticks "$server_pid")"
    # --timeout: the server's own request timeout. wrk's default (2 s) drops a slower
    # answer from the percentiles and counts it as a socket error.
    BENCH_SCENARIO="$1" BENCH_CONFIG="$work/config.lua" \
        wrk -t"$threads" -c"$concurrency" -d"${duration}s" --timeout 30s --latency \
        -s "$root/bench/feria.lua" \
        "http://127.0.0.1:$port" >"$out_file" 2>&1 || true
    cpu1="$(cpu_ticks "$server_pid")"
    kill "$watcher" 2>/dev/null || true
    wait "$watcher" 2>/dev/null || true
    json="$(sed -n 's/^BENCHJSON //p' "$out_file")"
    peak="$(cat "$peak_file" 2>/dev/null)"
    [ -n "$peak" ] || peak=0
    if [ -z "$json" ]; then
        say "wrk gave no result for $1:"; cat "$out_file" >&2
        echo "- - - - - -"; return
    fi
    jq -r --argjson cpu "$((cpu1 - cpu0))" --argjson hz "$hz" --argjson peak "$peak" '
        (.requests / (.duration_us / 1e6)) as $rps
        | [ ($rps | floor),
            (.p50_us / 1000 * 100 | round / 100),
            (.p99_us / 1000 * 100 | round / 100),
            (.non_2xx + .socket_errors),
            ($peak / 1024 | round),
            (if .requests > 0 then ($cpu / $hz) / (.requests / 1000) * 1000 | round / 1000 else 0 end)
          ] | map(tostring) | join(" ")' <<<"$json"
}

# pgbench at the same concurrency; prints its transactions per second. With several
# scripts, each transaction runs one of them, chosen at random.
run_pgbench() { # output_file database_url sql_file...
    local out="$1" url="$2" args=()
    shift 2
    for file in "$@"; do args+=(-f "$file"); done
    pgbench -n -M prepared -c "$concurrency" -j "$threads" -T "$duration" "${args[@]}" "$url" \
        >"$out" 2>&1 || { say "pgbench failed:"; tail -5 "$out" >&2; echo "-"; return; }
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out" | head -1 | awk '{printf "%d", $1}'
}

# S3's and S5's baselines (PostgreSQL): the purchase and the settle transaction as feria
# sends them, replayed by pgbench. The database is copied first; then, with
# log_statement = 'all' for the bench database, the server makes one purchase per spare
# listing (a different buyer each) and settles each spare contract (seeded, kept out of
# S5's run); scripts/pgbench_replay.py turns each logged transaction into a pgbench
# script (same statements, same bound values, ROLLBACK instead of COMMIT), and pgbench
# runs each kind's scripts, chosen at random, on the copy at the scenarios'
# concurrency. Sets b_purchase_pg and b_settle_pg (transactions per second, or "-").
replay_baselines() { # seed_json
    local log copy="${pg_db}_replay" offset purchases=0 settles=0 count
    b_purchase_pg="-"
    b_settle_pg="-"
    log="$(ls -t /var/log/postgresql/postgresql-*.log 2>/dev/null | head -1)"
    if [ -z "$log" ] || [ ! -r "$log" ]; then
        echo "- postgres: S3 and S5 baselines not measured: PostgreSQL's log (/var/log/postgresql) is not readable here." >>"$notes"
        return
    fi
    psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $copy WITH (FORCE)" >/dev/null
    psql -q "$pg_admin" -c "CREATE DATABASE $copy TEMPLATE $pg_db" >/dev/null
    psql -q "$pg_admin" -c "ALTER DATABASE $pg_db SET log_statement = 'all'" >/dev/null
    start_server postgres "$pg_url"
    offset="$(stat -c %s "$log")"
    count="$(jq -r '[(.spare_listings | length), (.buyers | length)] | min' "$1")"
    for i in $(seq 0 $((count - 1))); do
        local listing token
        listing="$(jq -r ".spare_listings[$i]" "$1")"
        token="$(jq -r ".buyers[$i].access_token" "$1")"
        curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $token" \
            -H "Idempotency-Key: s3-baseline-$i" \
            "http://127.0.0.1:$port/api/v1/marketplace/$listing/purchase" && purchases=$((purchases + 1))
    done
    local api_key contract
    api_key="$(jq -r '.platforms[0].api_key' "$1")"
    for contract in $spare_contracts; do
        curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $api_key" \
            -H "Idempotency-Key: s5-baseline-$contract" \
            "http://127.0.0.1:$port/api/v1/contracts/$contract/settle" && settles=$((settles + 1))
    done
    sleep 0.5
    stop_server
    psql -q "$pg_admin" -c "ALTER DATABASE $pg_db RESET log_statement" >/dev/null
    tail -c +"$((offset + 1))" "$log" >"$work/logged.txt"
    b_purchase_pg="$(replay S3 'INSERT INTO "purchases"' "$purchases purchases of spare listings (one per buyer)" "$copy")"
    # The settle's own update: status, then paid_at (diesel's column order).
    b_settle_pg="$(replay S5 'SET "status" = $1, "paid_at"' "$settles settles of spare contracts (seeded like S5's, left out of its run)" "$copy")"
    psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $copy WITH (FORCE)" >/dev/null
}

# One kind of logged transaction replayed by pgbench on the copy; prints its tps or "-",
# and a note.
replay() { # label marker what_was_made copy_database
    local dir="$work/replay-$1" scripts statements
    scripts="$(python3 "$root/scripts/pgbench_replay.py" --database "$pg_db" \
        --marker "$2" --out "$dir" <"$work/logged.txt")"
    if [ "${scripts:-0}" -gt 0 ]; then
        statements="$(grep -c ';$' "$dir/replay-1.sql")"
        run_pgbench "$dir.out" "${pg_admin%/*}/$4" "$dir"/replay-*.sql
        echo "- postgres: $1 baseline: $3 made by the server with every statement logged; $scripts logged transactions of $statements statements each (BEGIN to COMMIT) replayed by pgbench, chosen at random, on a copy of the database taken before them, each ending in ROLLBACK instead of COMMIT (no commit flush: the baseline errs high), with its values bound from one extra \`SELECT ... \\gset\`." >>"$notes"
    else
        echo "- postgres: $1 baseline not measured: no such transaction found in PostgreSQL's log." >>"$notes"
        echo "-"
    fi
}

run_inprocess() { # backend database_url scenario
    "$FERIA_BIN" bench-baseline --database-url "$2" --seed-report "$work/seed-$1.json" \
        --scenario "$3" --concurrency "$concurrency" --seconds "$duration" --log-format json \
        2>>"$work/baseline-$1.log" | jq -r '.requests_per_second | floor' || echo "-"
}

# pgbench's built-in TPC-B-like transaction ("move money between accounts": three
# account-like updates, a select, a history insert) at the run's concurrency, on its own
# database at scale 10 (about 160 MB: in memory, like the bench's data): the write
# scenarios' baseline (issue #25). Prints its transactions per second, or "-".
tpcb_baseline() {
    local db="${pg_db}_tpcb"
    psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    psql -q "$pg_admin" -c "CREATE DATABASE $db" >/dev/null
    pgbench -i -q -s 10 "${pg_admin%/*}/$db" >"$work/tpcb-init.out" 2>&1 || { echo "-"; return; }
    pgbench -n -b tpcb-like -M prepared -c "$concurrency" -j "$threads" -T "$duration" \
        "${pg_admin%/*}/$db" >"$work/tpcb.out" 2>&1 || { echo "-"; return; }
    psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    awk '/^tps/ {print int($3)}' "$work/tpcb.out"
}

# WAL PostgreSQL wrote, from LSN $1 to now, per row made ($2 rows): bytes, or "-".
wal_per_row() { # lsn_before rows
    if [ "${2:-0}" -gt 0 ]; then
        psql -qAt "$pg_url" -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$1')::bigint / $2"
    else
        echo "-"
    fi
}

ratio() { # feria baselineratio() { # feria baseline
    if [[ "$1" =~ ^[0-9]+$ && "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
    else
        echo "-"
    fi
}

row() { # scenario backend rps p50 p99 errors rss cpu baseline baseline_kind
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$1" "$2" "$data_size" "$concurrency" "$3" "$4" "$5" "$6" "$9" "${10}" \
        "$(ratio "$3" "$9")" "$7" "$8" >>"$rows"
}

# ---- one backend ---------------------------------------------------------------------
bench_backend() { # backend
    local backend="$1" url seed
    case "$backend" in
        sqlite) url="sqlite://$work/data-sqlite/feria.db" ;;
        postgres)
            if ! psql -q "$pg_admin" -c 'SELECT 1' >/dev/null 2>&1; then
                say "PostgreSQL is not reachable at $pg_admin: skipped"
                echo "- PostgreSQL was not reachable at \`$pg_admin\`: no PostgreSQL rows." >>"$notes"
                return
            fi
            psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null
            psql -q "$pg_admin" -c "CREATE DATABASE $pg_db" >/dev/null
            url="$pg_url" ;;
        *) say "unknown backend $backend"; return ;;
    esac
    say "$backend: seeding $listings listings, $products products, $users users"
    seed="$work/seed-$backend.json"
    "$FERIA_BIN" seed --database-url "$url" --data-dir "$work/data-$backend" --log-format json \
        --listings "$listings" --products "$products" --users "$users" \
        --platforms "$platforms" --credited-users "$credited" --buyers "$buyers" \
        --contracts "$contracts" --credit-minor 10000000 \
        >"$seed" 2>"$work/seed-$backend.log"
    local seed_secs
    seed_secs="$(jq -r '.total_seconds * 10 | round / 10' "$seed")"
    hot_count="$(jq -r '.hot_listings | length' "$seed")"
    # The last 50 seeded contracts stay out of S5's run: S5's baseline settles them.
    local seeded_contracts spare=0
    seeded_contracts="$(jq -r '(.contracts // []) | length' "$seed")"
    [ "$seeded_contracts" -gt 100 ] && spare=50
    spare_contracts="$(jq -r --argjson n "$spare" '(.contracts // []) | .[(length - $n):] | .[]' "$seed")"
    echo "- $backend: \`feria seed\` took ${seed_secs} s ($(jq -r '[.seconds[] | "\(.[0]) \(.[1] * 10 | round / 10) s"] | join(", ")' "$seed"))." >>"$notes"
    jq -r --argjson threads "$threads" --argjson spare "$spare" --arg codes "$work/codes.lua" \
        -f "$root/bench/config.jq" "$seed" >"$work/config.lua"

    start_server "$backend" "$url"
    # A short warm-up so the first scenario does not pay for cold caches alone.
    BENCH_SCENARIO=product BENCH_CONFIG="$work/config.lua" wrk -t1 -c4 -d2s \
        -s "$root/bench/feria.lua" "http://127.0.0.1:$port" >/dev/null 2>&1 || true
    local r_health r_product r_browse r_purchase r_settle r_signin
    say "$backend: GET /healthz"
    r_health="$(run_wrk healthz)"
    say "$backend: S2 product lookup"
    r_product="$(run_wrk product)"
    say "$backend: S1 browse"
    r_browse="$(run_wrk browse)"
    say "$backend: S3 purchase storm"
    local lsn0="" bought0=0 bought1=0
    if [ "$backend" = postgres ]; then
        lsn0="$(psql -qAt "$pg_url" -c 'SELECT pg_current_wal_lsn()')"
        bought0="$(psql -qAt "$pg_url" -c 'SELECT count(*) FROM purchases')"
    fi
    r_purchase="$(run_wrk purchase)"
    if [ "$backend" = postgres ]; then
        bought1="$(psql -qAt "$pg_url" -c 'SELECT count(*) FROM purchases')"
        echo "- postgres: S3 wrote $(wal_per_row "$lsn0" $((bought1 - bought0))) bytes of WAL per purchase ($((bought1 - bought0)) purchases; \`pg_current_wal_lsn()\` before and after the run, the server's background work included)." >>"$notes"
    fi
    say "$backend: S5 settle"
    r_settle="$(run_wrk settle)"
    s4_prepare "$backend" "$(jq -r '.platforms[0].id' "$seed")"
    say "$backend: S4 sign-in"
    r_signin="$(run_wrk signin)"
    stop_server
    s3_check "$backend" "$url"
    s5_check "$backend" "$url"

    # Baselines, with the server stopped.
    local b_product_pg="-" b_browse_pg="-" b_obvious_pg="-" b_tpcb_pg="-" b_product_ip b_browse_ip b_obvious_ip
    if [ "$backend" = postgres ] && command -v pgbench >/dev/null; then
        say "$backend: S3 and S5 baselines: recording purchases and settles, replaying them with pgbench"
        replay_baselines "$seed"
        make_pgbench_scripts "$seed"
        say "$backend: pgbench tpcb-like (the write scenarios' baseline)"
        b_tpcb_pg="$(tpcb_baseline)"
        say "$backend: pgbench baselines"
        b_product_pg="$(run_pgbench "$work/product.sql.out" "$pg_url" "$work/product.sql")"
        b_browse_pg="$(run_pgbench "$work/browse.sql.out" "$pg_url" "$work/browse.sql")"
        b_obvious_pg="$(run_pgbench "$work/browse-obvious.sql.out" "$pg_url" "$work/browse-obvious.sql")"
    fi
    say "$backend: in-process baselines"
    b_product_ip="$(run_inprocess "$backend" "$url" product)"
    b_browse_ip="$(run_inprocess "$backend" "$url" browse)"
    b_obvious_ip="$(run_inprocess "$backend" "$url" browse-full-text)"
    say "$backend: S1 overlap with the full-text engine"
    "$FERIA_BIN" bench-baseline --database-url "$url" --seed-report "$seed" \
        --scenario overlap --samples 50 --log-format json \
        2>>"$work/baseline-$backend.log" >"$work/overlap-$backend.json" || true
    local overlap
    overlap="$(jq -r '.overlap | "mean \(.mean * 1000 | round / 1000), min \(.min * 100 | round / 100) over \(.queries) queries (\(.non_empty) with results)"' "$work/overlap-$backend.json" 2>/dev/null || echo "not measured")"
    echo "- $backend: S1 top-20 overlap, feria's browse against the obvious full-text query ($( [ "$backend" = postgres ] && echo "GIN + ts_rank" || echo "FTS5 + bm25" )), random queries drawn like wrk's: $overlap." >>"$notes"

    # shellcheck disable=SC2086
    row "floor GET /healthz" "$backend" $r_health "-" "-"

    if [ "$backend" = postgres ]; then
        # shellcheck disable=SC2086
        row "S2 product lookup" "$backend" $r_product "$b_product_pg" "pgbench"
        # shellcheck disable=SC2086
        row "S1 browse" "$backend" $r_browse "$b_browse_pg" "pgbench, same SQL"
        # shellcheck disable=SC2086
        row "S1 browse" "$backend" $r_browse "$b_obvious_pg" "pgbench, obvious SQL"
    fi
    # shellcheck disable=SC2086
    row "S2 product lookup" "$backend" $r_product "$b_product_ip" "in-process"
    # shellcheck disable=SC2086
    row "S1 browse" "$backend" $r_browse "$b_browse_ip" "in-process"
    # shellcheck disable=SC2086
    row "S1 browse" "$backend" $r_browse "$b_obvious_ip" "in-process, obvious (full-text engine)"
    if [ "$backend" = postgres ]; then
        # shellcheck disable=SC2086
        row "S3 purchase storm" "$backend" $r_purchase "$b_tpcb_pg" "pgbench -b tpcb-like, scale 10"
        # shellcheck disable=SC2086
        row "S3 purchase storm" "$backend" $r_purchase "$b_purchase_pg" "pgbench, same transaction replayed"
    else
        # shellcheck disable=SC2086
        row "S3 purchase storm" "$backend" $r_purchase "-" "-"
    fi
    if [ "$backend" = postgres ]; then
        # shellcheck disable=SC2086
        row "S5 settle (3 lines, 2 buyers, 2 sellers)" "$backend" $r_settle "$b_tpcb_pg" "pgbench -b tpcb-like, scale 10"
        # shellcheck disable=SC2086
        row "S5 settle (3 lines, 2 buyers, 2 sellers)" "$backend" $r_settle "$b_settle_pg" "pgbench, same transaction replayed"
    else
        # shellcheck disable=SC2086
        row "S5 settle (3 lines, 2 buyers, 2 sellers)" "$backend" $r_settle "-" "-"
    fi
    # shellcheck disable=SC2086
    row "S4 sign-in (OTP verify + refresh)" "$backend" $r_signin "-" "-"
}

# S4's codes: requests them (4 clients in parallel) for fresh addresses of the first
# platform, reads them from the server's mail directory into $work/codes.lua, and notes
# what a code request costs (argon2 hashing the code dominates it).
s4_prepare() { # backend platform_id
    local count=$((60 * duration)) started elapsed mail_dir="$work/data-$1/mail"
    say "$1: S4 requesting $count sign-in codes"
    started="$(date +%s.%N)"
    seq 1 "$count" | xargs -P 4 -I{} curl -fsS -o /dev/null -X POST \
        -H 'Content-Type: application/json' \
        -d "{\"platform_id\":\"$2\",\"email\":\"s4-{}-$1@bench.example.com\",\"mode\":\"test\"}" \
        "http://127.0.0.1:$port/api/v1/auth/otp/email" || say "some code requests failed"
    elapsed="$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
    {
        echo "return {"
        for mail in "$mail_dir"/*.eml; do
            [ -e "$mail" ] || continue
            awk '{ sub(/\r$/, "") }
                /^To:/ && !to { to = $0; sub(/^To:[ \t]*/, "", to); if (match(to, /<[^>]+>/)) to = substr(to, RSTART + 1, RLENGTH - 2) }
                body == 0 && /^$/ { body = 1; next }
                body && !code && match($0, /[0-9][0-9][0-9][0-9][0-9][0-9]/) { code = substr($0, RSTART, 6) }
                END { if (to && code) printf "  { \"%s\", \"%s\" },\n", to, code }' "$mail"
        done
        echo "}"
    } >"$work/codes.lua"
    local got
    got="$(grep -c '^  {' "$work/codes.lua" || true)"
    echo "- $1: S4 set-up: $count code requests (\`POST /auth/otp/email\`, 4 clients) took ${elapsed} s, $(awk -v t="$elapsed" -v n="$count" 'BEGIN { printf "%.1f", t * 1000 / n }') ms each at 4 in flight on 2 cores: argon2 (m = 7 MiB, t = 5, p = 1) hashing the code is most of it, and verify pays it again; $got codes read back from the mail directory for the run." >>"$notes"
}

# Runs one SQL statement on the backend's database; prints its single row (or "query failed").
query_db() { # backend database_url sql
    case "$1" in
        sqlite) sqlite3 "${2#sqlite://}" "$3" 2>&1 || echo "query failed" ;;
        postgres) psql -Atq "$2" -c "$3" 2>&1 || echo "query failed" ;;
    esac
}

# "passes" or "FAILS (...)": `feria ledger verify` on the backend's database.
ledger_verdict() { # backend database_url
    if "$FERIA_BIN" ledger verify --database-url "$2" --log-format json >"$work/ledger-$1.json" 2>/dev/null; then
        echo "passes"
    else
        echo "FAILS (see the run's ledger-$1.json)"
    fi
}

# After the purchase storm: exactly once (one purchase per buyer and listing, one
# settlement journal entry per purchase, buyers' credits down by exactly the prices) and
# `feria ledger verify`. A note either way.
s3_check() { # backend database_url
    local sql result verify
    sql="SELECT (SELECT COUNT(*) FROM purchases) || ' ' ||
        (SELECT COUNT(*) FROM (SELECT DISTINCT buyer_id, listing_id FROM purchases) AS d) || ' ' ||
        (SELECT COUNT(*) FROM journal_entries WHERE idempotency_key LIKE 'settle:purchase:%:charge') || ' ' ||
        (SELECT COALESCE(SUM(price_minor), 0) FROM purchases) || ' ' ||
        (SELECT COALESCE(-SUM(p.amount), 0) FROM ledger_postings p
            JOIN journal_entries e ON e.id = p.entry_id
            JOIN ledger_accounts a ON a.id = p.account_id
            WHERE e.idempotency_key LIKE 'settle:purchase:%:charge' AND a.kind = 'user_credit')"
    result="$(query_db "$1" "$2" "$sql")"
    verify="$(ledger_verdict "$1" "$2")"
    # shellcheck disable=SC2086
    set -- "$1" $result
    if [ "$#" -eq 6 ] && [ "$2" = "$3" ] && [ "$2" = "$4" ] && [ "$5" = "$6" ]; then
        local pairs=$((hot_count * buyers)) exhausted=""
        [ "$2" -ge "$pairs" ] && exhausted=" (all $pairs pairs: the run's last requests were replays answered from the first purchase, its rate mixes both)"
        echo "- $1: S3 exactly once: $2 purchases of $hot_count hot listings by $buyers buyers$exhausted, each (buyer, listing) once, one settlement entry each, credits charged $(awk -v c="$5" 'BEGIN{printf "%.2f", c / 100}') USD = the prices' sum; \`feria ledger verify\` $verify." >>"$notes"
    else
        echo "- $1: S3 exactly-once check FAILED: purchases, distinct pairs, settlement entries, prices, charged = ${*:2}; \`feria ledger verify\` $verify." >>"$notes"
    fi
}

# After S5: each settled contract moved money once (one charge entry per settled
# contract, none for an open one), the buyers' credits went down by exactly the settled
# contracts' dues, and the ledger verifies. A note either way.
s5_check() { # backend database_url
    local sql result
    sql="SELECT (SELECT COUNT(*) FROM contracts WHERE status = 'settled') || ' ' ||
        (SELECT COUNT(*) FROM contracts WHERE status = 'open') || ' ' ||
        (SELECT COUNT(*) FROM journal_entries e JOIN contracts c
            ON e.idempotency_key = 'settle:contract:' || c.id || ':charge'
            WHERE c.status = 'settled') || ' ' ||
        (SELECT COUNT(*) FROM journal_entries WHERE idempotency_key LIKE 'settle:contract:%:charge') || ' ' ||
        (SELECT COALESCE(SUM(b.due_minor), 0) FROM contract_buyers b
            JOIN contracts c ON c.id = b.contract_id WHERE c.status = 'settled') || ' ' ||
        (SELECT COALESCE(-SUM(p.amount), 0) FROM ledger_postings p
            JOIN journal_entries e ON e.id = p.entry_id
            JOIN ledger_accounts a ON a.id = p.account_id
            WHERE e.idempotency_key LIKE 'settle:contract:%:charge' AND a.kind = 'user_credit')"
    result="$(query_db "$1" "$2" "$sql")"
    local verify
    verify="$(ledger_verdict "$1" "$2")"
    # shellcheck disable=SC2086
    set -- "$1" $result
    if [ "$#" -eq 7 ] && [ "$2" = "$4" ] && [ "$2" = "$5" ] && [ "$6" = "$7" ]; then
        local ran_out=""
        # The spare contracts (S5's baseline) stay open through the run.
        [ "$3" -le "${spare:-0}" ] && ran_out=" (every contract of the run was settled: its last requests were replays of settled ones, its rate is a floor)"
        echo "- $1: S5 exactly once: $2 of $(($2 + $3 - ${spare:-0})) contracts of the run settled$ran_out, one charge entry each, buyers' credits charged $(awk -v c="$6" 'BEGIN{printf "%.2f", c / 100}') USD = the settled contracts' dues; \`feria ledger verify\` $verify." >>"$notes"
    else
        echo "- $1: S5 exactly-once check FAILED: settled, open, charge entries of settled, charge entries, dues, charged = ${*:2}; \`feria ledger verify\` $verify." >>"$notes"
    fi
}

# The SQL the routes run (the domain queries; not the credential lookup), for pgbench.
make_pgbench_scripts() { # seed_json
    local platform per stem words niches
    platform="$(jq -r '.platforms[0].id' "$1")"
    per="$(jq -r '(.products.count / (.platforms | length)) | floor' "$1")"
    stem="$(jq -r '.products.prefix + "_" + .products.stem' "$1")"
    words="$(jq -r '.words | map("'"'"'" + . + "'"'"'") | join(",")' "$1")"
    niches="$(jq -r '.niches | map("'"'"'" + . + "'"'"'") | join(",")' "$1")"
    local nwords nniches
    nwords="$(jq -r '.words | length' "$1")"
    nniches="$(jq -r '.niches | length' "$1")"
    cat >"$work/product.sql" <<SQL
\set k random(0, $((per - 1)))
\set n 1 + :k * $platforms
SELECT id, platform_id, mode, user_id, parent_product_id, name, description, image, quantity, is_enabled, category, subcategory, tags, price_minor, currency, use_seasonal_prices, created_at, updated_at, deleted_at FROM products WHERE id = '$stem' || lpad(:n::text, 10, '0') AND platform_id = '$platform' AND mode = 'test' AND deleted_at IS NULL LIMIT 1;
SELECT s.id, s.product_id, s.name, s.price_minor, s.start_at, s.end_at, p.currency FROM seasonal_prices s JOIN products p ON p.id = s.product_id WHERE s.product_id = '$stem' || lpad(:n::text, 10, '0') ORDER BY s.start_at, s.id;
SQL
    # S1 as feria runs it now: the search index's page (rank order; its currency and price
    # conditions hidden from the price index), then the count over the price index (feria
    # counts only when the page is full, which is nearly always here).
    cat >"$work/browse.sql" <<SQL
\set w random(1, $nwords)
\set c random(1, $nniches)
\set lo random(0, 149)
SELECT l.id, l.platform_id, l.mode, l.seller_id, l.character_id, l.title, l.description, l.niche, l.character_name, l.price_minor, l.currency, l.license_type, l.status, l.preview_images, l.sales_count, l.revenue_minor, l.earnings_minor, l.rating_sum, l.rating_count, l.created_at, l.updated_at FROM listing_search_terms t JOIN listings l ON l.id = t.listing_id WHERE t.platform_id = '$platform' AND t.mode = 'test' AND t.term = (tsvector_to_array(to_tsvector('english'::regconfig, (ARRAY[$words])[:w])))[1] AND t.niche = (ARRAY[$niches])[:c] AND t.currency = 'USD' AND (t.price_minor + 0) >= :lo * 100 AND (t.price_minor + 0) <= (:lo + 50) * 100 ORDER BY t.score DESC, t.created_at DESC, t.listing_id DESC LIMIT 20 OFFSET 0;
SELECT COUNT(*) AS total FROM listing_search_terms t WHERE t.platform_id = '$platform' AND t.mode = 'test' AND t.term = (tsvector_to_array(to_tsvector('english'::regconfig, (ARRAY[$words])[:w])))[1] AND t.niche = (ARRAY[$niches])[:c] AND t.currency = 'USD' AND t.price_minor >= :lo * 100 AND t.price_minor <= (:lo + 50) * 100;
SQL
    # S1 the obvious way (the issue's reference): GIN match + btree filters, every match
    # ranked by ts_rank, top 20. No count: the reference is the cheapest obvious page.
    cat >"$work/browse-obvious.sql" <<SQL
\set w random(1, $nwords)
\set c random(1, $nniches)
\set lo random(0, 149)
SELECT l.id, l.platform_id, l.mode, l.seller_id, l.character_id, l.title, l.description, l.niche, l.character_name, l.price_minor, l.currency, l.license_type, l.status, l.preview_images, l.sales_count, l.revenue_minor, l.earnings_minor, l.rating_sum, l.rating_count, l.created_at, l.updated_at FROM listings l, plainto_tsquery('english', (ARRAY[$words])[:w]) AS query WHERE l.platform_id = '$platform' AND l.mode = 'test' AND l.status = 'active' AND (l.license_type <> 'exclusive' OR l.sales_count = 0) AND l.search @@ query AND l.niche = (ARRAY[$niches])[:c] AND l.currency = 'USD' AND l.price_minor >= :lo * 100 AND l.price_minor <= (:lo + 50) * 100 ORDER BY ts_rank(l.search, query) DESC, l.created_at DESC, l.id DESC LIMIT 20 OFFSET 0;
SQL
}

data_size="$listings listings + $products products, $users users, $platforms platforms"
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for backend in $backends; do
    bench_backend "$backend"
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the report ----------------------------------------------------------------------
cores="$(nproc)"
mem="$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
pg_version="$(psql -Atq "$pg_admin" -c 'SHOW server_version' 2>/dev/null || echo "not reachable")"
command_line="make bench BENCH_SIZE=$size"
for knob in BENCH_LISTINGS BENCH_PRODUCTS BENCH_USERS BENCH_DURATION; do
    [ -n "${!knob:-}" ] && command_line="$knob=${!knob} $command_line"
done
[ -n "${BENCH_BACKENDS:-}" ] && command_line="BENCH_BACKENDS=\"$backends\" $command_line"
cat >"$out" <<EOF
# Benchmarks

Written by \`make bench\` (scripts/bench.sh); how to run it and how to read this table:
[docs/BENCHMARKS-HOWTO.md](docs/BENCHMARKS-HOWTO.md). Benchmarks report; they never fail
the build.

- Command: \`$command_line\` (started $started)
- Machine: $cores cores ($cpu_model), $mem memory; load average $load_before before, $load_after after
- Versions: $("$FERIA_BIN" --version), $(rustc --version 2>/dev/null || echo "rustc unknown"), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), PostgreSQL $pg_version, SQLite bundled (libsqlite3-sys)
- Load: wrk, $threads threads, $concurrency connections, ${duration} s per scenario (answers awaited up to 30 s), after a 2 s warm-up; the server runs with its defaults (one worker per core, pool of 2 connections per core on SQLite and 4 per core on PostgreSQL, request logs at \`${BENCH_RUST_LOG:-info}\` as JSON to a file) on the same machine as wrk
- Baselines, same run, same concurrency: \`pgbench -M prepared\` running the route's domain SQL (PostgreSQL), and \`feria bench-baseline\`: the route's domain call in-process, without HTTP or credential lookup

| scenario | backend | data size | concurrency | requests/s | p50 ms | p99 ms | errors | baseline requests/s | baseline | feria / baseline | peak RSS MB | CPU s / 1k req |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
$(cat "$rows")

Notes:
$(cat "$notes")
EOF
say "wrote $out"
cat "$out"
