#!/bin/sh
# Runs in the Xen-on-ARM lab's dom0 as the board's driver (jitsu.driver=lab/xen-arm/dom0.sh; the board's
# PID 1 has mounted the checkout at /srv/jitsu with the armhf build/ over its own, and /out). Starts what
# Debian's xencommons starts, then the job named by jitsu.run=:
#   driver   the xl-on-ARM scenarios (lab/xen-arm/driver.mjs), results as LAB-RESULT lines on the console
#   smoke    xl create of the lab domU by hand, curl its page, destroy it
#   io       whether the 9p share still takes writes once a domU runs (the disk does not)
# Its output is /run/lab-out/driver.log (copied to /out at the end); "LAB:" lines also go to the console.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Once a domU runs, dom0's virtio-mmio devices may stop completing requests (seen with the disk; see
# lab/xen-arm/dom0-initrd-init), so nothing here may need the 9p shares after boot: this script, the
# parts of the checkout the daemon loads and all output live in RAM (/run); the host reads the results
# from the console (LAB-RESULT lines), and copies to /out are best effort at the end.
if [ "$0" != /run/lab-dom0.sh ]; then
  cp "$0" /run/lab-dom0.sh && exec sh /run/lab-dom0.sh "$@"
fi
mkdir -p /run/lab-out
exec > /run/lab-out/driver.log 2>&1
src=/run/jitsu
# What `node dist/src/cli/main.js` loads (its two runtime packages, the armhf addon) and the driver; every
# file read over 9p costs tens of ms under TCG.
mkdir -p $src/node_modules/yaml $src/dist $src/build $src/lab
cp -a /srv/jitsu/package.json $src/ && cp -a /srv/jitsu/dist/src $src/dist/ && cp -a /srv/jitsu/build/. $src/build/ \
  && cp -a /srv/jitsu/lab/xen-arm /srv/jitsu/lab/common $src/lab/ && cp -a /srv/jitsu/node_modules/piscina $src/node_modules/ \
  && cp -a /srv/jitsu/node_modules/yaml/package.json /srv/jitsu/node_modules/yaml/dist $src/node_modules/yaml/ \
  || echo "LAB: error: copying the checkout to RAM failed" > /dev/console
job="$(sed -n 's/.*jitsu\.run=\([^ ]*\).*/\1/p' /proc/cmdline)"
job="${job:-driver}"
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "LAB: $*"; echo "LAB: $*" > /dev/console; }
say "dom0 userspace uptime=$(up) kernel=$(uname -r) job=$job"

for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-netback bridge; do modprobe "$m" || say "warning: modprobe $m failed"; done
# Loaded up front as the board's driver does: autoloading them under TCG outlasts nft's 10 s bound.
modprobe -a nf_tables nft_reject_bridge nft_meta_bridge veth 2>/dev/null
mount -t xenfs xenfs /proc/xen || { say "error: cannot mount xenfs (not a Xen dom0?)"; exit 1; }
mkdir -p /run/lock /var/run/xenstored /var/run/xen /var/lib/xen /var/log/xen/console /run/xen /var/lib/xenstored && mkdir -p /var/lock
/usr/lib/xen-4.17/bin/xenstored --pid-file /run/xenstored.pid || { say "error: xenstored failed"; exit 1; }
/usr/lib/xen-4.17/bin/xen-init-dom0 > /var/log/xen/xen-init-dom0.log 2>&1 || { say "error: xen-init-dom0 failed: $(tail -n 3 /var/log/xen/xen-init-dom0.log)"; exit 1; }
/usr/lib/xen-4.17/bin/xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || { say "error: xenconsoled failed"; exit 1; }
say "xen toolstack up uptime=$(up) hypervisor=$(cat /sys/hypervisor/type) version=$(cat /sys/hypervisor/version/major).$(cat /sys/hypervisor/version/minor)"
xl info | sed -n 's/^\(free_memory\|total_memory\|nr_cpus\|xen_version\|xen_caps\)[ :]*/LAB: xl-info \1 /p'

case "$job" in
  io)
    # Whether dom0's 9p share keeps working before and after a domU exists.
    tick() { for i in 1 2 3 4 5 6; do
      echo "$1 $i $(up)" >> /out/ticks
      say "tick $1 $i (9p written)"; sleep 3; done; }
    tick before
    ip link add xenbr0 type bridge && ip addr add 10.88.0.1/24 dev xenbr0 && ip link set xenbr0 up
    printf 'name = "smoke"\nkernel = "/lab/vmlinuz"\nramdisk = "/lab/domU.cpio"\ncmdline = "console=hvc0 jitsu.ip=10.88.0.2/24 jitsu.name=smoke"\nmemory = 128\nvif = [ "bridge=xenbr0" ]\n' > /run/smoke.cfg
    xl create /run/smoke.cfg; say "xl create status=$? uptime=$(up)"
    tick after
    say "curl: $(curl -s -m 5 http://10.88.0.2/)"
    ;;
  smoke)
    ip link add xenbr0 type bridge && ip addr add 10.88.0.1/24 dev xenbr0 && ip link set xenbr0 up
    cat > /tmp/smoke.cfg <<CFG
name = "smoke"
kernel = "/lab/vmlinuz"
ramdisk = "/lab/domU.cpio"
cmdline = "console=hvc0 quiet jitsu.ip=10.88.0.2/24 jitsu.name=smoke"
memory = 128
vif = [ "bridge=xenbr0" ]
CFG
    t0=$(up)
    xl create /tmp/smoke.cfg; say "xl create status=$? started=$t0 done=$(up)"
    xl list
    body=
    for i in $(seq 1 40); do
      body="$(curl -s -m 2 http://10.88.0.2/)" && break
      sleep 1
    done
    say "curl body='$body' at uptime=$(up) (create at $t0)"
    ip -br link | sed 's/^/LAB: link: /' > /dev/console
    tail -n 30 /var/log/xen/console/guest-smoke.log 2>/dev/null | sed 's/^/LAB: guest: /' > /dev/console
    tail -n 20 /var/log/xen/xl-smoke.log 2>/dev/null | sed 's/^/LAB: xl-log: /' > /dev/console
    xl destroy smoke; say "xl destroy status=$?"
    xl list
    ;;
  driver)
    node "$src/lab/xen-arm/driver.mjs" "$src"
    say "driver exited status=$?"
    ;;
  *) say "error: unknown job $job" ;;
esac
say "end uptime=$(up)"
# Best effort, bounded: a 9p write that never completes must not keep dom0 from powering off.
cp -r /var/log/xen /run/lab-out/xen-logs 2>/dev/null
(cp -r /run/lab-out/. /out/ 2>/dev/null; sync) &
copier=$!
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do kill -0 $copier 2>/dev/null || break; sleep 1; done
