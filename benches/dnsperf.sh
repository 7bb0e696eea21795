#!/usr/bin/env bash
# Load test of a real fedns over loopback UDP with dnsperf, one run per query mix.
#
#   benches/dnsperf.sh            (from the repo root, or from anywhere)
#
# Builds the release binary, serves the embedded demo federation on 127.0.0.1, runs dnsperf
# against it for each mix, and prints q/s, dnsperf's average latency, the server's CPU time
# per query (utime+stime from /proc/PID/stat) and its resident memory (VmRSS). Needs
# dnsperf (benches/install-tools.sh installs it). See benches/README.md.
#
# Environment overrides:
#   FEDNS_BENCH_PORT     UDP port on 127.0.0.1                       (default 15353)
#   FEDNS_BENCH_SECONDS  dnsperf run time per mix                    (default 10)
#   FEDNS_BENCH_CLIENTS  dnsperf -c, simulated clients               (default 4)
#   FEDNS_BENCH_MAX_QPS  dnsperf -Q, rate limit; empty: as fast as possible
#   FEDNS_BENCH_ECS      IPv4 subnet sent as EDNS Client Subnet      (default 198.18.2.0/24, Tokyo)
#   FEDNS_BENCH_MIXES    which mixes to run       (default "geo_ecs geo_no_ecs static nxdomain mix")
#   FEDNS_BENCH_PIN      1: pin server to CPU 1 and dnsperf to CPU 0 when 2+ CPUs (default 1)
set -euo pipefail

PORT=${FEDNS_BENCH_PORT:-15353}
SECONDS_PER_MIX=${FEDNS_BENCH_SECONDS:-10}
CLIENTS=${FEDNS_BENCH_CLIENTS:-4}
MAX_QPS=${FEDNS_BENCH_MAX_QPS:-}
ECS_SUBNET=${FEDNS_BENCH_ECS:-198.18.2.0/24}
MIXES=${FEDNS_BENCH_MIXES:-geo_ecs geo_no_ecs static nxdomain mix}
PIN=${FEDNS_BENCH_PIN:-1}

cd "$(dirname "$0")/.."

# shellcheck source=benches/queries.sh
. benches/queries.sh

if ! command -v dnsperf >/dev/null; then
    echo "dnsperf.sh: dnsperf is missing: install the package dnsperf (benches/install-tools.sh installs every tool the benches use)" >&2
    exit 2
fi

cargo build --release
BIN="${CARGO_TARGET_DIR:-target}/release/fedns"

server_pin=() client_pin=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    server_pin=(taskset -c 1)
    client_pin=(taskset -c 0)
fi

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

write_query_files "$WORK"

# Per mix: query file and EDNS flags. Every mix sends EDNS (-e); the ECS ones add the option.
ecs_flag=(-E "8:$(ecs_hex "$ECS_SUBNET")")
mix_args() {
    case $1 in
    geo_ecs) echo "$WORK/geo" ;;
    geo_no_ecs) echo "$WORK/geo" ;;
    static) echo "$WORK/static" ;;
    nxdomain) echo "$WORK/nxdomain" ;;
    mix) echo "$WORK/mix" ;;
    *)
        echo "unknown mix $1" >&2
        exit 2
        ;;
    esac
}

# Newer builds also serve admin HTTP (the demo asks for a fixed port: take any free one)
# and drain for seconds after SIGTERM (not needed here).
extra=()
serve_help=$("$BIN" serve --help)
if grep -q -- '--admin' <<<"$serve_help"; then extra+=(--admin 127.0.0.1:0); fi
if grep -q -- '--drain' <<<"$serve_help"; then extra+=(--drain 0s); fi

FEDNS_LOG=warn "${server_pin[@]}" "$BIN" serve --listen "127.0.0.1:$PORT" "${extra[@]}" \
    >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!

# Wait (at most 10 s) for the ready line.
for ((i = 0; ; i++)); do
    if grep -q "^listening dns 127.0.0.1:$PORT\$" "$WORK/server.out"; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null || [ "$i" -ge 100 ]; then
        echo "fedns did not start listening on 127.0.0.1:$PORT:" >&2
        cat "$WORK/server.err" >&2
        exit 1
    fi
    sleep 0.1
done

cpu_ticks() { # utime + stime of the server, in clock ticks (fields 14 and 15 of stat)
    local stat
    stat=$(<"/proc/$SERVER_PID/stat")
    set -- ${stat##*) }
    echo $((${12} + ${13}))
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
field() { sed -n "s/^ *$1: *\([0-9.]*\).*/\1/p" "$2" | head -n 1; }

tick=$(getconf CLK_TCK)
echo
echo "fedns $(git describe --always --dirty 2>/dev/null || echo '?'), $(nproc) CPUs," \
    "${server_pin[*]:-unpinned} server, ${client_pin[*]:-unpinned} dnsperf," \
    "$SECONDS_PER_MIX s per mix, -c $CLIENTS${MAX_QPS:+, -Q $MAX_QPS}, ECS $ECS_SUBNET"
printf '%-11s %10s %12s %14s %8s %8s  %s\n' \
    mix "q/s" "avg lat µs" "CPU µs/query" "RSS MiB" lost "response codes"
for mix in $MIXES; do
    file=$(mix_args "$mix")
    edns=(-e)
    case $mix in geo_ecs | mix) edns=("${ecs_flag[@]}") ;; esac
    before=$(cpu_ticks)
    "${client_pin[@]}" dnsperf -s 127.0.0.1 -p "$PORT" -d "$file" -l "$SECONDS_PER_MIX" \
        -c "$CLIENTS" "${edns[@]}" ${MAX_QPS:+-Q "$MAX_QPS"} >"$WORK/$mix.out" 2>&1 || {
        cat "$WORK/$mix.out" >&2
        exit 1
    }
    after=$(cpu_ticks)
    completed=$(field "Queries completed" "$WORK/$mix.out")
    lost=$(field "Queries lost" "$WORK/$mix.out")
    qps=$(field "Queries per second" "$WORK/$mix.out")
    latency=$(field "Average Latency (s)" "$WORK/$mix.out")
    rcodes=$(sed -n 's/^ *Response codes: *//p' "$WORK/$mix.out")
    awk -v mix="$mix" -v qps="$qps" -v lat="$latency" -v ticks=$((after - before)) \
        -v hz="$tick" -v n="$completed" -v rss="$(rss_kib)" -v lost="$lost" -v rc="$rcodes" \
        'BEGIN { printf "%-11s %10.0f %12.1f %14.2f %8.1f %8d  %s\n",
            mix, qps, lat * 1e6, (n > 0 ? ticks / hz * 1e6 / n : 0), rss / 1024, lost, rc }'
done
