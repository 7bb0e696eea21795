#!/usr/bin/env bash
# Dig smoke test: starts the embedded demo (`fedns serve`) on a free loopback port and runs
# the dig commands it prints (the same ones README.md shows), checking each answer.
# Usage: tests/smoke/dig.sh [path/to/fedns]   (default: target/debug/fedns)
set -euo pipefail

bin=${1:-target/debug/fedns}
port=${FEDNS_SMOKE_PORT:-15353}
out=$(mktemp)
"$bin" serve --listen "127.0.0.1:$port" --admin 127.0.0.1:0 --drain 0s >"$out" 2>/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT

for _ in $(seq 1 50); do
  grep -q "^listening dns" "$out" && break
  sleep 0.1
done
grep -q "^listening dns 127.0.0.1:$port" "$out" || { echo "fedns did not start"; cat "$out"; exit 1; }
sleep 0.2 # let the demo finish printing its examples

pass=0; fail=0
check() { # check "<dig args>" "<expected +short output>"
  local got
  got=$(dig +short +tries=1 +time=2 $1 | sort | tr '\n' ' ' | sed 's/ $//')
  if [ "$got" = "$2" ]; then
    pass=$((pass + 1)); echo "ok   dig $1 -> $got"
  else
    fail=$((fail + 1)); echo "FAIL dig $1 -> '$got', want '$2'"
  fi
}

# Every example the server printed must appear in README.md, so the two stay the same.
while IFS= read -r line; do
  cmd=${line#  }
  cmd=${cmd%%   #*}
  cmd=${cmd/-p $port/-p 5353}
  if grep -qF -- "$cmd" README.md; then
    pass=$((pass + 1)); echo "ok   README shows: $cmd"
  else
    fail=$((fail + 1)); echo "FAIL README.md lacks: $cmd"
  fi
done < <(grep '^  dig ' "$out")

at="@127.0.0.1 -p $port"
name=app.default.myfed.svc.fed.example.com
check "$at $name A +norecurse" "198.51.100.10"
check "$at $name A +subnet=198.18.0.0/24" "192.0.2.10"
check "$at $name A +subnet=198.18.2.0/24" "203.0.113.10"
check "$at $name A +subnet=198.18.3.0/24" "192.0.2.40"
check "$at $name A +subnet=198.18.4.0/24" "203.0.113.50"
check "$at $name AAAA +subnet=2001:db8:3::/48" "2001:db8:30::10"
check "$at app.default.myfed.svc.us-east-1.fed.example.com A" "192.0.2.10"
check "$at api.default.myfed.svc.fed.example.com A +subnet=198.18.2.0/24" "api-lb-1234.elb.ap-northeast-1.amazonaws.com."
check "$at $name A +tcp +subnet=198.18.2.0/24" "203.0.113.10"
check "$at status.fed.example.com TXT" '"fedns demo federation"'

# Status and flags, from the full output.
full=$(dig +tries=1 +time=2 $at nothing.fed.example.com A)
if grep -q "status: NXDOMAIN" <<<"$full" && grep -q "flags: qr aa" <<<"$full" && grep -q "IN.SOA" <<<"$full"; then
  pass=$((pass + 1)); echo "ok   NXDOMAIN with AA and SOA"
else
  fail=$((fail + 1)); echo "FAIL NXDOMAIN reply:"; echo "$full"
fi
full=$(dig +tries=1 +time=2 $at example.org A)
if grep -q "status: REFUSED" <<<"$full"; then
  pass=$((pass + 1)); echo "ok   outside the zone: REFUSED"
else
  fail=$((fail + 1)); echo "FAIL outside the zone:"; echo "$full"
fi
full=$(dig +tries=1 +time=2 $at $name A +subnet=198.18.2.0/24)
if grep -q "CLIENT-SUBNET: 198.18.2.0/24/24" <<<"$full"; then
  pass=$((pass + 1)); echo "ok   ECS echoed with scope /24"
else
  fail=$((fail + 1)); echo "FAIL ECS echo:"; echo "$full"
fi

echo "smoke: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
