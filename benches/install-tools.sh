#!/usr/bin/env bash
# Installs the tools the load benches use, from Debian's packages:
#
#   benches/install-tools.sh [more packages...]
#
#   dnsperf          dnsperf       (benches/dnsperf.sh, benches/peers.sh, cargo bench --bench faults)
#   dig              bind9-dnsutils (benches/peers.sh)
#   gdnsd            gdnsd         (benches/peers.sh)
#   knotd            knot          (benches/peers.sh)
#   nsd              nsd           (benches/peers.sh)
#   gcc              gcc, libc6-dev (benches/peers.sh, the `echo` server)
#
# `valgrind` (for PEERS_CALLGRIND=1) is not in the list: name it as an argument. One
# `apt-get update`, then one `apt-get install`; sudo when not root. The packages' own
# services (port 53) are not wanted: where policy-rc.d forbids starting them (containers)
# they stay off, elsewhere they start on port 53 and do not disturb the benches, which use
# their own ports. The benches themselves install nothing: they stop and name what is
# missing.
set -euo pipefail

packages=(dnsperf bind9-dnsutils gdnsd knot nsd gcc libc6-dev "$@")
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}"
