# Sourced by scripts/bench.sh and scripts/bench-quick.sh: makes sure the load generator and
# the helpers the bench scripts call are installed (Debian packages), or stops.
bench_tools() {
    local missing="" tool sudo_cmd=""
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
