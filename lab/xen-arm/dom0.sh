#!/bin/sh
# Runs in the Xen-on-ARM lab's dom0 as the board's driver (jitsu.driver=lab/xen-arm/dom0.sh; the board's
# PID 1 has mounted the checkout at /srv/jitsu with the armhf build/ over its own, and /out). Starts what
# Debian's xencommons starts, then the job named by jitsu.run=:
#   driver   the xl-on-ARM scenarios (lab/xen-arm/driver.mjs), results in /out/results.jsonl
#   smoke    xl create of the lab domU by hand, curl its page, destroy it
# Its output is /out/driver.log; lines starting "LAB:" are also copied to the console for the host.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
src=/srv/jitsu
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
cp -r /var/log/xen /out/xen-logs 2>/dev/null
say "end uptime=$(up)"
