# shellcheck shell=bash
# Shared by benches/dnsperf.sh and benches/peers.sh (sourced, from the repo root): the
# query files of the load mixes and the ECS option dnsperf sends.

# The EDNS option value of ECS (RFC 7871 section 6) for an IPv4 subnet, as hex:
# family 1 (2 bytes), source prefix (1), scope prefix 0 (1), the address truncated to
# ceil(prefix / 8) bytes with the bits past the prefix zeroed. 198.18.2.0/24 -> 0001 18 00 c61202.
ecs_hex() {
    local addr=${1%/*} prefix=${1#*/} a b c d i hex mask
    IFS=. read -r a b c d <<<"$addr"
    local octets=("$a" "$b" "$c" "$d")
    hex=$(printf '0001%02x00' "$prefix")
    for ((i = 0; i < (prefix + 7) / 8; i++)); do
        mask=$((prefix >= 8 * (i + 1) ? 255 : (255 << (8 * (i + 1) - prefix)) & 255))
        hex+=$(printf '%02x' $((octets[i] & mask)))
    done
    echo "$hex"
}

# Writes the query files (one "name type" per line; dnsperf loops over them) into $1:
# geo (the geo mixes), static, nxdomain and mix (ten kinds of answer in turn).
write_query_files() {
    local dir=$1 zone=fed.example.com
    local geo=app.default.myfed.svc.$zone
    printf '%s A\n' "$geo" >"$dir/geo"
    printf 'status.%s TXT\n' "$zone" >"$dir/static"
    printf 'nothing.%s A\n' "$zone" >"$dir/nxdomain"
    cat >"$dir/mix" <<END
$geo A
$geo AAAA
web.default.myfed.svc.$zone A
checkout.shop.myfed.svc.$zone A
api.default.myfed.svc.$zone A
app.default.myfed.svc.us-east-1.$zone A
www.$zone A
status.$zone TXT
$zone SOA
nothing.$zone A
END
}
