#!/bin/bash
# Bytes the coordinator's job store writes (SD card wear): over 60 s with four
# workers connected and idle, then over 60 s of one steady job on the four.
# Reads write_bytes from /proc/PID/io of the coordinator process.
#
#   bash benches/store_writes.sh            (builds the debug binaries first)
#   PROFILE=release bash benches/store_writes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-debug}
if [ "$PROFILE" = release ]; then cargo build -q --release --bins; else cargo build -q --bins; fi
B=target/$PROFILE
D=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$D"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$B/picluster init "$D/c" --listen "127.0.0.1:$PORT" > /dev/null
for i in 1 2 3 4; do $B/picluster add-worker "w$i" --cluster "$D/c" --out "$D/w$i.bundle" > /dev/null; done
RUST_LOG=warn $B/picluster coordinator --cluster "$D/c" 2>/dev/null &
C=$!
sleep 1
for i in 1 2 3 4; do RUST_LOG=warn $B/picluster-worker --bundle "$D/w$i.bundle" --threads 1 2>/dev/null & done
sleep 3
written() { awk '/^write_bytes/ {print $2}' "/proc/$C/io"; }
w0=$(written); sleep 60; w1=$(written)
echo "idle 60 s (4 workers connected): $((w1 - w0)) bytes"
H=0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c
$B/picluster submit sha256d --cluster "$D/c" --header $H --all --detach > /dev/null
sleep 5
w2=$(written); sleep 60; w3=$(written)
echo "busy 60 s (4 workers, one 2^32-nonce job): $((w3 - w2)) bytes"
echo "store file: $(stat -c %s "$D/c/coordinator.redb") bytes"
