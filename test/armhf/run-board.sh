#!/bin/sh
# Boots the emulated armhf board (qemu-system-arm -M virt -cpu cortex-a15, TCG, 2 vCPUs, 1.5 GiB)
# from scripts/build-armhf.sh's image, runs test/armhf/driver.sh in it and powers off; results land
# in OUTDIR (shared over 9p). The checkout is shared read-only; the root disk is a throw-away
# snapshot of the cached image.
#
#   test/armhf/run-board.sh OUTDIR [test|vitest|bench]
# The serial console goes to stdout. Exits with QEMU's status once the board powers off.
set -eu
repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:?usage: run-board.sh OUTDIR [test|vitest|bench]}"
mode="${2:-test}"
img="$("$repo/scripts/build-armhf.sh" --print-dir)"
for f in vmlinuz initrd.gz rootfs.ext4; do
  [ -f "$img/$f" ] || { echo "run-board.sh: $img/$f missing: run scripts/build-armhf.sh" >&2; exit 3; }
done
mkdir -p "$out"
exec qemu-system-arm -M virt,highmem=off -cpu cortex-a15 -smp 2 -m 1536 \
  -accel tcg,thread=multi -nographic -no-reboot -monitor none -serial stdio -nic none \
  -kernel "$img/vmlinuz" -initrd "$img/initrd.gz" \
  -append "console=ttyAMA0 root=/dev/vda rw panic=-1 loglevel=4 jitsu.driver=test/armhf/driver.sh jitsu.mode=$mode" \
  -drive if=none,id=root,file="$img/rootfs.ext4",format=raw,snapshot=on -device virtio-blk-device,drive=root \
  -fsdev local,id=src,path="$repo",security_model=none,readonly=on -device virtio-9p-device,fsdev=src,mount_tag=jitsu \
  -fsdev local,id=out,path="$out",security_model=none -device virtio-9p-device,fsdev=out,mount_tag=out
