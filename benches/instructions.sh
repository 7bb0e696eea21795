#!/usr/bin/env bash
# Instructions per call of one function of a criterion bench, counted by callgrind and laid
# against its disassembly: each executed instruction with how many times it ran per call,
# hottest regions visible in address order. For cutting a hot function down by what it
# executes (callgrind's measure, which benches/peers.sh reports per query), not by time.
#
#   benches/instructions.sh BENCH FUNCTION [BENCH-FILTER]
#   benches/instructions.sh dnstap 'dnstap::record_one' dnstap_record/static
#
# Prints the calls and the instructions per call (the function's own, not its callees');
# writes the annotated disassembly to $OUT (default /tmp/instructions.asm). Needs valgrind
# and objdump (binutils).
set -euo pipefail
bench=$1 function=$2 filter=${3:-}
out=${OUT:-/tmp/instructions.asm}
cd "$(dirname "$0")/.."
cargo bench --bench "$bench" --no-run >/dev/null 2>&1
bin=$(realpath "$(ls -t target/release/deps/"$bench"-* | grep -v '\.d$' | head -n 1)")
work=$(mktemp -d)
valgrind --tool=callgrind --dump-instr=yes --compress-pos=no --compress-strings=no \
    --callgrind-out-file="$work/cg.out" --toggle-collect="*$function*" \
    "$bin" --bench --profile-time 1 $filter >/dev/null 2>"$work/valgrind.err"
objdump -d --no-show-raw-insn -C "$bin" >"$work/all.asm"
awk -v f="<$function>:" 'index($0, f) { on = 1 } on && /^$/ { exit } on' "$work/all.asm" >"$work/fn.asm"
python3 - "$work/cg.out" "$work/fn.asm" "$function" "$out" <<'PY'
import collections, re, sys
cg, asm, function, out = sys.argv[1:]
counts, current, in_call = collections.Counter(), None, False
for line in open(cg):
    line = line.rstrip("\n")
    if line.startswith("fn="):
        current = line[3:]
        continue
    if line.startswith(("cfn=", "cfi=", "cfl=", "cob=")):
        continue
    if line.startswith("calls="):
        in_call = True  # the next cost line is the callee's, inclusive: not ours
        continue
    if current and function in current and re.match(r"^0x[0-9a-f]+ ", line):
        address, _, count = line.split()[:3]
        if not in_call:
            counts[int(address, 16)] += int(count)
        in_call = False
lines = open(asm).read().split("\n")
if not lines or not lines[0]:
    sys.exit(f"{function} not found in the bench binary (inlined into its caller?)")
entry = int(lines[0].split()[0], 16)
calls = max(counts.get(entry, 0), counts.get(entry + 1, 0))
if calls == 0:
    sys.exit(f"{function} never ran under that filter")
print(f"{function}: {calls} calls, {sum(counts.values()) / calls:.1f} instructions per call")
with open(out, "w") as f:
    for l in lines[1:]:
        m = re.match(r"\s+([0-9a-f]+):\s+(.*)", l)
        if m and counts.get(int(m.group(1), 16)):
            f.write(f"{counts[int(m.group(1), 16)] / calls:7.2f}  {m.group(1)}  {m.group(2)}\n")
print(f"annotated disassembly: {out}")
PY
rm -rf "$work"
