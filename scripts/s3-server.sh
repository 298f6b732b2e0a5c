#!/usr/bin/env bash
# Start the local S3-compatible server the media store's tests run against: moto's server
# mode from PyPI (pinned in scripts/s3-server-requirements.txt). See docs/DEPLOYMENT.md,
# "Media storage".
#
#   scripts/s3-server.sh          install if missing, start if not running, wait until it answers
#   scripts/s3-server.sh stop     stop the server this script started
#   scripts/s3-server.sh status   say whether it answers
#
# Idempotent and safe to run from many processes at once (the test binaries call it):
# a lock serialises install and start. Prints the endpoint URL on success; tests give it
# to the server as MEDIA_S3_ENDPOINT and create a bucket of their own in it.
#
# Environment: S3_SERVER_PORT (8430), S3_SERVER_HOME ($HOME/.cache/feria: the venv, the
# pid file and the log live there), PYTHON (python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
requirements="$here/s3-server-requirements.txt"
port="${S3_SERVER_PORT:-8430}"
home="${S3_SERVER_HOME:-${HOME:-/tmp}/.cache/feria}"
venv="$home/s3-server-venv"
pidfile="$home/s3-server-$port.pid"
logfile="$home/s3-server-$port.log"
lockfile="$home/s3-server.lock"
stamp="$venv/.requirements.sha256"
endpoint="http://127.0.0.1:$port"

say() { printf 's3-server.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# Whether moto answers on the port (its own small config API, which no other S3 server
# has).
answers() {
    local python="$venv/bin/python"
    [ -x "$python" ] || python="${PYTHON:-python3}"
    "$python" - "$endpoint" <<'PY' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/moto-api/config", timeout=5) as r:
    sys.exit(0 if 200 <= r.status < 300 else 1)
PY
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

stop_ours() {
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            say "stopping the S3 server (pid $pid)"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$pidfile"
    fi
}

install() {
    want=$(sha256sum "$requirements" | cut -c1-64)
    if [ -x "$venv/bin/moto_server" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return
    fi
    python="${PYTHON:-python3}"
    command -v "$python" >/dev/null 2>&1 || die "python3 is required to run the S3 server"
    say "installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $venv"
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
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" ||
        die "pip could not install $requirements"
    echo "$want" >"$stamp"
}

start() {
    mkdir -p "$home"
    exec 9>"$lockfile"
    flock -w 900 9 || die "timed out waiting for another s3-server.sh"

    install
    if answers; then
        echo "$endpoint"
        return
    fi
    # A busy machine may make a running moto slow to answer: ask again before deciding
    # that what holds the port is something else.
    if port_open; then
        for _ in 1 2 3 4 5; do
            sleep 1
            if answers; then
                echo "$endpoint"
                return
            fi
        done
    fi
    if port_open; then
        die "port $port is taken by something that is not moto (set S3_SERVER_PORT, or stop it)"
    fi

    say "starting moto's S3 server on $endpoint (log: $logfile)"
    nohup setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" \
        >>"$logfile" 2>&1 </dev/null 9>&- &
    echo $! >"$pidfile"
    for _ in $(seq 1 150); do
        if answers; then
            echo "$endpoint"
            return
        fi
        kill -0 "$(cat "$pidfile")" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 20 "$logfile" >&2 || true
    die "the S3 server did not answer on $endpoint"
}

case "${1:-start}" in
start) start ;;
stop)
    mkdir -p "$home"
    exec 9>"$lockfile"
    flock -w 60 9 || die "timed out waiting for another s3-server.sh"
    stop_ours
    ;;
status)
    if answers; then echo "moto's S3 server answers on $endpoint"; else
        echo "nothing answers on $endpoint"
        exit 1
    fi
    ;;
*) die "usage: $0 [start|stop|status]" ;;
esac
