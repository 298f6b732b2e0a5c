#!/usr/bin/env bash
# Start the local Stripe-compatible server the Stripe client's tests run against:
# localstripe from PyPI (pinned) with Feria's extension (scripts/localstripe_feria.py:
# Connect accounts, transfers, idempotency keys). See docs/STRIPE.md.
#
#   scripts/localstripe.sh          install if missing, start if not running, wait until it answers
#   scripts/localstripe.sh stop     stop the server this script started
#   scripts/localstripe.sh status   say whether it answers
#
# Idempotent and safe to run from many processes at once (the test binaries call it):
# a lock serialises install and start. Prints the base URL on success.
#
# Environment: LOCALSTRIPE_PORT (8420), LOCALSTRIPE_HOME ($HOME/.cache/feria: the venv,
# the pid file and the log live there), PYTHON (python3).
set -euo pipefail

LOCALSTRIPE_VERSION=1.15.10
port="${LOCALSTRIPE_PORT:-8420}"
home="${LOCALSTRIPE_HOME:-${HOME:-/tmp}/.cache/feria}"
venv="$home/localstripe-venv"
pidfile="$home/localstripe-$port.pid"
logfile="$home/localstripe-$port.log"
lockfile="$home/localstripe.lock"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
extension="$here/localstripe_feria.py"
base_url="http://127.0.0.1:$port"

say() { printf 'localstripe.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# The extension's version as the running server reports it (empty when nothing answers).
running_version() {
    local python="$venv/bin/python"
    [ -x "$python" ] || python="${PYTHON:-python3}"
    "$python" - "$base_url" <<'PY' 2>/dev/null || true
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/_config/feria", timeout=2) as r:
        print(json.load(r).get("extension_version", ""))
except Exception:
    pass
PY
}

wanted_version() { sha256sum "$extension" | cut -c1-16; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

stop_ours() {
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            say "stopping localstripe (pid $pid)"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$pidfile"
    fi
}

install() {
    if [ -x "$venv/bin/python" ] &&
        "$venv/bin/python" -c "import localstripe, sys; sys.exit(localstripe.__version__ != '$LOCALSTRIPE_VERSION')" 2>/dev/null; then
        return
    fi
    python="${PYTHON:-python3}"
    command -v "$python" >/dev/null 2>&1 || die "python3 is required to run localstripe"
    say "installing localstripe $LOCALSTRIPE_VERSION into $venv"
    rm -rf "$venv"
    if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
        # Debian's python3 ships venv separately.
        if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$venv"
            "$python" -m venv "$venv" || die "cannot create a virtualenv with $python"
        else
            die "cannot create a virtualenv with $python (install python3-venv)"
        fi
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "localstripe==$LOCALSTRIPE_VERSION" ||
        die "pip could not install localstripe==$LOCALSTRIPE_VERSION"
}

start() {
    mkdir -p "$home"
    exec 9>"$lockfile"
    flock -w 600 9 || die "timed out waiting for another localstripe.sh"

    install
    want=$(wanted_version)
    have=$(running_version)
    if [ -n "$have" ] && [ "$have" = "$want" ]; then
        echo "$base_url"
        return
    fi
    if [ -n "$have" ]; then
        say "a localstripe with another extension version ($have, want $want) answers; restarting it"
        stop_ours
        if port_open; then
            die "an older Feria localstripe answers on port $port but was not started by this script (no pid file in $home): stop it"
        fi
    fi
    if port_open; then
        die "port $port is taken by something that is not Feria's localstripe (set LOCALSTRIPE_PORT, or stop it)"
    fi

    say "starting localstripe on $base_url (log: $logfile)"
    nohup setsid "$venv/bin/python" "$extension" --host 127.0.0.1 --port "$port" \
        >>"$logfile" 2>&1 </dev/null 9>&- &
    echo $! >"$pidfile"
    for _ in $(seq 1 150); do
        if [ "$(running_version)" = "$want" ]; then
            echo "$base_url"
            return
        fi
        kill -0 "$(cat "$pidfile")" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 20 "$logfile" >&2 || true
    die "localstripe did not answer on $base_url"
}

case "${1:-start}" in
start) start ;;
stop)
    mkdir -p "$home"
    exec 9>"$lockfile"
    flock -w 60 9 || die "timed out waiting for another localstripe.sh"
    stop_ours
    ;;
status)
    have=$(running_version)
    if [ -n "$have" ]; then echo "localstripe answers on $base_url (extension $have)"; else
        echo "nothing answers on $base_url"
        exit 1
    fi
    ;;
*) die "usage: $0 [start|stop|status]" ;;
esac
