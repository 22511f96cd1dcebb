#!/usr/bin/env bash
# Builds the emulated Xen-on-ARM lab (armhf, qemu-system-arm -M virt,virtualization=on): Xen boots the
# armhf board's own kernel as dom0 with the board's root in RAM, and Jitsu's xl backend runs in that dom0
# (test/integration/xl-xen-arm.test.ts, lab/xen-arm/). From Debian packages only, cached:
#   xen              the hypervisor (zImage from xen-hypervisor-4.17-armhf), QEMU's -kernel
#   dom0.cpio        dom0's root, run from RAM (uncompressed newc): the armhf board's root (scripts/build-armhf.sh:
#                    node, dig, curl, iproute2, nftables) less what dom0 never uses, the Xen toolstack
#                    (xen-utils-4.17 and its libraries, as Debian installs them), the domU image under /lab
#                    and lab/xen-arm/dom0-init, which hands over to the board's own PID 1 (it mounts the
#                    checkout over 9p and runs jitsu.driver=, i.e. lab/xen-arm/dom0.sh).
#   domU.cpio        the domU's root: busybox + guest/init (static IP from jitsu.ip=, HTTP on :80) + xen-netfront
#   manifest.txt     package versions, input key and sha256 of every output
# The kernel (dom0 and domU) is the board's: ${JITSU_CACHE:-/var/cache/jitsu}/armhf/vmlinuz.
# The armhf packages come from the Packages index the board's debootstrap fetched (bookworm main),
# fetched by URL and checked against its SHA256: the host's dpkg/apt configuration is not touched.
# Output: ${JITSU_CACHE:-/var/cache/jitsu}/xen-arm. Re-running with unchanged inputs does nothing.
#
# Usage: scripts/build-xen-arm.sh [--force] [--print-dir]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lab_src="$here/lab/xen-arm"
out="${JITSU_CACHE:-/var/cache/jitsu}/xen-arm"
force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --print-dir) echo "$out"; exit 0 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-xen-arm.sh: unknown argument '$arg' (use --force, --print-dir)" >&2; exit 2 ;;
  esac
done

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"
export LC_ALL=C TZ=UTC PATH="$PATH:/usr/sbin:/sbin"
mirror="${JITSU_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { printf 'build-xen-arm: %s\n' "$*" >&2; }
die() { printf 'build-xen-arm: error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "missing '$1' (apt-get install -y $2)"; }
need dpkg-deb dpkg
need cpio cpio
need curl curl
need sha256sum coreutils

# The board (its root and kernel) is this lab's base; cheap when cached.
"$here/scripts/build-armhf.sh" >&2 || die "scripts/build-armhf.sh failed"
board="$("$here/scripts/build-armhf.sh" --print-dir)"
for f in vmlinuz root/sbin/jitsu-board-init root/var/lib/apt/lists; do [ -e "$board/$f" ] || die "$board/$f missing (scripts/build-armhf.sh --force)"; done
packages_index="$(ls "$board/root/var/lib/apt/lists/"*_main_binary-armhf_Packages 2>/dev/null | head -n 1)"
[ -n "$packages_index" ] || die "no armhf Packages index in $board/root/var/lib/apt/lists"
pkg_field() { awk -v p="$1" -v f="$2" '$1=="Package:" {cur=$2} cur==p && $1==f":" {sub(/^[^:]*: /, ""); print; exit}' "$packages_index"; }

# The toolstack and the libraries it links that the board's root lacks (python3 only serves pygrub: not needed).
xen_pkgs=(xen-hypervisor-4.17-armhf xen-utils-4.17 xen-utils-common xenstore-utils libxenstore4 libxencall1 libxenevtchn1
  libxenforeignmemory1 libxengnttab1 libxenmisc4.17 libxentoollog1 libxenhypfs1 libxendevicemodel1 libxentoolcore1 libyajl2 libncurses6 libfdt1)
versions=""
for p in "${xen_pkgs[@]}"; do
  v="$(pkg_field "$p" Version)"
  [ -n "$v" ] || die "$p not in $packages_index"
  versions+="$p=$v;"
done
kname="$(ls "$board/root/lib/modules" | head -n 1)"
[ -n "$kname" ] || die "no kernel modules in $board/root/lib/modules"

inputs_hash="$( { cat "$0" "$lab_src/dom0-init" "$here/lab/xen/domU-poweroff" "$here/guest/init" "$here"/guest/cgi-bin/* "$board"/{root,node,build,board-init,vmlinuz}.key; } | sha256sum | cut -c1-16)"
key="$versions;kernel=$kname;inputs=$inputs_hash"

mkdir -p "$out"
exec 9>"$out/.lock"
flock -w 1800 9 || die "timed out waiting for $out/.lock"
if [ "$force" = 0 ] && [ -f "$out/manifest.txt" ] && [ "$(sed -n 's/^key //p' "$out/manifest.txt")" = "$key" ] \
   && [ -f "$out/xen" ] && [ -f "$out/dom0.cpio" ] && [ -f "$out/domU.cpio" ]; then
  log "cached ($out)"
  exit 0
fi

started=$SECONDS
work="$(mktemp -d "$out/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs"
log "downloading ${#xen_pkgs[@]} armhf packages"
for p in "${xen_pkgs[@]}"; do
  file="$(pkg_field "$p" Filename)"
  sum="$(pkg_field "$p" SHA256)"
  curl -fsS --retry 3 -o "$work/debs/$p.deb" "$mirror/$file" || die "download $mirror/$file failed"
  echo "$sum  $work/debs/$p.deb" | sha256sum -c --quiet - >/dev/null 2>&1 || die "$p.deb does not match the SHA256 in $packages_index"
done
x="$work/xen-root"
for p in "${xen_pkgs[@]}"; do dpkg-deb -x "$work/debs/$p.deb" "$x"; done
cp "$x/boot/xen-4.17-armhf" "$work/xen"
rm -rf "$x/boot" "$x/usr/share/doc" "$x/usr/share/man" "$x/usr/lib/python3" "$x/etc/init.d" "$x/usr/lib/systemd" "$x/lib/systemd"
# The board's root is merged-/usr (/lib, /bin, /sbin are symlinks): copying real dirs over them would fail.
for d in lib bin sbin; do
  if [ -d "$x/$d" ] && [ ! -L "$x/$d" ]; then mkdir -p "$x/usr/$d" && cp -a "$x/$d/." "$x/usr/$d/" && rm -rf "${x:?}/$d"; fi
done

kmods="$board/root/lib/modules/$kname/kernel"
pack() { # ROOT -> newc cpio on stdout, reproducible
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$1" && find . -mindepth 1 | sort | cpio --quiet -o -H newc -R 0:0 --reproducible)
}

# ---- domU ---------------------------------------------------------------------------------------
u="$work/domU"
mkdir -p "$u"/{bin,sbin,dev,proc,sys,run,tmp,etc,www/cgi-bin} "$u/lib/modules/$kname"
cp "$board/root/bin/busybox" "$u/bin/busybox"
# busybox --list needs an armhf CPU; the applet names come from the host's busybox-static (same version line).
for applet in $(/bin/busybox --list 2>/dev/null || busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$u/bin/$applet"
done
mknod -m 600 "$u/dev/console" c 5 1
install -m 0755 "$here/guest/init" "$u/init"
install -m 0755 "$here"/guest/cgi-bin/* "$u/www/cgi-bin/"
# The kernel runs /sbin/poweroff when Xen asks the guest to shut down (xl shutdown).
install -m 0755 "$here/lab/xen/domU-poweroff" "$u/sbin/poweroff"
cp "$kmods/drivers/net/xen-netfront.ko" "$u/lib/modules/$kname/"
echo xen-netfront.ko > "$u/lib/modules/$kname/load"
pack "$u" > "$work/domU.cpio"

# ---- dom0 root ----------------------------------------------------------------------------------
# dom0 runs from RAM: under this QEMU, once a domU runs, dom0's virtio-blk requests never complete
# (jbd2 and every writer hang in D state), so its root cannot be the board's disk. The board's root,
# less what dom0 never uses (docs, apt state, vitest's bindings, qemu-arm-static, most kernel modules).
d="$work/dom0"
mkdir -p "$d"
for e in "$board"/root/* ; do
  case "${e#"$board"/root/}" in
    srv|usr|var|proc|sys|dev|run|tmp|boot|lost+found|media|mnt) ;;
    *) cp -a "$e" "$d/" ;;
  esac
done
mkdir -p "$d"/{proc,sys,dev,run,tmp,srv,mnt,usr/lib,var/lib,var/log,var/cache,var/tmp}
mknod -m 600 "$d/dev/console" c 5 1
chmod 1777 "$d/tmp" "$d/var/tmp"
cp -a "$board/root/var/run" "$board/root/var/lock" "$d/var/" 2>/dev/null || true
for e in "$board"/root/usr/*; do case "${e##*/}" in share|lib) ;; *) cp -a "$e" "$d/usr/" ;; esac; done
for e in "$board"/root/usr/lib/*; do [ "${e##*/}" = modules ] || cp -a "$e" "$d/usr/lib/"; done
rm -rf "$d/usr/bin/qemu-arm-static" "$d/usr/lib/arm-linux-gnueabihf/gconv"
# Kernel modules: the whole of net/ (nft and the bridge autoload from it) plus what dom0.sh and the board's
# init load, with their dependencies from modules.dep.
kd="usr/lib/modules/$kname"
mkdir -p "$d/$kd"
cp -a "$board/root/$kd"/modules.* "$d/$kd/"
declare -A want=()
for m in virtio_mmio 9p 9pnet_virtio overlay bridge veth tun xen-netback xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do
  line="$(grep -E "/${m//-/[-_]}\.ko:" "$board/root/$kd/modules.dep" | head -n 1)"
  [ -n "$line" ] || die "kernel module $m not in $kname's modules.dep"
  for f in ${line/:/}; do want[$f]=1; done
done
(cd "$board/root/$kd" && cp -a --parents kernel/net "${!want[@]}" "$d/$kd/")
install -m 0755 "$lab_src/dom0-init" "$d/init"
cp -a "$x/." "$d/"
mkdir -p "$d/lab"
cp "$board/vmlinuz" "$d/lab/vmlinuz"
cp "$work/domU.cpio" "$d/lab/domU.cpio"
# Uncompressed: the kernel unpacks a gzip of ~200 MB far slower under TCG than QEMU loads the bytes.
pack "$d" > "$work/dom0.cpio"

for f in xen dom0.cpio domU.cpio; do mv "$work/$f" "$out/$f"; done
{
  echo "# Jitsu Xen-on-ARM lab; built by scripts/build-xen-arm.sh in $((SECONDS - started)) s"
  echo "key $key"
  echo "kernel_release $kname"
  for p in "${xen_pkgs[@]}"; do echo "package $p $(pkg_field "$p" Version)"; done
  for f in xen dom0.cpio domU.cpio; do echo "sha256 $(cd "$out" && sha256sum "$f")"; done
} > "$out/manifest.tmp"
mv "$out/manifest.tmp" "$out/manifest.txt"
log "done in $((SECONDS - started)) s -> $out"
