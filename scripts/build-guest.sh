#!/usr/bin/env bash
# Builds Jitsu's guest image from Debian packages only, cached and reproducible:
#   vmlinux-stock        ELF kernel unpacked from Debian's cloud kernel (linux-image-cloud-amd64)
#   vmlinux-tiny         (with --tiny) kernel built from Debian's linux-source with guest/kernel/tiny.config
#   initramfs.cpio.gz    busybox-static + guest/init (+ the stock kernel's virtio/ACPI-button modules)
#   manifest.txt         package versions and sha256 of every output
# Output dir: ${JITSU_CACHE:-/var/cache/jitsu}/guest. Re-running with unchanged inputs does nothing.
#
# Usage: scripts/build-guest.sh [--tiny] [--force] [--print-dir]
#   --tiny       also build the tiny kernel (several minutes on 2 cores; cached afterwards)
#   --force      rebuild everything
#   --print-dir  print the output directory and exit
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
guest_src="$here/guest"
out="${JITSU_CACHE:-/var/cache/jitsu}/guest"
tiny=0
force=0
for arg in "$@"; do
  case "$arg" in
    --tiny) tiny=1 ;;
    --force) force=1 ;;
    --print-dir) echo "$out"; exit 0 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-guest.sh: unknown argument '$arg' (use --tiny, --force, --print-dir)" >&2; exit 2 ;;
  esac
done

# Fixed timestamps and ordering make the initramfs byte-identical across builds.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"
export LC_ALL=C TZ=UTC

log() { printf 'build-guest: %s\n' "$*" >&2; }
die() { printf 'build-guest: error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "missing '$1' (apt-get install -y $2)"; }

need apt-get apt
need dpkg-deb dpkg
need cpio cpio
need gzip gzip
need lz4 lz4
need xz xz-utils
need sha256sum coreutils

mkdir -p "$out"
# Several test files may build at once: one builder at a time, the others wait and reuse its output.
exec 9>"$out/.lock"
flock -w 1800 9 || die "timed out waiting for $out/.lock"

work="$(mktemp -d "$out/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Newest version apt knows, or the cached one when apt has no lists (offline rebuild from cache).
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'; }

# Download one .deb into $work/debs (apt-get download writes into the current directory).
fetch_deb() {
  local pkg="$1" ver="$2"
  mkdir -p "$work/debs"
  (cd "$work/debs" && apt-get download -q "$pkg=$ver" >/dev/null 2>"$work/apt.err") \
    || die "apt-get download $pkg=$ver failed: $(tail -n 3 "$work/apt.err")"
  ls "$work/debs/${pkg}_"*.deb
}

# Resolve the cloud kernel's real package (the metapackage only depends on it).
kpkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
kver="$( [ -n "$kpkg" ] && candidate "$kpkg" || true)"
bbver="$(candidate busybox-static)"
if [ -z "$kpkg" ] || [ -z "$kver" ] || [ -z "$bbver" ]; then
  # No apt lists (offline, or never updated): a complete cached image is still good.
  if [ "$force" = 0 ] && [ -f "$out/vmlinux-stock" ] && [ -f "$out/initramfs.cpio.gz" ] && [ -f "$out/manifest.txt" ] \
     && { [ "$tiny" = 0 ] || [ -f "$out/vmlinux-tiny" ]; }; then
    log "apt cannot resolve the kernel/busybox packages; using the cached image in $out"
    exit 0
  fi
  die "apt knows no candidate for linux-image-cloud-amd64 or busybox-static (run apt-get update)"
fi
kname="${kpkg#linux-image-}"

stamp_ok() { [ "$force" = 0 ] && [ -f "$out/$1" ] && [ -f "$out/$1.key" ] && [ "$(cat "$out/$1.key")" = "$2" ]; }
stamp() { printf '%s\n' "$2" > "$out/$1.key.tmp" && mv "$out/$1.key.tmp" "$out/$1.key"; }

# Finds the compressed payload inside a bzImage by its magic and unpacks the first candidate that
# decompresses to an ELF image (the same idea as the kernel's scripts/extract-vmlinux).
extract_vmlinux() {
  local img="$1" dst="$2" magic tool off
  for pair in '\x02\x21\x4c\x18:lz4 -dc' '\x28\xb5\x2f\xfd:zstd -dc' '\xfd\x37\x7a\x58\x5a\x00:xz -dc' \
              '\x1f\x8b\x08:gzip -dc' '\x5d\x00\x00\x00:xz -dc --format=lzma' '\x42\x5a\x68:bzip2 -dc'; do
    magic="${pair%%:*}"
    tool="${pair#*:}"
    command -v "${tool%% *}" >/dev/null 2>&1 || continue
    for off in $(grep -obUaP "$magic" "$img" 2>/dev/null | cut -d: -f1 | head -n 5); do
      # Trailing garbage after the stream makes the tools complain; the ELF check decides.
      tail -c +"$((off + 1))" "$img" | $tool > "$dst" 2>/dev/null || true
      if [ "$(head -c 4 "$dst" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
        log "unpacked $(basename "$img") at offset $off with '${tool%% *}'"
        return 0
      fi
    done
  done
  return 1
}

started=$SECONDS

# ---- stock kernel -------------------------------------------------------------------------------
# Modules the initramfs loads, in dependency order (the cloud kernel builds virtio and ACPI buttons as
# modules; evdev lets busybox acpid see the power button).
# "load" gates the network; "load-late" (power button) is loaded after the network is up.
stock_modules=(
  load:drivers/virtio/virtio_ring.ko
  load:drivers/virtio/virtio.ko
  load:drivers/virtio/virtio_mmio.ko
  load:net/core/failover.ko
  load:drivers/net/net_failover.ko
  load:drivers/net/virtio_net.ko
  load-late:drivers/acpi/button.ko
  load-late:drivers/input/evdev.ko
  agent:drivers/char/virtio_console.ko
)
stock_key="$kpkg=$kver;modules=4"
if ! stamp_ok vmlinux-stock "$stock_key" || [ ! -d "$out/modules/$kname" ]; then
  log "stock kernel: $kpkg $kver"
  deb="$(fetch_deb "$kpkg" "$kver")"
  dpkg-deb -x "$deb" "$work/kernel"
  extract_vmlinux "$work/kernel/boot/vmlinuz-$kname" "$work/vmlinux-stock" || die "no ELF kernel found inside vmlinuz-$kname"
  rm -rf "$out/modules.tmp" && mkdir -p "$out/modules.tmp/$kname"
  : > "$out/modules.tmp/$kname/load"
  : > "$out/modules.tmp/$kname/load-late"
  : > "$out/modules.tmp/$kname/agent"
  for entry in "${stock_modules[@]}"; do
    list="${entry%%:*}"
    m="${entry#*:}"
    src="$work/kernel/lib/modules/$kname/kernel/$m"
    [ -f "$src" ] || die "module $m missing from $kpkg"
    cp "$src" "$out/modules.tmp/$kname/"
    basename "$m" >> "$out/modules.tmp/$kname/$list"
  done
  cp "$work/kernel/boot/config-$kname" "$out/config-stock"
  rm -rf "$out/modules" && mv "$out/modules.tmp" "$out/modules"
  mv "$work/vmlinux-stock" "$out/vmlinux-stock"
  stamp vmlinux-stock "$stock_key"
  rm -rf "$work/kernel" "$work/debs"
else
  log "stock kernel: cached ($kpkg $kver)"
fi

# ---- initramfs ----------------------------------------------------------------------------------
init_hash="$(cat "$guest_src/init" "$guest_src/acpid.conf" "$guest_src/poweroff.sh" "$guest_src/agent.c" "$guest_src"/cgi-bin/* "$0" | sha256sum | cut -c1-16)"
initrd_key="busybox-static=$bbver;$stock_key;init=$init_hash"
if ! stamp_ok initramfs.cpio.gz "$initrd_key"; then
  log "initramfs: busybox-static $bbver"
  deb="$(fetch_deb busybox-static "$bbver")"
  dpkg-deb -x "$deb" "$work/bb"
  root="$work/root"
  mkdir -p "$root"/{bin,dev,proc,sys,www,etc/acpi,lib/modules}
  cp "$work/bb/bin/busybox" "$root/bin/busybox"
  # Symlinks made here, not with `busybox --install` at boot: saves guest boot time.
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  install -m 0755 "$guest_src/init" "$root/init"
  # Probes of guest memory for the snapshot tests (a fresh random value, a counter in RAM).
  mkdir -p "$root/www/cgi-bin"
  install -m 0755 "$guest_src"/cgi-bin/* "$root/www/cgi-bin/"
  # The snapshot agent: static, for the baseline x86-64 CPU (TCG's qemu64 has no AVX).
  need gcc build-essential
  gcc -static -Os -march=x86-64 -Wall -Wextra -o "$root/bin/jitsu-agent" "$guest_src/agent.c" || die "cannot build guest/agent.c (apt-get install -y build-essential)"
  strip "$root/bin/jitsu-agent"
  install -m 0644 "$guest_src/acpid.conf" "$root/etc/acpid.conf"
  install -m 0755 "$guest_src/poweroff.sh" "$root/etc/acpi/poweroff.sh"
  cp -r "$out/modules/." "$root/lib/modules/"
  # /init's stdio is /dev/console, opened before devtmpfs is mounted (the kernel's built-in
  # initramfs usually has it too; root can make it here).
  mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || log "not root: relying on the kernel's /dev/console"
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$root" && find . -mindepth 1 | sort | cpio --quiet -o -H newc -R 0:0 --reproducible > "$work/initramfs.cpio")
  gzip -n -9 < "$work/initramfs.cpio" > "$work/initramfs.cpio.gz"
  mv "$work/initramfs.cpio.gz" "$out/initramfs.cpio.gz"
  stamp initramfs.cpio.gz "$initrd_key"
else
  log "initramfs: cached"
fi

# ---- tiny kernel (optional) ---------------------------------------------------------------------
if [ "$tiny" = 1 ]; then
  srcver="$(candidate linux-source)"
  srcpkg="$(apt-cache depends linux-source 2>/dev/null | awk '/Depends: linux-source-[0-9]/ {print $2; exit}')"
  [ -n "$srcpkg" ] || die "cannot resolve linux-source (run apt-get update)"
  srcver="$(candidate "$srcpkg")"
  cfg_hash="$(sha256sum "$guest_src/kernel/tiny.config" | cut -c1-16)"
  tiny_key="$srcpkg=$srcver;config=$cfg_hash"
  if ! stamp_ok vmlinux-tiny "$tiny_key"; then
    need make build-essential
    need flex flex
    need bison bison
    need bc bc
    log "tiny kernel: $srcpkg $srcver (make -j2; takes minutes)"
    t0=$SECONDS
    deb="$(fetch_deb "$srcpkg" "$srcver")"
    dpkg-deb -x "$deb" "$work/src"
    tarball="$(ls "$work"/src/usr/src/linux-source-*.tar.*)"
    tar -C "$work" -xf "$tarball"
    rm -rf "$work/src" "$work/debs"
    kdir="$(ls -d "$work"/linux-source-*/)"
    cp "$guest_src/kernel/tiny.config" "$kdir/.config"
    # Reproducible build metadata.
    export KBUILD_BUILD_TIMESTAMP="@$SOURCE_DATE_EPOCH" KBUILD_BUILD_USER=jitsu KBUILD_BUILD_HOST=jitsu
    make -s -C "$kdir" olddefconfig > "$work/make.log" 2>&1 || die "olddefconfig failed: $(tail -n 20 "$work/make.log")"
    make -s -C "$kdir" -j2 vmlinux >> "$work/make.log" 2>&1 || die "kernel build failed: $(tail -n 30 "$work/make.log")"
    cp "$kdir/vmlinux" "$work/vmlinux-tiny"
    strip --strip-debug "$work/vmlinux-tiny" 2>/dev/null || true
    mv "$work/vmlinux-tiny" "$out/vmlinux-tiny"
    stamp vmlinux-tiny "$tiny_key"
    echo "$((SECONDS - t0))" > "$out/vmlinux-tiny.build-seconds"
    log "tiny kernel built in $((SECONDS - t0)) s"
  else
    log "tiny kernel: cached"
  fi
fi

# ---- manifest -----------------------------------------------------------------------------------
{
  echo "# Jitsu guest image; built by scripts/build-guest.sh"
  echo "stock_kernel $(cat "$out/vmlinux-stock.key")"
  echo "stock_kernel_release $kname"
  echo "initramfs $(cat "$out/initramfs.cpio.gz.key")"
  [ -f "$out/vmlinux-tiny.key" ] && echo "tiny_kernel $(cat "$out/vmlinux-tiny.key")"
  for f in vmlinux-stock vmlinux-tiny initramfs.cpio.gz; do
    [ -f "$out/$f" ] && echo "sha256 $(cd "$out" && sha256sum "$f")"
  done
} > "$out/manifest.tmp"
mv "$out/manifest.tmp" "$out/manifest.txt"
log "done in $((SECONDS - started)) s -> $out"
