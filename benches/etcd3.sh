#!/usr/bin/env bash
# Starts three etcd members on loopback (ports 23791-23793 for clients, 23801-23803
# between members) in a new temporary directory, as deploy/etcd/etcd.env configures
# them, and prints their client URLs; Ctrl-C stops them. For benchmarks run by hand:
#   PICLUSTER_BENCH_ETCD=$(benches/etcd3.sh --urls) cargo bench --bench scale
set -euo pipefail
urls=http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793
if [ "${1:-}" = --urls ]; then echo "$urls"; exit 0; fi
dir=$(mktemp -d)
cluster=e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$dir/e$i" \
        --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
        --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
        --initial-cluster "$cluster" --initial-cluster-state new --pre-vote=true \
        --auto-compaction-mode=revision --auto-compaction-retention=1000 \
        --logger=zap --log-level=warn &
done
echo "$urls"
wait
