#!/usr/bin/env bash
# fedns side by side with gdnsd and Knot DNS (and NSD) under dnsperf, in one run.
#
#   benches/peers.sh            (from the repo root, or from anywhere)
#
# Needs dnsperf, gdnsd, knot, nsd and dig (benches/install-tools.sh installs them; this
# script stops and names what is missing), builds fedns
# (cargo build --release) unless FEDNS_BIN names a binary, and serves the same zone from
# every server on 127.0.0.1, each on its own port:
#   fedns   the embedded demo federation (src/demo.rs), one worker
#   gdnsd   plugin_geoip in city-auto mode with the same MMDB, cluster coordinates and
#           addresses (benches/peers/gdnsd.config), ECS on
#   knot    static: the geo names are plain records of the Tokyo answer (benches/peers/)
#   nsd     static, like knot (NSD ignores ECS)
#   fedns2  (not in the default list) fedns with 2 workers and no pinning: the scaling run
#   echo    (not in the default list) the floor: benches/peers/echo.c, built with gcc, sends
#           each query back with QR set (recvmmsg/sendmmsg, 32 at a time), no DNS work;
#           its CPU per query is the kernel's cost of a loopback UDP query and reply
# It checks with dig that gdnsd gives fedns's answers (and Knot and NSD the Tokyo ones),
# then, with every server pinned to CPU 1 and dnsperf to CPU 0, runs each query mix
# against each server in turn, PEERS_REPS times at full speed (medians), then
# PEERS_LAT_REPS times at a fixed rate (half of fedns's median q/s for that mix, the same
# rate for every server) with per-query latencies for p50/p99 (medians; p99's range too,
# as it varies several-fold from run to run). Prints Markdown tables: q/s, latency,
# server CPU µs per query ((utime+stime) of the server's processes from /proc over the
# completed queries, and utime and stime apart), RSS, lost, response codes, and
# fedns/peer ratios.
# See "fedns vs gdnsd vs Knot (benches/peers.sh)" in benches/README.md.
#
# Environment overrides:
#   PEERS_SERVERS   servers, in order          (default "fedns gdnsd knot nsd"; also fedns2,
#                   echo)
#   PEERS_MIXES     query mixes                (default "static nxdomain geo_no_ecs geo_ecs mix")
#   PEERS_SECONDS   dnsperf run time, full speed             (default 10)
#   PEERS_REPS      full-speed repetitions per server and mix (default 3)
#   PEERS_LAT_SECONDS  run time of the fixed-rate latency run (default 5; 0 skips it)
#   PEERS_LAT_REPS  fixed-rate repetitions per server and mix (default 3)
#   PEERS_LOAD      fraction of the reference's median q/s offered in that run (default 0.5)
#   PEERS_LOAD_REF  server whose q/s sets that rate, or "own" for each server's own
#                   (default: the first of PEERS_SERVERS)
#   PEERS_CLIENTS   dnsperf -c                                (default 4)
#   PEERS_ECS       ECS subnet of the ECS mixes               (default 198.18.2.0/24, Tokyo)
#   PEERS_PORT      first UDP port; servers take PORT..PORT+5 (default 15360)
#   PEERS_PIN       1: server on CPU 1, dnsperf on CPU 0 (needs 2+ CPUs) (default 1)
#   PEERS_DO        1: every query sets DNSSEC OK (signed replies where the zone is
#                   signed: give fedns a config with `dnssec:` in PEERS_FEDNS_ARGS)
#   PEERS_WARMUP    seconds of load on each server before measuring     (default 2;
#                   under callgrind, of each mix at the callgrind rate before counting it)
#   PEERS_NICE      nice value of the servers and dnsperf, as root (default -19; 0: none)
#   PEERS_OUT       directory for configs, raw output and results (default: a new
#                   /tmp/peers.XXXXXX, kept and printed at the end)
#   PEERS_CALLGRIND 1: instead of the load runs, count each server's own instructions per
#                   query under valgrind's callgrind (user space only, so free of the
#                   kernel's share and of the machine's noise); see below   (default 0)
#   PEERS_CALLGRIND_RATE     q/s offered in that mode (default 2000: one query per batch)
#   PEERS_CALLGRIND_SECONDS  length of each counted window      (default 10)
#   PEERS_FEDNS_ARGS         more arguments of `fedns serve`, e.g.
#                            "--dnstap unix:/tmp/tap.sock" (with fstrm_capture listening there)
#   FEDNS_BIN       fedns binary to use instead of building this tree
#   CARGO_TARGET_DIR  honoured by the build
# Default run: 4 servers x 5 mixes x (3 x 10 s + 3 x 5 s) = about 15 minutes, plus the build.
set -euo pipefail

SERVERS=${PEERS_SERVERS:-fedns gdnsd knot nsd}
MIXES=${PEERS_MIXES:-static nxdomain geo_no_ecs geo_ecs mix}
RUN_SECONDS=${PEERS_SECONDS:-10}
REPS=${PEERS_REPS:-3}
LAT_SECONDS=${PEERS_LAT_SECONDS:-5}
LAT_REPS=${PEERS_LAT_REPS:-3}
CALLGRIND=${PEERS_CALLGRIND:-0}
CG_RATE=${PEERS_CALLGRIND_RATE:-2000}
CG_SECONDS=${PEERS_CALLGRIND_SECONDS:-10}
LOAD=${PEERS_LOAD:-0.5}
read -r -a server_list <<<"$SERVERS"
LOAD_REF=${PEERS_LOAD_REF:-${server_list[0]}}
CLIENTS=${PEERS_CLIENTS:-4}
ECS_SUBNET=${PEERS_ECS:-198.18.2.0/24}
PORT_BASE=${PEERS_PORT:-15360}
PIN=${PEERS_PIN:-1}
DO=${PEERS_DO:-0}
WARMUP=${PEERS_WARMUP:-2}
NICE=${PEERS_NICE:--19}

cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=benches/queries.sh
. benches/queries.sh
TEMPLATES=$ROOT/benches/peers
OUT=${PEERS_OUT:-$(mktemp -d /tmp/peers.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

declare -A PORT=([fedns]=$PORT_BASE [fedns2]=$((PORT_BASE + 1)) [gdnsd]=$((PORT_BASE + 2))
    [knot]=$((PORT_BASE + 3)) [nsd]=$((PORT_BASE + 4)) [echo]=$((PORT_BASE + 5)))
for s in $SERVERS; do
    [ -n "${PORT[$s]:-}" ] || { echo "unknown server '$s' (fedns fedns2 gdnsd knot nsd echo)" >&2; exit 2; }
done
for m in $MIXES; do
    case $m in static | nxdomain | geo_no_ecs | geo_ecs | mix) ;;
    *) echo "unknown mix '$m' (static nxdomain geo_no_ecs geo_ecs mix)" >&2; exit 2 ;;
    esac
done
has() { [[ " $SERVERS " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------------
# Tools: this script installs nothing; it names every missing tool with its package and
# stops (benches/install-tools.sh installs them all).
missing=()
need() { command -v "$1" >/dev/null || missing+=("$1 (package $2)"); }
need dnsperf dnsperf
need dig bind9-dnsutils
if has gdnsd; then need gdnsd gdnsd; fi
if has knot; then need knotd knot; fi
if has nsd; then need nsd nsd; fi
if has echo; then need gcc "gcc, libc6-dev"; fi
if [ "$CALLGRIND" = 1 ]; then need callgrind_control valgrind; fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "peers.sh: missing tools:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    echo "install them with benches/install-tools.sh (valgrind: benches/install-tools.sh valgrind)" >&2
    exit 2
fi

if [ -n "${FEDNS_BIN:-}" ]; then
    BIN=$FEDNS_BIN
elif has fedns || has fedns2; then
    cargo build --release
    BIN="${CARGO_TARGET_DIR:-target}/release/fedns"
fi
if [ -n "${BIN:-}" ]; then BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN"); fi


# ---------------------------------------------------------------------------------------
# Processes: every server started is killed on exit, with all its children (NSD forks).
declare -A PID=()
descendants() { # PID and all its descendants, parents first
    local p=$1 c kids=()
    echo "$p"
    read -r -a kids < <(cat "/proc/$p/task/"*/children 2>/dev/null | tr '\n' ' ') || true
    for c in "${kids[@]}"; do descendants "$c"; done
}
alive() { # any of the PIDs still running?
    local p
    for p in "$@"; do if kill -0 "$p" 2>/dev/null; then return 0; fi; done
    return 1
}
kill_tree() { # SIGTERM to a process and its descendants; SIGKILL what is left after 5 s
    local pids i
    read -r -a pids <<<"$(descendants "$1" | tr '\n' ' ')"
    kill "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "${pids[@]}" || break
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    local s
    for s in "${!PID[@]}"; do kill_tree "${PID[$s]}"; done
    if [ -n "$AUTOGROUP_NICE" ]; then echo "$AUTOGROUP_NICE" >/proc/self/autogroup; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Servers and dnsperf run at nice PEERS_NICE (-19), so that other work on the machine
# (builds, tests) gets a small share of their CPUs instead of about half of each. Root only.
# With autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled) nice counts only
# within a session, and each session shares a CPU equally with the others: the
# session's own nice (/proc/self/autogroup) is set as well, and put back on exit.
prio=() AUTOGROUP_NICE=""
if [ "$NICE" != 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        prio=(nice -n "$NICE")
        if [ -w /proc/self/autogroup ]; then
            AUTOGROUP_NICE=$(sed -n 's/.* nice //p' /proc/self/autogroup)
            echo "$NICE" >/proc/self/autogroup
        fi
    else
        echo "not root: PEERS_NICE ignored" >&2
    fi
fi
server_pin=("${prio[@]}") client_pin=("${prio[@]}") pinned=0
if [ "$PIN" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    server_pin+=(taskset -c 1)
    client_pin+=(taskset -c 0)
    pinned=1
fi
if [ "$CALLGRIND" = 1 ]; then
    # valgrind runs the server in its own process (same PID); %p names the file after it.
    server_pin+=(valgrind --tool=callgrind "--callgrind-out-file=$OUT/callgrind.%p")
fi

port_free() { [ -z "$(ss -Hlun "sport = :$1" 2>/dev/null)" ]; }

# Wait (at most 10 s, 60 s under callgrind) until the server answers the SOA over UDP.
# echo's reply is the query with QR set: dig shows it as NOERROR with no answer, which
# passes too.
wait_ready() {
    local s=$1 i tries=50
    if [ "$CALLGRIND" = 1 ]; then tries=300; fi
    for ((i = 0; i < tries; i++)); do
        if dig @127.0.0.1 -p "${PORT[$s]}" +norec +time=1 +tries=1 fed.example.com SOA 2>/dev/null |
            grep -q 'status: NOERROR'; then return 0; fi
        if ! kill -0 "${PID[$s]}" 2>/dev/null; then break; fi
        sleep 0.2
    done
    echo "$s did not answer on 127.0.0.1:${PORT[$s]}; its output:" >&2
    cat "$OUT/$s/stderr" "$OUT/$s/stdout" >&2 2>/dev/null || true
    exit 1
}

fill() { # template, dir, port -> stdout
    sed -e "s|@PORT@|$3|g; s|@DIR@|$2|g; s|@MMDB@|$2/demo.mmdb|g" "$1"
}

start_server() {
    local s=$1 dir=$OUT/$1 port=${PORT[$1]}
    rm -rf "$dir"
    mkdir -p "$dir"
    if ! port_free "$port"; then echo "UDP port $port is in use (set PEERS_PORT)" >&2; exit 1; fi
    case $s in
    fedns | fedns2)
        local workers=1 pin=("${server_pin[@]}") extra=() help
        if [ "$s" = fedns2 ]; then workers=2 pin=("${prio[@]}"); fi
        help=$("$BIN" serve --help)
        if grep -q -- '--admin' <<<"$help"; then extra+=(--admin 127.0.0.1:0); fi
        if grep -q -- '--drain' <<<"$help"; then extra+=(--drain 0s); fi
        if grep -q -- '--udp-workers' <<<"$help"; then extra+=(--udp-workers "$workers"); fi
        # shellcheck disable=SC2206 # word splitting wanted: several arguments
        extra+=(${PEERS_FEDNS_ARGS:-})
        # The tokio runtime (TCP, admin; before --udp-workers existed, UDP too) takes its
        # size from TOKIO_WORKER_THREADS.
        FEDNS_LOG=warn TOKIO_WORKER_THREADS=$workers "${pin[@]}" "$BIN" serve \
            --listen "127.0.0.1:$port" "${extra[@]}" >"$dir/stdout" 2>"$dir/stderr" &
        ;;
    gdnsd)
        # libmaxminddb (which gdnsd uses) rejects a database whose build_epoch is 0 ("The
        # MaxMind DB file contains invalid metadata"), and fedns's writer sets 0 to stay
        # reproducible. A copy with build_epoch 1 (one byte more in the metadata map,
        # which nothing points into) is otherwise the same file.
        perl -0777 -pe 's/build_epoch\x00\x02/build_epoch\x01\x02\x01/' \
            "$ROOT/geoip/demo.mmdb" >"$dir/demo.mmdb"
        mkdir -p "$dir/etc/zones"
        fill "$TEMPLATES/gdnsd.config" "$dir" "$port" >"$dir/etc/config"
        cat "$TEMPLATES/fed.example.com.zone" "$TEMPLATES/geo-gdnsd.zone" \
            >"$dir/etc/zones/fed.example.com"
        "${server_pin[@]}" gdnsd -c "$dir/etc" start >"$dir/stdout" 2>"$dir/stderr" &
        ;;
    knot)
        fill "$TEMPLATES/knot.conf" "$dir" "$port" >"$dir/knot.conf"
        cat "$TEMPLATES/fed.example.com.zone" "$TEMPLATES/geo-static.zone" >"$dir/fed.example.com.zone"
        "${server_pin[@]}" knotd -c "$dir/knot.conf" >"$dir/stdout" 2>"$dir/stderr" &
        ;;
    nsd)
        fill "$TEMPLATES/nsd.conf" "$dir" "$port" >"$dir/nsd.conf"
        cat "$TEMPLATES/fed.example.com.zone" "$TEMPLATES/geo-static.zone" >"$dir/fed.example.com.zone"
        "${server_pin[@]}" nsd -d -c "$dir/nsd.conf" >"$dir/stdout" 2>"$dir/stderr" &
        ;;
    echo)
        # Built here (into the directory just emptied) so the floor is always this source.
        gcc -O2 -Wall -Werror -o "$dir/echo" "$TEMPLATES/echo.c"
        "${server_pin[@]}" "$dir/echo" "$port" >"$dir/stdout" 2>"$dir/stderr" &
        ;;
    esac
    PID[$s]=$!
    wait_ready "$s"
    # Knot sets the affinity of each UDP worker itself, to CPU (worker number % online
    # CPUs): its one worker would run on CPU 0, with dnsperf. Pin every thread of every
    # pinned server again once it is up (the workers set theirs only when they start).
    if [ "$pinned" = 1 ] && [ "$s" != fedns2 ]; then
        local p
        for p in $(descendants "${PID[$s]}"); do taskset -a -p -c 1 "$p" >/dev/null; done
    fi
    echo "$s: pid ${PID[$s]}, threads allowed on CPUs $(affinity "${PID[$s]}")" >&2
}
affinity() { # the distinct Cpus_allowed_list of all threads of a process tree
    local p
    for p in $(descendants "$1"); do
        cat "/proc/$p/task/"*/status 2>/dev/null | sed -n 's/^Cpus_allowed_list:\s*//p'
    done | sort -u | paste -sd' ' -
}

cpu_ticks() { # "utime stime" of a process and its descendants, in clock ticks
    local p stat user=0 sys=0 f
    for p in $(descendants "$1"); do
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        read -r -a f <<<"$stat"
        user=$((user + f[11])) sys=$((sys + f[12]))
    done
    echo "$user $sys"
}
rss_kib() { # VmRSS summed over a process and its descendants
    local p total=0 kib
    for p in $(descendants "$1"); do
        kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}
cpu1_ticks() { # CPU 1 from /proc/stat: "user+nice+system irq+softirq", in clock ticks
    awk '$1 == "cpu1" { print $2 + $3 + $4, $7 + $8 }' /proc/stat
}
child_cpu() { # sets CHILD_CPU to the user+sys seconds of this shell's finished children
    times >"$OUT/times" # (in this shell: a $(...) subshell would have no children yet)
    CHILD_CPU=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }; print t }' "$OUT/times")
}
# awk: a number rounded, with thousands separators (mawk has no printf ' flag).
AWK_TH='function th(x,   s) { s = sprintf("%.0f", x); while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s); return s }'
field() { sed -n "s/^ *$1: *\([0-9.]*\).*/\1/p" "$2" | head -n 1; }

# ---------------------------------------------------------------------------------------
# Query files (dnsperf loops over them) and EDNS flags per mix. Every mix sends EDNS;
# geo_ecs and mix add ECS. The same files as benches/dnsperf.sh (benches/queries.sh).
zone=fed.example.com
geo=app.default.myfed.svc.$zone
Q=$OUT/queries
mkdir -p "$Q"
write_query_files "$Q"
mix_file() {
    case $1 in geo_ecs | geo_no_ecs) echo "$Q/geo" ;; *) echo "$Q/$1" ;; esac
}
ECS_OPT=(-E "8:$(ecs_hex "$ECS_SUBNET")")
mix_edns() { # sets EDNS to the dnsperf flags of a mix
    case $1 in geo_ecs | mix) EDNS=("${ECS_OPT[@]}") ;; *) EDNS=(-e) ;; esac
    if [ "$DO" = 1 ]; then EDNS+=(-D); fi
}

# One dnsperf run. Appends a line to $OUT/runs.tsv:
#   1 kind  2 server  3 mix  4 rep  5 offered q/s  6 q/s  7 avg latency s  8 completed
#   9 lost  10 server ticks  11 dnsperf CPU s  12 RSS KiB  13 CPU 1 busy % (all but idle)
#   14 p50 µs  15 p99 µs  16 rcodes  17 CPU 1 irq+softirq %
#   18 server utime ticks  19 server stime ticks  (10 = 18 + 19; new columns go last)
RESULTS=$OUT/runs.tsv
run_dnsperf() {
    local kind=$1 s=$2 mix=$3 rep=$4 secs=$5 qps=${6:-} out c0 c1 u0 u1 s0 s1 b0 b1 i0 i1 \
        extra=() p50="-" p99="-"
    out=$OUT/raw/$kind.$s.$mix.$rep
    mkdir -p "$OUT/raw"
    mix_edns "$mix"
    if [ -n "$qps" ]; then extra+=(-Q "$qps"); fi
    if [ "$kind" = lat ]; then extra+=(-v); fi # one line per query, with its latency
    child_cpu
    c0=$CHILD_CPU
    read -r u0 s0 < <(cpu_ticks "${PID[$s]}")
    read -r b0 i0 < <(cpu1_ticks)
    "${client_pin[@]}" timeout $((secs + 30)) dnsperf -s 127.0.0.1 -p "${PORT[$s]}" \
        -d "$(mix_file "$mix")" -l "$secs" -c "$CLIENTS" "${EDNS[@]}" \
        "${extra[@]}" >"$out" 2>&1 || {
        echo "dnsperf failed against $s ($mix):" >&2
        tail -n 20 "$out" >&2
        exit 1
    }
    read -r u1 s1 < <(cpu_ticks "${PID[$s]}")
    read -r b1 i1 < <(cpu1_ticks)
    child_cpu
    c1=$CHILD_CPU
    if [ "$kind" = lat ]; then
        # Per-query latencies: "> NOERROR name type 0.000123" lines.
        read -r p50 p99 < <(awk '/^> [A-Z]+ .* [0-9]+\.[0-9]+$/ { print $NF * 1e6 }' "$out" |
            sort -g | awk '{ v[NR] = $1 } END {
                if (NR == 0) { print "- -"; exit }
                i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++
                i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++
                print v[i50], v[i99] }')
        grep -v '^> ' "$out" >"$out.summary" && mv "$out.summary" "$out"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$kind" "$s" "$mix" "$rep" "${qps:-max}" \
        "$(field "Queries per second" "$out")" "$(field "Average Latency (s)" "$out")" \
        "$(field "Queries completed" "$out")" "$(field "Queries lost" "$out")" \
        $((u1 - u0 + s1 - s0)) "$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" \
        "$(rss_kib "${PID[$s]}")" \
        "$(awk -v b=$((b1 - b0 + i1 - i0)) -v hz="$HZ" -v secs="$secs" \
            'BEGIN { printf "%.0f", b / hz / secs * 100 }')" \
        "$p50" "$p99" "$(sed -n 's/^ *Response codes: *//p' "$out")" \
        "$(awk -v i=$((i1 - i0)) -v hz="$HZ" -v secs="$secs" 'BEGIN { printf "%.0f", i / hz / secs * 100 }')" \
        $((u1 - u0)) $((s1 - s0)) >>"$RESULTS"
}

# ---------------------------------------------------------------------------------------
HZ=$(getconf CLK_TCK)
: >"$RESULTS"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
echo "peers.sh: output in $OUT" >&2

for s in $SERVERS; do start_server "$s"; done

# --- Do they give the same answers? ----------------------------------------------------
answer() { # port, dig args -> "RCODE type rdata; ... (scope N)"
    local port=$1
    shift
    dig @127.0.0.1 -p "$port" +norec +time=1 +tries=1 "$@" 2>/dev/null | awk '
        /status:/ { st = $6; sub(",", "", st) }
        /CLIENT-SUBNET:/ { n = split($3, p, "/"); scope = " /" p[n] }
        /^;; ANSWER SECTION/ { a = 1; next }
        /^;; / || /^$/ { a = 0 }
        a { r = $4; for (i = 5; i <= NF; i++) r = r " " $i; rr = rr (rr ? "; " : " ") r }
        END { print st rr scope }'
}
verify() {
    local q name type subnet ref refrec refscope s got rec scope
    echo
    echo "### Answers (dig; ECS scope after /)"
    echo
    printf '| query | %s |\n' "${SERVERS// / | }"
    printf '|---|%s\n' "$(for _ in $SERVERS; do printf -- '---|'; done)"
    while read -r name type subnet; do
        q="$name $type${subnet:+ ECS $subnet}"
        ref=""
        printf '| %s |' "${q/.fed.example.com/}"
        for s in $SERVERS; do
            # echo sends the question back with no answer: nothing to compare.
            if [ "$s" = echo ]; then printf ' - |'; continue; fi
            got=$(answer "${PORT[$s]}" "$name" "$type" ${subnet:+"+subnet=$subnet"})
            rec=${got% /*}
            scope=${got#"$rec"}
            if [ -z "$ref" ]; then # the first server's answer, in full
                ref=$got refrec=$rec refscope=$scope
                printf ' %s |' "$got"
            elif [ "$rec" != "$refrec" ]; then
                printf ' **%s** |' "$got"
            elif [ "$scope" != "$refscope" ]; then
                printf ' same, scope%s |' "${scope:- none}"
            else
                printf ' same |'
            fi
        done
        echo
    done <<EOF
$geo A $ECS_SUBNET
$geo AAAA $ECS_SUBNET
$geo A
$geo A 198.18.0.0/24
$geo A 198.18.3.0/24
$geo A 198.18.4.0/24
$geo A 198.18.5.0/24
$geo A 198.19.7.0/24
$geo AAAA 2001:db8:3::/48
web.default.myfed.svc.$zone A $ECS_SUBNET
checkout.shop.myfed.svc.$zone A $ECS_SUBNET
api.default.myfed.svc.$zone A $ECS_SUBNET
api.default.myfed.svc.$zone A 198.18.3.0/24
app.default.myfed.svc.us-east-1.$zone A $ECS_SUBNET
www.$zone A $ECS_SUBNET
shop.$zone A
status.$zone TXT $ECS_SUBNET
$zone SOA $ECS_SUBNET
nothing.$zone A $ECS_SUBNET
EOF
    echo
    echo "Knot and NSD are static (the Tokyo answer everywhere); differences from fedns on"
    echo "other client locations are expected there."
    if has echo; then echo "echo sends each query back with QR set and answers nothing (-)."; fi
}
verify | tee "$OUT/answers.md"

# --- Callgrind: instructions per query ------------------------------------------------------
# Each server already runs under callgrind. Per mix and server: zero its counters, let it
# idle CG_SECONDS and dump (timers, housekeeping), zero again, send CG_RATE q/s for
# CG_SECONDS with dnsperf and dump; (load - idle) / queries answered is the server's own
# instructions per query. At the default rate each query is a batch of its own, so the
# per-batch work (system call set-up, counters) is charged to one query: the worst case.
cg_summary() { # dump file -> its instruction count
    awk '/^summary:/ { print $2; exit }' "$1"
}
declare -A DUMPS=()
cg_dump() { # server, tag, dump number -> that dump's instruction count
    local file=$OUT/callgrind.${PID[$1]}.$3 i # callgrind numbers a process's dumps 1, 2, ...
    callgrind_control -d "$2" "${PID[$1]}" >/dev/null 2>&1
    for ((i = 0; i < 100; i++)); do
        if [ -s "$file" ] && grep -q '^totals:' "$file"; then break; fi
        sleep 0.1
    done
    cg_summary "$file"
}
if [ "$CALLGRIND" = 1 ]; then
    CG=$OUT/callgrind.tsv
    : >"$CG"
    for mix in $MIXES; do
        mix_edns "$mix"
        for s in $SERVERS; do
            echo "callgrind: $mix, $s" >&2
            # The mix once, uncounted: buffers and caches sized for its replies, as in a
            # server that has served it a while.
            if [ "$WARMUP" -gt 0 ]; then
                "${client_pin[@]}" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$(mix_file "$mix")" \
                    -l "$WARMUP" -Q "$CG_RATE" -c "$CLIENTS" "${EDNS[@]}" >/dev/null 2>&1
            fi
            callgrind_control -z "${PID[$s]}" >/dev/null 2>&1
            sleep "$CG_SECONDS"
            DUMPS[$s]=$((${DUMPS[$s]:-0} + 1))
            idle=$(cg_dump "$s" "idle-$mix" "${DUMPS[$s]}")
            callgrind_control -z "${PID[$s]}" >/dev/null 2>&1
            out=$OUT/raw/callgrind.$s.$mix
            mkdir -p "$OUT/raw"
            "${client_pin[@]}" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$(mix_file "$mix")" \
                -l "$CG_SECONDS" -Q "$CG_RATE" -c "$CLIENTS" "${EDNS[@]}" >"$out" 2>&1
            DUMPS[$s]=$((DUMPS[$s] + 1))
            load=$(cg_dump "$s" "load-$mix" "${DUMPS[$s]}")
            printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$mix" "$idle" "$load" \
                "$(field "Queries completed" "$out")" >>"$CG"
        done
    done
    {
        echo
        echo "### Instructions per query (callgrind, user space), $CG_RATE q/s for $CG_SECONDS s"
        echo
        echo "Started $started; fedns $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')."
        echo
        printf '| mix |'
        for s in $SERVERS; do printf ' %s |' "$s"; done
        if has fedns; then for s in $SERVERS; do [ "$s" = fedns ] || printf ' fedns / %s |' "$s"; done; fi
        echo
        printf '|---|'
        for s in $SERVERS; do printf -- '---|'; done
        if has fedns; then for s in $SERVERS; do [ "$s" = fedns ] || printf -- '---|'; done; fi
        echo
        for mix in $MIXES; do
            printf '| %s |' "$mix"
            awk -F'\t' -v m="$mix" -v list="$SERVERS" -v fed="$(has fedns && echo 1)" "$AWK_TH"'
                $2 == m && $5 > 0 { ipq[$1] = ($4 - $3) / $5 }
                END {
                    n = split(list, s, " ")
                    for (i = 1; i <= n; i++) printf " %s |", (s[i] in ipq) ? th(ipq[s[i]]) : "-"
                    if (fed) for (i = 1; i <= n; i++) if (s[i] != "fedns")
                        printf " %s |", (ipq[s[i]] > 0) ? sprintf("%.2f", ipq["fedns"] / ipq[s[i]]) : "-"
                    print ""
                }' "$CG"
        done
        echo
        echo "Instructions the server's process executed in user space per query answered (its"
        echo "own code and its libraries; not the kernel's), less what it did idle for as long,"
        echo "after ${WARMUP} s of the same mix uncounted."
    } | tee "$OUT/callgrind.md"
    echo "peers.sh: callgrind dumps and callgrind.tsv in $OUT" >&2
    exit 0
fi

# --- Load ---------------------------------------------------------------------------------
echo >&2
echo "warming up: $WARMUP s per server" >&2
for s in $SERVERS; do
    if [ "$WARMUP" -gt 0 ]; then run_dnsperf warmup "$s" mix 0 "$WARMUP"; fi
done
# Full speed: rep-major, so slow drifts in the machine's other load spread over every
# server and mix instead of landing on one.
for ((rep = 1; rep <= REPS; rep++)); do
    for mix in $MIXES; do
        for s in $SERVERS; do
            echo "full speed: rep $rep/$REPS, $mix, $s" >&2
            run_dnsperf max "$s" "$mix" "$rep" "$RUN_SECONDS"
        done
    done
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
median_of() { # kind server mix column -> median over the runs
    awk -F'\t' -v k="$1" -v s="$2" -v m="$3" -v c="$4" '$1 == k && $2 == s && $3 == m { print $c }' "$RESULTS" | median
}

# Fixed rate: rep-major too. p99 there moves several-fold from one run to the next on a
# shared machine (a wake-up that waits for another process shows in the top 1 %), so one
# run says little: the report gives the median and the range over PEERS_LAT_REPS.
if [ "$LAT_SECONDS" -gt 0 ]; then
    for ((rep = 1; rep <= LAT_REPS; rep++)); do
        for mix in $MIXES; do
            for s in $SERVERS; do
                ref=$LOAD_REF
                if [ "$ref" = own ] || ! has "$ref"; then ref=$s; fi
                rate=$(awk -v q="$(median_of max "$ref" "$mix" 6)" -v f="$LOAD" 'BEGIN { printf "%d", q * f }')
                echo "fixed rate: rep $rep/$LAT_REPS, $mix, $s, -Q $rate" >&2
                run_dnsperf lat "$s" "$mix" "$rep" "$LAT_SECONDS" "$rate"
            done
        done
    done
fi

# --- Report -------------------------------------------------------------------------------
# awk: the median of a[1..n]; sets lo and hi to the min and max.
AWK_MED='function med(a, n,   i, j, t, b) {
    for (i = 1; i <= n; i++) b[i] = a[i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
    lo = b[1]; hi = b[n]
    return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2 }'
cpu_q() { # kind server mix -> median server CPU µs per query
    awk -F'\t' -v k="$1" -v s="$2" -v m="$3" -v hz="$HZ" \
        '$1 == k && $2 == s && $3 == m && $8 > 0 { print $10 / hz * 1e6 / $8 }' "$RESULTS" | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
report() {
    echo
    echo "## Results"
    echo
    echo "Started $started; $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1))," \
        "Linux $(uname -r); fedns $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')," \
        "dnsperf $(pkg_version dnsperf), gdnsd $(pkg_version gdnsd), knot $(pkg_version knot)," \
        "nsd $(pkg_version nsd)$(if has echo; then echo ", echo built by gcc $(gcc -dumpfullversion)"; fi). Servers ${server_pin[*]:-unpinned}${prio[*]:+ (fedns2: ${prio[*]})} (threads'" \
        "allowed CPUs at the end: $(for s in $SERVERS; do printf '%s %s, ' "$s" "$(affinity "${PID[$s]}")"; done | sed 's/, $//'))," \
        "dnsperf ${client_pin[*]:-unpinned}, -c $CLIENTS; ECS $ECS_SUBNET;" \
        "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "### Full speed (no -Q), median of $REPS runs of $RUN_SECONDS s (min–max)"
    echo
    echo "| mix | server | q/s | avg latency µs | server CPU µs/query | user µs/query | sys µs/query | server CPU % | CPU 1 busy % | dnsperf CPU % | RSS MiB | lost | response codes |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for mix in $MIXES; do
        for s in $SERVERS; do
            awk -F'\t' -v s="$s" -v m="$mix" -v hz="$HZ" -v secs="$RUN_SECONDS" '
                $1 == "max" && $2 == s && $3 == m {
                    n++; q[n] = $6; l[n] = $7 * 1e6; cpu[n] = ($8 > 0 ? $10 / hz * 1e6 / $8 : 0)
                    ucpu[n] = ($8 > 0 ? $18 / hz * 1e6 / $8 : 0); scpu[n] = ($8 > 0 ? $19 / hz * 1e6 / $8 : 0)
                    busy[n] = $10 / hz / secs * 100; cl[n] = $11 / secs * 100; cpu1[n] = $13
                    rss = $12; lost += $9; rc = $16 }
                END {
                    if (!n) exit
                    mq = med(q, n); qlo = lo; qhi = hi
                    mc = med(cpu, n); clo = lo; chi = hi
                    printf "| %s | %s | %s (%s–%s) | %.0f | %.2f (%.2f–%.2f) | %.2f | %.2f | %.0f | %.0f | %.0f | %.1f | %d | %s |\n",
                        m, s, th(mq), th(qlo), th(qhi), med(l, n), mc, clo, chi, med(ucpu, n), med(scpu, n),
                        med(busy, n), med(cpu1, n), med(cl, n), rss / 1024, lost, rc }
                '"$AWK_TH $AWK_MED" "$RESULTS"
        done
    done
    if [ "$LAT_SECONDS" -gt 0 ]; then
        echo
        echo "### Fixed rate: -Q = $LOAD × the median q/s of ${LOAD_REF} for the mix, median of $LAT_REPS runs of $LAT_SECONDS s (p99: min–max)"
        echo
        echo "| mix | server | offered q/s | q/s | p50 µs | p99 µs | avg µs | server CPU µs/query | lost |"
        echo "|---|---|---|---|---|---|---|---|---|"
        for mix in $MIXES; do
            for s in $SERVERS; do
                awk -F'\t' -v s="$s" -v m="$mix" -v hz="$HZ" '$1 == "lat" && $2 == s && $3 == m {
                    n++; offered = $5; q[n] = $6; l[n] = $7 * 1e6; lost += $9
                    cpu[n] = ($8 > 0 ? $10 / hz * 1e6 / $8 : 0)
                    if ($14 != "-") { np++; p50[np] = $14; p99[np] = $15 } }
                END {
                    if (!n) exit
                    pct = "- | -"
                    if (np) { m50 = med(p50, np); m99 = med(p99, np)
                        pct = sprintf("%.0f | %.0f (%.0f–%.0f)", m50, m99, lo, hi) }
                    printf "| %s | %s | %s | %s | %s | %.0f | %.2f | %d |\n",
                        m, s, th(offered), th(med(q, n)), pct, med(l, n), med(cpu, n), lost }
                '"$AWK_TH $AWK_MED" "$RESULTS"
            done
        done
    fi
    if has fedns; then
        local peers="" s
        for s in $SERVERS; do [ "$s" = fedns ] || peers+=" $s"; done
        if [ -n "$peers" ]; then
            echo
            echo "### fedns / peer (server CPU µs per query: below 1 is fedns cheaper; q/s: above 1 is fedns faster)"
            echo
            printf '| mix |'
            for s in $peers; do printf ' CPU/q vs %s, full speed |' "$s"; done
            if [ "$LAT_SECONDS" -gt 0 ]; then for s in $peers; do printf ' CPU/q vs %s, fixed rate |' "$s"; done; fi
            for s in $peers; do printf ' q/s vs %s |' "$s"; done
            echo
            printf '|---|'
            for s in $peers; do printf -- '---|'; done
            if [ "$LAT_SECONDS" -gt 0 ]; then for s in $peers; do printf -- '---|'; done; fi
            for s in $peers; do printf -- '---|'; done
            echo
            for mix in $MIXES; do
                printf '| %s |' "$mix"
                for s in $peers; do printf ' %s |' "$(ratio "$(cpu_q max fedns "$mix")" "$(cpu_q max "$s" "$mix")")"; done
                if [ "$LAT_SECONDS" -gt 0 ]; then
                    for s in $peers; do printf ' %s |' "$(ratio "$(cpu_q lat fedns "$mix")" "$(cpu_q lat "$s" "$mix")")"; done
                fi
                for s in $peers; do
                    printf ' %s |' "$(ratio "$(median_of max fedns "$mix" 6)" "$(median_of max "$s" "$mix" 6)")"
                done
                echo
            done
        fi
    fi
    echo
    echo "Server CPU = utime+stime of the server's processes (/proc/PID/stat) over the run;"
    echo "user (utime) is the server's own code, sys (stime) the kernel's UDP work done on its"
    echo "behalf (receive, send, waking the client); each is its own median over the runs, so"
    echo "the two add up to about the total."
    echo "CPU 1 busy = the non-idle time of the server's CPU (/proc/stat): well above the server's"
    echo "own share means other processes ran there (noise) or the kernel did packet work not"
    echo "charged to the server. dnsperf CPU = its user+sys time (near 100 %: the load generator"
    echo "is the limit). p50/p99 from dnsperf -v's per-query latencies (1 µs resolution). RSS:"
    echo "VmRSS summed over the server's processes (NSD has three)."
    if has echo; then
        echo "echo is the floor: each query sent back with QR set, 32 at a time, no DNS work; its"
        echo "CPU per query is about what the kernel costs any server for the same traffic."
    fi
}
report | tee "$OUT/results.md"
echo >&2
echo "peers.sh: raw runs in $RESULTS, tables in $OUT/answers.md and $OUT/results.md" >&2
