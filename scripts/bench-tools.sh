# Sourced by scripts/bench.sh and scripts/bench-quick.sh: makes sure the load generator and
# the helpers the bench scripts call are installed (Debian packages), or stops.
bench_tools() {
    local missing="" tool sudo_cmd=""
    # `feria serve` on PostgreSQL needs the key that seals stored secrets (docs/DEPLOYMENT.md,
    # "Secrets at rest"). Benchmark databases are throwaway: one fixed, public key (the
    # base64 of 32 ASCII bytes) keeps a seeded database usable from run to run.
    export FERIA_SECRET_KEY="${FERIA_SECRET_KEY:-$(printf 'feria-bench-only-key-not-secret!' | base64)}"
    for tool in wrk jq curl sqlite3; do
        command -v "$tool" >/dev/null || missing="$missing $tool"
    done
    if [ -n "$missing" ]; then
        echo "==> installing$missing (Debian packages)" >&2
        [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
        # shellcheck disable=SC2086
        $sudo_cmd apt-get install -y $missing >/dev/null 2>&1 \
            || { $sudo_cmd apt-get update >/dev/null && $sudo_cmd apt-get install -y $missing >/dev/null; }
    fi
    for tool in wrk jq curl sqlite3; do
        command -v "$tool" >/dev/null || { echo "$tool is required" >&2; return 1; }
    done
}
