#!/usr/bin/env bash
# Start the local EVM node the on-chain tests run against: Foundry's anvil, a binary shipped
# inside the npm registry's @foundry-rs/anvil package, pinned by
# scripts/evm-node/package-lock.json and installed with `npm ci` (docs/ONCHAIN.md). anvil
# replaced ganache, which its maintainers have sunset and which once hung CI for 85 minutes.
#
#   scripts/evm-node.sh          install if missing, start if not answering, wait; prints the RPC URL
#   scripts/evm-node.sh stop     stop the node this script started
#   scripts/evm-node.sh status   say whether it answers
#   scripts/evm-node.sh binary   install if missing; print the anvil binary's path (the
#                                finality tests run private nodes of their own with it)
#
# Idempotent and safe to run from many processes at once (the test binaries call it): a
# lock serialises install and start.
#
# The node: chain id 8453, deterministic dev accounts (unlocked, funded with ETH), every
# transaction mined into its own block at once (automine). It runs with --silent: its
# banner would print private keys.
#
# Environment: EVM_NODE_PORT (8545), EVM_NODE_HOME ($HOME/.cache/feria/evm-node: the
# packages, the pid file and the log live there).
set -euo pipefail

port="${EVM_NODE_PORT:-8545}"
home="${EVM_NODE_HOME:-${HOME:-/tmp}/.cache/feria/evm-node}"
pidfile="$home/anvil-$port.pid"
logfile="$home/anvil-$port.log"
lockfile="$home/evm-node.lock"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rpc_url="http://127.0.0.1:$port"
chain_id=8453

say() { printf 'evm-node.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# The chain id the node at the port reports, in hex (empty when nothing answers).
running_chain() {
    command -v curl >/dev/null 2>&1 || { node_rpc_chain; return; }
    curl -s -m 2 -H 'content-type: application/json' \
        -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$rpc_url" 2>/dev/null |
        sed -n 's/.*"result":"\(0x[0-9a-fA-F]*\)".*/\1/p' || true
}
node_rpc_chain() {
    node -e '
fetch(process.argv[1], {method: "POST", headers: {"content-type": "application/json"},
  body: JSON.stringify({jsonrpc: "2.0", id: 1, method: "eth_chainId", params: []}),
  signal: AbortSignal.timeout(2000)})
  .then((r) => r.json()).then((j) => console.log(j.result || "")).catch(() => {});' "$rpc_url" 2>/dev/null || true
}

# What the node at the port says it is (`anvil/v1.7.1`), empty when nothing answers.
running_client() {
    curl -s -m 2 -H 'content-type: application/json' \
        -d '{"jsonrpc":"2.0","id":1,"method":"web3_clientVersion","params":[]}' "$rpc_url" 2>/dev/null |
        sed -n 's/.*"result":"\([^"]*\)".*/\1/p' || true
}

want_chain() { printf '0x%x' "$chain_id"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

stop_ours() {
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            say "stopping the EVM node (pid $pid)"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$pidfile"
    fi
}

# The anvil binary npm installed for this platform (the package carries one per platform as
# an optional dependency).
anvil_binary() {
    local found
    for found in "$home"/node_modules/@foundry-rs/anvil-*/bin/anvil; do
        [ -x "$found" ] && { echo "$found"; return; }
    done
}

install() {
    # Reinstall when the lock file changed since the last install.
    local stamp="$home/package-lock.json"
    if [ -n "$(anvil_binary)" ] && cmp -s "$stamp" "$here/evm-node/package-lock.json"; then
        return
    fi
    command -v npm >/dev/null 2>&1 || die "npm is required to install anvil (apt-get install nodejs npm)"
    say "installing anvil and solc into $home (npm ci)"
    rm -rf "$home/node_modules"
    cp "$here/evm-node/package.json" "$here/evm-node/package-lock.json" "$home/"
    (cd "$home" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null) ||
        die "npm ci failed in $home"
    [ -n "$(anvil_binary)" ] || die "npm installed no anvil binary for this platform ($(uname -sm))"
}

start() {
    mkdir -p "$home"
    exec 9>"$lockfile"
    flock -w 600 9 || die "timed out waiting for another evm-node.sh"

    install
    have=$(running_chain)
    if [ "$have" = "$(want_chain)" ]; then
        # The tests use anvil's own methods: another node on the port (a ganache left by
        # an older checkout) would fail them in confusing ways.
        if command -v curl >/dev/null 2>&1; then
            case "$(running_client)" in
            anvil/*) ;;
            *) die "the EVM node on port $port is $(running_client), not anvil (stop it, or set EVM_NODE_PORT)" ;;
            esac
        fi
        echo "$rpc_url"
        return
    fi
    if [ -n "$have" ]; then
        die "an EVM node on port $port reports chain $have, not $(want_chain) (set EVM_NODE_PORT, or stop it)"
    fi
    if port_open; then
        die "port $port is taken by something that is not an EVM node (set EVM_NODE_PORT, or stop it)"
    fi

    say "starting anvil on $rpc_url (log: $logfile)"
    nohup setsid "$(anvil_binary)" \
        --host 127.0.0.1 --port "$port" \
        --chain-id "$chain_id" --accounts 20 \
        --silent \
        >>"$logfile" 2>&1 </dev/null 9>&- &
    echo $! >"$pidfile"
    for _ in $(seq 1 300); do
        if [ "$(running_chain)" = "$(want_chain)" ]; then
            echo "$rpc_url"
            return
        fi
        kill -0 "$(cat "$pidfile")" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 20 "$logfile" >&2 || true
    die "anvil did not answer on $rpc_url"
}

case "${1:-start}" in
start) start ;;
binary)
    mkdir -p "$home"
    exec 9>"$lockfile"
    flock -w 600 9 || die "timed out waiting for another evm-node.sh"
    install
    anvil_binary
    ;;
stop)
    mkdir -p "$home"
    exec 9>"$lockfile"
    flock -w 60 9 || die "timed out waiting for another evm-node.sh"
    stop_ours
    ;;
status)
    have=$(running_chain)
    if [ -n "$have" ]; then echo "an EVM node answers on $rpc_url (chain $have)"; else
        echo "nothing answers on $rpc_url"
        exit 1
    fi
    ;;
*) die "usage: $0 [start|stop|status|binary]" ;;
esac
