#!/usr/bin/env bash
# picluster's SHA-256d kernels side by side with cpuminer-opt's on this machine: one
# thread each, alternating runs (picluster, peer, picluster, peer, ...), so that both
# see the same machine. Prints each run, then one JSON line with min/median/max per
# path and the ratios of the medians.
#
#   CPUMINER=/path/to/cpuminer benches/peers.sh [RUNS]
#   benches/peers.sh [RUNS]          # only the pairs whose peer is at hand
#
# Pairs, each run only when its peer binary is given:
#   shani  against CPUMINER       cpuminer-opt built with -march=native on a CPU with
#                                 SHA-NI: its sha256d takes the x2 SHA path
#   avx2   against CPUMINER_AVX2  cpuminer-opt built with -march=core-avx2: its pure
#                                 AVX2 8-way path
#   avx512 against CPUMINER       on a CPU with AVX-512 (-march=native there takes
#                                 its 16-way path); shani is then paired with
#   shani  against CPUMINER_SHA   cpuminer-opt built with -march=native
#                                 -mno-avx512f: its x2 SHA path on that CPU
#
# And the preimage kernel against hashcat (Debian's `hashcat` with the
# `pocl-opencl-icd` CPU runtime and the `ocl-icd-libopencl1` loader, installed when
# missing and run as root; HASHCAT=0
# skips it): the mask ?l?l?l?l?d?d?d (457 M candidates), three targets and a decoy,
# SHA-256 (`-m 1400`) and SHA-256d (`-m 21400`), hashcat with `-O -w 3` on every core
# against picluster's worker engine on every core. Both must find the same three
# passwords; the rates are candidates per second over the whole mask. picluster runs
# the implementation it would choose (the fastest SHA-256d one), or
# PICLUSTER_PREIMAGE_IMPL.
#
# cpuminer-opt is GPL and is never vendored here: build it outside the repository,
# from its public source (https://github.com/JayDDee/cpuminer-opt), e.g.
#   apt-get install build-essential automake libssl-dev libcurl4-openssl-dev \
#       libjansson-dev libgmp-dev zlib1g-dev
#   ./autogen.sh && CFLAGS="-O3 -march=native" ./configure --with-curl && make -j2
# (and again with -march=core-avx2 into another directory for CPUMINER_AVX2).
#
# RUNS (default 5) runs of PICLUSTER_BENCH_SECONDS (default 10) each, per side.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
seconds=${PICLUSTER_BENCH_SECONDS:-10}

hashcat_wanted=${HASHCAT:-1}
if [ "$hashcat_wanted" != 0 ] && ! command -v hashcat >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            hashcat pocl-opencl-icd ocl-icd-libopencl1 >&2 || true
    fi
    command -v hashcat >/dev/null 2>&1 \
        || echo "peers.sh: hashcat is missing (apt-get install hashcat pocl-opencl-icd ocl-icd-libopencl1); skipping the preimage pairs" >&2
fi

cargo bench --locked --bench sha256d --no-run >&2

# One picluster run of implementation $1: MH/s on one thread.
ours() {
    PICLUSTER_BENCH_IMPL=$1 PICLUSTER_BENCH_SECONDS=$seconds \
        cargo bench --locked --bench sha256d -q 2>/dev/null \
        | grep -o '"mhs": [0-9.]*' | awk '{print $2}'
}

# One cpuminer-opt run of binary $1: MH/s on one thread, from the "Benchmark:" line
# it prints when --time-limit ends it (its last "Total:" line when there is none).
theirs() {
    "$1" -a sha256d --benchmark -t 1 --cpu-priority 4 --time-limit "$seconds" 2>&1 \
        | tr -d '\r' | sed 's/\x1b\[[0-9;]*m//g' \
        | awk '/(Total|Benchmark): /{
                   for (i = 1; i <= NF; i++)
                       if ($i == "Total:" || $i == "Benchmark:") {v = $(i+1); u = $(i+2); final = ($i == "Benchmark:")}
                   if (final) {fv = v; fu = u}
               }
               END {
                   if (fv != "") {v = fv; u = fu}
                   if (v == "") exit 1
                   if (u ~ /^kH/) v /= 1000; else if (u ~ /^GH/) v *= 1000; else if (u ~ /^H/) v /= 1e6
                   printf "%.3f\n", v
               }'
}

# min median max of the numbers on stdin.
stats() {
    sort -g | awk '{a[NR] = $1} END {
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "%.3f %.3f %.3f\n", a[1], m, a[NR]
    }'
}

# The preimage pairs' inputs: three passwords in the mask and a decoy digest.
mask='?l?l?l?l?d?d?d'
passwords=(pass123 zzzz999 mine042)
hashcat_dir=$(mktemp -d)
trap 'rm -rf "$hashcat_dir"' EXIT
digest() { # $1 = sha256 | sha256d, $2 = password: the hex digest
    if [ "$1" = sha256 ]; then
        printf '%s' "$2" | sha256sum | cut -d' ' -f1
    else
        # shellcheck disable=SC2059 # the hex digest, as \xNN escapes, is the format
        printf "$(printf '%s' "$2" | sha256sum | cut -d' ' -f1 | sed 's/../\\x&/g')" \
            | sha256sum | cut -d' ' -f1
    fi
}

# One picluster run: million candidates per second with the worker's engine.
ours_preimage() {
    PICLUSTER_BENCH_IMPL=${PICLUSTER_PREIMAGE_IMPL:-} PICLUSTER_BENCH_PREIMAGE=$1 \
        PICLUSTER_BENCH_SECONDS=$seconds \
        cargo bench --locked --bench sha256d -q 2>/dev/null \
        | grep -o '"engine_mcps": [0-9.]*' | awk '{print $2}'
}

# One hashcat run over the whole mask: million candidates per second, hashcat's own
# speed, the highest of its per-second status lines (generous to it: no start-up, no
# slow first second), after checking that it cracked exactly the three passwords.
theirs_preimage() {
    local mode=$1 hash=$2
    : >"$hashcat_dir/hashes"
    for p in "${passwords[@]}"; do digest "$hash" "$p" >>"$hashcat_dir/hashes"; done
    printf '%064d\n' 5 >>"$hashcat_dir/hashes"
    rm -f "$hashcat_dir/out"
    hashcat -m "$mode" -a 3 -O -w 3 --potfile-disable --status --status-json --status-timer 1 \
        --outfile "$hashcat_dir/out" --outfile-format 2 "$hashcat_dir/hashes" "$mask" \
        >"$hashcat_dir/log" 2>&1 || true
    if [ "$(sort "$hashcat_dir/out" 2>/dev/null | tr '\n' ' ')" != "mine042 pass123 zzzz999 " ]; then
        echo "peers.sh: hashcat -m $mode found '$(tr '\n' ' ' <"$hashcat_dir/out" 2>/dev/null)', not the three passwords" >&2
        return 1
    fi
    grep -o '"devices": *\[[^]]*\]' "$hashcat_dir/log" | grep -o '"speed": *[0-9]*' | awk '{print $2}' \
        | sort -g | tail -1 | awk '{printf "%.3f\n", $1 / 1e6}'
}

has_impl() {
    PICLUSTER_BENCH_IMPL=$1 PICLUSTER_BENCH_SECONDS=0.01 \
        cargo bench --locked --bench sha256d -q >/dev/null 2>&1
}

pairs=()
if [ -n "${CPUMINER:-}" ]; then
    if has_impl avx512; then
        pairs+=("avx512 $CPUMINER cpuminer-16way")
    else
        pairs+=("shani $CPUMINER cpuminer-sha-x2")
    fi
fi
if [ -n "${CPUMINER_SHA:-}" ]; then
    pairs+=("shani $CPUMINER_SHA cpuminer-sha-x2")
fi
if [ -n "${CPUMINER_AVX2:-}" ]; then
    pairs+=("avx2 $CPUMINER_AVX2 cpuminer-avx2-8way")
fi

cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')

# compare NAME PEER UNIT OURS THEIRS: RUNS alternating runs of the commands OURS and
# THEIRS (each a function and its arguments, printing one rate), the runs and the
# summary on stderr, the pair's JSON member on stdout.
compare() {
    local name=$1 peer=$2 unit=$3 ours_cmd=$4 theirs_cmd=$5 run o t
    local ours_runs=() theirs_runs=()
    for run in $(seq "$runs"); do
        o=$($ours_cmd)
        t=$($theirs_cmd)
        echo "run $run: picluster $name $o, $peer $t ($unit)" >&2
        ours_runs+=("$o")
        theirs_runs+=("$t")
    done
    read -r omin omed omax < <(printf '%s\n' "${ours_runs[@]}" | stats)
    read -r tmin tmed tmax < <(printf '%s\n' "${theirs_runs[@]}" | stats)
    ratio=$(awk -v a="$omed" -v b="$tmed" 'BEGIN {printf "%.3f", a / b}')
    echo "$name: picluster $omin/$omed/$omax, $peer $tmin/$tmed/$tmax $unit (min/median/max), ratio $ratio" >&2
    local key=mhs
    [ "$unit" = "M candidates/s" ] && key=mcps
    printf '"%s": {"picluster_%s": [%s, %s, %s], "peer": "%s", "peer_%s": [%s, %s, %s], "ratio": %s}' \
        "$name" "$key" "$omin" "$omed" "$omax" "$peer" "$key" "$tmin" "$tmed" "$tmax" "$ratio"
}

json_parts=()
for pair in "${pairs[@]}"; do
    read -r impl peer peer_name <<<"$pair"
    json_parts+=("$(compare "$impl" "$peer_name" "MH/s" "ours $impl" "theirs $peer")")
done
joined=$(IFS=,; echo "${json_parts[*]}")

preimage_parts=()
if [ "$hashcat_wanted" != 0 ] && command -v hashcat >/dev/null 2>&1; then
    for pair in "1400 sha256" "21400 sha256d"; do
        read -r mode hash <<<"$pair"
        preimage_parts+=("$(compare "$hash" "hashcat -m $mode -O" "M candidates/s" \
            "ours_preimage $hash" "theirs_preimage $mode $hash")")
    done
fi
preimage=$(IFS=,; echo "${preimage_parts[*]}")
preimage_impl=$(PICLUSTER_BENCH_IMPL=${PICLUSTER_PREIMAGE_IMPL:-} PICLUSTER_BENCH_PREIMAGE=sha256 \
    PICLUSTER_BENCH_SECONDS=0.01 cargo bench --locked --bench sha256d -q 2>/dev/null \
    | grep -o '"impl": "[^"]*"' | cut -d'"' -f4)
printf '{"bench": "peers", "date": "%s", "cpu": "%s", "runs": %s, "seconds": %s, "sha256d": {%s}, "preimage_impl": "%s", "preimage": {%s}}\n' \
    "$(date -u +%Y-%m-%d)" "$cpu" "$runs" "$seconds" "$joined" "$preimage_impl" "$preimage"
