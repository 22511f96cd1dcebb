#!/bin/bash
# Boots the Xen lab under QEMU (TCG, 2 vCPUs): Xen, then the PV dom0 with the checkout shared read-only
# over 9p at its own path and OUT shared read-write at /out. The serial console (Xen's and dom0's hvc0)
# goes to stdout. QEMU is exec'ed: killing this process's pid kills QEMU.
# Usage: lab/xen/boot.sh OUT [JOB]     (JOB: driver (default) or smoke; see lab/xen/dom0.sh)
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:?usage: boot.sh OUT [JOB]}"
job="${2:-driver}"
lab="${JITSU_CACHE:-/var/cache/jitsu}/xen-lab"
for f in xen vmlinuz dom0.cpio; do
  [ -f "$lab/$f" ] || { echo "boot.sh: $lab/$f missing: run scripts/build-xen-lab.sh" >&2; exit 1; }
done
mkdir -p "$out"
# dom0 gets 1 GiB (node, the daemon, the toolstack, its root in tmpfs); Xen keeps the rest for domUs.
xen_args="console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=1024M,max:1024M dom0_max_vcpus=2 bootscrub=0 noreboot"
dom0_args="console=hvc0 earlyprintk=xen quiet jitsu.src=$src jitsu.run=$job"
exec qemu-system-x86_64 -M pc -accel tcg -cpu qemu64 -smp 2 -m 2048 \
  -display none -monitor none -nodefaults -no-reboot -serial stdio \
  -kernel "$lab/xen" -append "$xen_args" \
  -initrd "$lab/vmlinuz $dom0_args,$lab/dom0.cpio" \
  -virtfs "local,path=$src,mount_tag=jitsusrc,security_model=none,readonly=on" \
  -virtfs "local,path=$out,mount_tag=jitsuout,security_model=none" < /dev/null
