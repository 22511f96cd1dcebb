#!/bin/sh
# Runs inside the emulated armhf board (scripts/build-armhf.sh's image; started by
# test/integration/armhf-board.test.ts or test/armhf/run-board.sh). The checkout is mounted read-only
# at /srv/jitsu-ro (9p) with a tmpfs overlay on top at /srv/jitsu (vitest writes caches and temp
# files there; nothing reaches the host's checkout) and the armhf build/ in place of the host's.
# Results go to /out (9p, the host's temp dir): one vitest JSON report per group, facts.txt and
# a done marker with each group's exit status.
#
# Mode (kernel command line jitsu.mode=): test (default) runs the groups below; bench runs the
# boot-to-first-byte and DNS micro benchmarks (bench/run.js --quick) into /out/bench.
set -u
cd /srv/jitsu || exit 90
mode="$(sed -n 's/.*jitsu\.mode=\([^ ]*\).*/\1/p' /proc/cmdline)"
mode="${mode:-test}"
vitest="node node_modules/vitest/vitest.mjs run --reporter=json"
# Node 20.11 (the npm registry's armv7l build) lacks two APIs vitest's toolchain calls.
export NODE_OPTIONS="--import /srv/jitsu/test/armhf/node20-compat.mjs"

facts() {
  echo "uname $(uname -srm)"
  echo "node $(node --version) $(node -p 'process.arch + " " + process.config.variables.arm_float_abi + " arm_version=" + process.config.variables.arm_version')"
  echo "cpus $(nproc) $(sed -n 's/^model name[[:space:]]*: //p;s/^CPU part[[:space:]]*: /part /p' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "mem_kb $(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)"
  echo "page_size $(getconf PAGESIZE)"
  echo "long_bits $(getconf LONG_BIT)"
  echo "uptime_s $(cut -d' ' -f1 /proc/uptime)"
}
facts > /out/facts.txt 2>&1

# group NAME vitest-args...: one vitest run, its JSON report in /out/NAME.json, its status and
# wall time appended to /out/groups.txt.
group() {
  name="$1"
  shift
  t0="$(cut -d' ' -f1 /proc/uptime)"
  # shellcheck disable=SC2086
  $vitest --outputFile="/out/$name.json" "$@" > "/out/$name.log" 2>&1
  rc=$?
  t1="$(cut -d' ' -f1 /proc/uptime)"
  echo "$name rc=$rc seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" >> /out/groups.txt
}

if [ "$mode" = bench ]; then
  mkdir -p /out/bench
  node dist/bench/run.js --only micro,firstbyte --quick --out /out/bench > /out/bench.log 2>&1
  echo "bench rc=$?" >> /out/groups.txt
else
  # Unit tests: the modules where the platform shows (native loader, packet views and the flow
  # table's 32-bit sequence arithmetic, DNS wire and hot path, ELF linkage, /proc parsers,
  # counters) — the whole unit suite does not fit the CI budget under TCG.
  group unit --project unit \
    src/native src/synjitsu src/dns/wire.test.ts src/dns/codec.test.ts src/dns/source.test.ts src/dns/handler.test.ts \
    src/backends/common src/supervise src/observe/notify.test.ts
  # The native addon against the ARM kernel: AF_PACKET rings (V2 and V3) in worker threads, the
  # batched UDP socket, pidfd exit watches, the launcher (jitsu-activate) and its rlimits.
  group native --project integration \
    test/integration/native-packet-worker.test.ts test/integration/synjitsu-native.test.ts \
    test/integration/dns-udp-native.test.ts test/integration/process-activate.test.ts
  # End to end through the real daemon: dig summons a process service in its namespace and curl
  # gets its page; kill -9 and a restart adopt it.
  group e2e --project integration test/integration/daemon-process.test.ts \
    -t 'boots a service on its first query|adopts services still running'
  # Handshake masking: a client in its own namespace, zero SYN retransmits over a 3 s boot.
  group masking --project integration test/integration/daemon-masking.test.ts -t 'mask=handshake, 3000 ms boot'
fi
facts | sed -n 's/^uptime_s/uptime_end_s/p' >> /out/facts.txt
echo done > /out/done
