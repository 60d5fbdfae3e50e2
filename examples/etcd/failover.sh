#!/usr/bin/env bash
# Two nameservers on one registry in a three-member etcd cluster, all on this machine, and a
# failover watched from a client: README.md, "Running nameservers on etcd", step by step.
# Needs etcd (Debian: etcd-server) and protoc (protobuf-compiler); .ci/tools installs both.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --quiet -p nameserver --features etcd
ns=target/debug/nameserver
dir=$(mktemp -d)
pids=()
cleanup() {
    kill -9 "${pids[@]}" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
say() { printf '\n# %s\n' "$*"; }

say "three etcd members on loopback (clients on 23791-23793), each with its own data directory"
cluster=n1=http://127.0.0.1:23801,n2=http://127.0.0.1:23802,n3=http://127.0.0.1:23803
for n in 1 2 3; do
    etcd --name "n$n" --data-dir "$dir/n$n" \
        --listen-peer-urls "http://127.0.0.1:2380$n" --initial-advertise-peer-urls "http://127.0.0.1:2380$n" \
        --listen-client-urls "http://127.0.0.1:2379$n" --advertise-client-urls "http://127.0.0.1:2379$n" \
        --initial-cluster "$cluster" --initial-cluster-token demo --initial-cluster-state new \
        >"$dir/etcd-n$n.log" 2>&1 &
    pids+=($!)
    disown
done
etcd_pids=("${pids[@]}")
for n in 1 2 3; do
    until grep -q "ready to serve client requests" "$dir/etcd-n$n.log"; do sleep 0.1; done
done
export RPC_ETCD_ENDPOINTS=http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793

say "nameserver A on port 29090 and B on 29190, one registry"
$ns serve --host 127.0.0.1 --port 29090 --store etcd --etcd-timeout 2 >"$dir/a.log" 2>&1 &
a=$!
pids+=("$a")
disown
$ns serve --host 127.0.0.1 --port 29190 --store etcd --etcd-timeout 2 >"$dir/b.log" 2>&1 &
pids+=($!)
disown
until $ns ping --ns-host 127.0.0.1 --ns-port 29090 >/dev/null 2>&1 &&
    $ns ping --ns-host 127.0.0.1 --ns-port 29190 >/dev/null 2>&1; do sleep 0.1; done

A=(--ns-host 127.0.0.1 --ns-port 29090)
B=(--ns-host 127.0.0.1 --ns-port 29190)
BOTH=(--ns-host 127.0.0.1 --ns-port 29090 --ns-fallback 127.0.0.1:29190)

say "register through A, look up through B"
$ns register demo.shop PYRO:shop@127.0.0.1:4000 "${A[@]}"
$ns lookup demo.shop "${B[@]}"

say "kill -9 nameserver A; a client given both resolves through B"
kill -9 "$a"
$ns lookup demo.shop "${BOTH[@]}"

say "kill one etcd member: changes and lookups go on"
kill -9 "${etcd_pids[0]}"
$ns register demo.more PYRO:more@127.0.0.1:4001 "${BOTH[@]}"
$ns lookup demo.more "${BOTH[@]}"

say "kill a second: no quorum; a change is refused, a lookup is answered from B's mirror"
kill -9 "${etcd_pids[1]}"
if $ns register demo.refused PYRO:no@127.0.0.1:4002 "${BOTH[@]}"; then
    echo "a change without a quorum was accepted" >&2
    exit 1
fi
$ns lookup demo.shop "${BOTH[@]}"
echo "failover shown"
