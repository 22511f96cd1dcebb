#!/bin/bash
# Runs in the Xen lab's dom0 (started by lab/xen/dom0-init): starts the Xen toolstack's daemons as
# Debian's xencommons does, then runs the job named by jitsu.run:
#   driver   the xl-on-Xen integration scenarios (lab/xen/driver.mjs), results under /out
#   smoke    xl create of the lab domU by hand, curl its page, destroy it
# Usage: dom0.sh SRC JOB
set -u
src="$1"
job="${2:-driver}"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "LAB: $*"; }

mkdir -p /var/tmp /var/run/xenstored /var/run/xen /var/lib/xen /var/log/xen/console /run/xen /var/lock
/usr/lib/xen-4.17/bin/xenstored --pid-file /run/xenstored.pid || { say "error: xenstored failed"; exit 1; }
/usr/lib/xen-4.17/bin/xen-init-dom0 > /var/log/xen/xen-init-dom0.log 2>&1 || { say "error: xen-init-dom0 failed: $(tail -n 3 /var/log/xen/xen-init-dom0.log)"; exit 1; }
/usr/lib/xen-4.17/bin/xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || { say "error: xenconsoled failed"; exit 1; }
say "xen toolstack up uptime=$(up) hypervisor=$(cat /sys/hypervisor/type) version=$(cat /sys/hypervisor/version/major).$(cat /sys/hypervisor/version/minor)"
xl info | sed -n 's/^\(free_memory\|total_memory\|nr_cpus\|xen_version\|xen_caps\)[ :]*/LAB: xl-info \1 /p'

case "$job" in
  smoke)
    ip link add xenbr0 type bridge && ip addr add 10.88.0.1/24 dev xenbr0 && ip link set xenbr0 up
    cat > /tmp/smoke.cfg <<CFG
name = "smoke"
type = "pv"
kernel = "/lab/vmlinux"
ramdisk = "/lab/domU.cpio"
cmdline = "console=hvc0 quiet jitsu.ip=10.88.0.2/24 jitsu.name=smoke"
memory = 128
vif = [ "bridge=xenbr0" ]
CFG
    t0=$(up)
    xl create /tmp/smoke.cfg; say "xl create status=$? took=$(echo "$(up) - $t0" | bc 2>/dev/null || echo ?)"
    xl list
    for i in $(seq 1 120); do
      body="$(curl -s -m 2 http://10.88.0.2/)" && break
      sleep 1
    done
    say "curl body='$body' at uptime=$(up) (create at $t0)"
    cat /var/log/xen/console/guest-smoke.log 2>/dev/null | tail -n 5 | sed 's/^/LAB: guest: /'
    xl shutdown -w smoke; say "xl shutdown status=$?"
    tail -n 3 /var/log/xen/console/guest-smoke.log | sed 's/^/LAB: guest: /'
    xl list
    ;;
  driver)
    # The daemon's state dir on a tmpfs of its own: dom0's root (the unpacked initramfs) has too
    # little room left for an xl save of a 128 MiB domain (hibernate); memory is taken as it is used.
    mkdir -p /var/lib/jitsu && mount -t tmpfs -o size=384m,mode=700 jitsu-state /var/lib/jitsu
    say "free space: $(df -m / /var/lib/jitsu | awk 'NR > 1 { printf "%s %s MiB; ", $6, $4 }')"
    node "$src/lab/xen/driver.mjs" "$src"
    say "driver exited status=$?"
    ;;
  *) say "error: unknown job $job" ;;
esac
cp -r /var/log/xen /out/xen-logs 2>/dev/null
