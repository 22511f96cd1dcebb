#!/bin/sh
# Boots the Xen-on-ARM lab under QEMU (TCG, 2 vCPUs, Cortex-A15 with the virtualization extensions):
# Xen, then dom0 (the armhf board's kernel, its root in RAM from scripts/build-xen-arm.sh's dom0.cpio) with
# the checkout shared read-only over 9p and OUT shared read-write at /out.
# QEMU's guest-loader devices place dom0's kernel and initramfs and write the /chosen nodes Xen reads;
# neither may cover 0x48000000, where QEMU puts its DTB (a module over it is freed twice: Xen BUGs), so the
# kernel goes below it and the ~250 MB initramfs above it.
# The serial console (Xen's and dom0's hvc0) goes to stdout. QEMU is exec'ed: killing this pid kills it.
# Usage: lab/xen-arm/boot.sh OUT [JOB]     (JOB: driver (default) or smoke; see lab/xen-arm/dom0.sh)
set -eu
src="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:?usage: boot.sh OUT [JOB]}"
job="${2:-driver}"
cache="${JITSU_CACHE:-/var/cache/jitsu}"
lab="$cache/xen-arm"
board="$cache/armhf"
for f in "$lab/xen" "$lab/dom0.cpio" "$board/vmlinuz"; do
  [ -f "$f" ] || { echo "boot.sh: $f missing: run scripts/build-xen-arm.sh" >&2; exit 3; }
done
mkdir -p "$out"
# dom0 gets 1 GiB (node and the daemon); Xen keeps the rest for domUs.
xen_args="console=dtuart dtuart=/pl011@9000000 dom0_mem=1024M dom0_max_vcpus=2 loglvl=all guest_loglvl=all bootscrub=0 console_timestamps=boot"
dom0_args="console=hvc0 earlyprintk=xen rdinit=/init panic=-1 loglevel=4 jitsu.driver=lab/xen-arm/dom0.sh jitsu.run=$job"
exec qemu-system-arm -M virt,virtualization=on,highmem=off -cpu cortex-a15 -smp 2 -m 2048 \
  -accel tcg,thread=multi -display none -monitor none -serial stdio -no-reboot -nic none \
  -kernel "$lab/xen" -append "$xen_args" \
  -device guest-loader,addr=0x42000000,kernel="$board/vmlinuz",bootargs="$dom0_args" \
  -device guest-loader,addr=0x49000000,initrd="$lab/dom0.cpio" \
  -fsdev local,id=src,path="$src",security_model=none,readonly=on -device virtio-9p-device,fsdev=src,mount_tag=jitsu \
  -fsdev local,id=out,path="$out",security_model=none -device virtio-9p-device,fsdev=out,mount_tag=out < /dev/null
