#!/bin/sh
# Runs inside the emulated armhf board (scripts/build-armhf.sh's image; started by
# test/integration/armhf-board.test.ts or test/armhf/run-board.sh). The checkout is mounted read-only
# at /srv/jitsu-ro (9p) with a tmpfs overlay on top at /srv/jitsu (vitest writes caches and temp
# files there; nothing reaches the host's checkout) and the armhf build/ in place of the host's.
# Results go to /out (9p, the host's temp dir): board.json (vitest's JSON report), board.log (its
# progress), facts.txt, groups.txt (exit status and seconds) and a done marker.
#
# Mode (kernel command line jitsu.mode=): test (default) runs e2e.sh and then the tests below in ONE
# vitest run (its start-up alone takes a minute or more under TCG); vitest runs only the latter; bench runs the
# micro benchmarks (DNS parse/encode/handler, Synjitsu PDUs, flow tables: bench/run.js --only micro --quick)
# into /out/bench.
set -u
cd /srv/jitsu || exit 90
mode="$(sed -n 's/.*jitsu\.mode=\([^ ]*\).*/\1/p' /proc/cmdline)"
mode="${mode:-test}"
# Node 20.11 (the npm registry's armv7l build) lacks three APIs vitest's toolchain calls.
export NODE_OPTIONS="--import /srv/jitsu/test/armhf/node20-compat.mjs"

facts() {
  echo "uname $(uname -srm)"
  echo "node $(node --version) $(node -p 'process.arch + " " + process.config.variables.arm_float_abi + " arm_version=" + process.config.variables.arm_version')"
  echo "cpus $(nproc) $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "mem_kb $(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)"
  echo "page_size $(getconf PAGESIZE)"
  echo "long_bits $(getconf LONG_BIT)"
  echo "rmem_max $(cat /proc/sys/net/core/rmem_max)"
  echo "uptime_s $(cut -d' ' -f1 /proc/uptime)"
}
facts > /out/facts.txt 2>&1

# group NAME SECONDS COMMAND...: its output in /out/NAME.log, killed after SECONDS; its status and
# wall time appended to /out/groups.txt.
group() {
  name="$1"
  limit="$2"
  shift 2
  t0="$(cut -d' ' -f1 /proc/uptime)"
  timeout -k 10 "$limit" "$@" > "/out/$name.log" 2>&1
  rc=$?
  t1="$(cut -d' ' -f1 /proc/uptime)"
  echo "$name rc=$rc seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" >> /out/groups.txt
}

if [ "$mode" = bench ]; then
  mkdir -p /out/bench
  # Not firstbyte: its bounds (a 60 s daemon start, a 15 s probe client) are a host's, and the daemon
  # alone takes 2-3 min to start under TCG; e2e.sh's figures are the board's boot-to-first-byte ones.
  group bench 1800 node dist/bench/run.js --only micro --quick --out /out/bench
else
  # End to end through the real daemon (test/armhf/e2e.sh): dig summons a process service in its
  # namespace and curl gets its page; handshake masking over a 3 s boot, a client in its own
  # namespace, zero SYN retransmits; kill -9 and a restart adopt the service; a clean exit.
  # The kernel modules the daemon's first nft and ip calls would autoload, loaded up front as on a
  # host that has run them before: autoloading them under TCG outlasts nft's 10 s bound.
  modprobe -a nf_tables nft_reject_bridge nft_meta_bridge bridge veth 2>/dev/null
  # Room for a burst of queries, as on a tuned DNS host (the daemon logs this fix when rmem_max caps
  # its 4 MiB request): the board's default 176 KiB holds ~500 small datagrams, and the UDP
  # burst test sends 600 before the emulated server wakes.
  sysctl -qw net.core.rmem_max=4194304
  [ "$mode" = vitest ] || group e2e 480 sh test/armhf/e2e.sh /out/e2e.txt
  # Unit tests where the platform shows: the native loader, packet views and the flow table's
  # 32-bit sequence arithmetic, cookies, BPF encoding, ELF linkage (armhf programs are ELF32), /proc
  # parsers; and the native addon against the ARM kernel: jitsu-activate (its rlimits above 4 GiB),
  # the batched UDP socket, an AF_PACKET ring in a worker thread. One vitest run: its start-up alone
  # takes minutes under TCG. Timeouts are raised: TCG runs these 20-50x slower than the host (timing
  # is not what is tested). --no-isolate: one worker runs file after file (a fresh one costs ~1 min).
  # Tests that bound a child's run by their own clock scale it by this (test/helpers/dns-udp-native.ts).
  export JITSU_TEST_TIME_SCALE=3
  group board 480 node node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile.json=/out/board.json \
    --testTimeout=240000 --hookTimeout=300000 --no-isolate \
    src/native/index.test.ts src/synjitsu/pdu src/synjitsu/flowtable src/synjitsu/cookies src/synjitsu/bpf \
    src/backends/common/activation.test.ts src/backends/common/proc.test.ts \
    test/integration/process-activate.test.ts test/integration/dns-udp-native.test.ts test/integration/native-packet-worker.test.ts
fi
facts | sed -n 's/^uptime_s/uptime_end_s/p' >> /out/facts.txt
echo done > /out/done
