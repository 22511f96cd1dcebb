#!/usr/bin/env bash
# Builds the Xen lab: a real Xen hypervisor that boots under QEMU (TCG) with a PV dom0 that runs Jitsu's
# xl backend against it (test/integration/xl-xen.test.ts). From Debian packages only, cached:
#   xen                 the hypervisor (multiboot ELF, unpacked from xen-hypervisor-4.17-amd64)
#   vmlinuz             Debian's linux-image-amd64 kernel: the PV dom0 kernel
#   (dom0 /lab/vmlinux) the same kernel unpacked to ELF for the PV domU: libxc would otherwise unpack the
#                       xz payload in dom0 at every xl create (seconds under TCG)
#   dom0.cpio           dom0 root (uncompressed: unpacking ~190 MB in dom0 under TCG costs more than loading it):
#                       busybox, the Xen toolstack (xl, xenstored, xenconsoled, hotplug scripts),
#                       bash/ip/brctl/nft/dig/curl/node and their libraries, the kernel modules, lab/xen/dom0-init,
#                       and the domU image under /lab. The checkout itself reaches dom0 over 9p at run time,
#                       so a change to dist/ or the tests needs no rebuild.
#   domU.cpio           PV domU root: busybox + guest/init (static IP from jitsu.ip=, HTTP on :80) + xen-netfront
#   manifest.txt        package versions, input hash and sha256 of every output
# Output: ${JITSU_CACHE:-/var/cache/jitsu}/xen-lab. Re-running with unchanged inputs does nothing.
# Xen is never installed on the host: the .debs are downloaded and unpacked into a work dir.
#
# Usage: scripts/build-xen-lab.sh [--force] [--print-dir]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lab_src="$here/lab/xen"
out="${JITSU_CACHE:-/var/cache/jitsu}/xen-lab"
force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --print-dir) echo "$out"; exit 0 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-xen-lab.sh: unknown argument '$arg' (use --force, --print-dir)" >&2; exit 2 ;;
  esac
done

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"
export LC_ALL=C TZ=UTC PATH="$PATH:/usr/sbin:/sbin"

log() { printf 'build-xen-lab: %s\n' "$*" >&2; }
die() { printf 'build-xen-lab: error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "missing '$1' (apt-get install -y $2)"; }
need apt-get apt
need dpkg-deb dpkg
need cpio cpio
need gzip gzip
need xz xz-utils
need ldd libc-bin
need sha256sum coreutils

# Host binaries dom0 runs, with their shared libraries (all from Debian packages in scripts/apt-packages.txt).
# node must be the host's (the native addon in build/Release is built against it).
node_bin="$(command -v node || true)"
[ -n "$node_bin" ] || die "node is not on PATH"
host_bins=(bash ip brctl flock stat date nft ethtool dig curl ss "$node_bin")
host_paths=()
for b in "${host_bins[@]}"; do
  p="$(command -v "$b" || true)"
  [ -n "$p" ] || die "missing '$b' on the host (scripts/setup.sh installs it: see scripts/apt-packages.txt)"
  host_paths+=("$(readlink -f "$p")")
done

# Debian packages unpacked into the lab (the library packages are what xen-utils-4.17 links against).
xen_pkgs=(xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils libxenstore4 libxencall1 libxenevtchn1
  libxenforeignmemory1 libxengnttab1 libxenmisc4.17 libxentoollog1 libxenhypfs1 libxendevicemodel1 libxentoolcore1 libyajl2)
# awk stops reading early; `|| true` keeps pipefail from taking apt's SIGPIPE for a failure.
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}' || true; }
kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}' || true)"
[ -n "$kpkg" ] || die "apt cannot resolve linux-image-amd64 (run apt-get update)"
pkgs=("$kpkg" busybox-static "${xen_pkgs[@]}")
versions=""
for p in "${pkgs[@]}"; do
  v="$(candidate "$p")"
  [ -n "$v" ] && [ "$v" != "(none)" ] || die "apt knows no candidate for $p (run apt-get update)"
  versions+="$p=$v;"
done
kname="${kpkg#linux-image-}"

inputs_hash="$( { cat "$0" "$lab_src/dom0-init" "$lab_src/domU-poweroff" "$here/guest/init" "$here"/guest/cgi-bin/*; sha256sum "${host_paths[@]}"; } | sha256sum | cut -c1-16)"
key="$versions;inputs=$inputs_hash"

mkdir -p "$out"
exec 9>"$out/.lock"
flock -w 1800 9 || die "timed out waiting for $out/.lock"
if [ "$force" = 0 ] && [ -f "$out/manifest.txt" ] && [ "$(sed -n 's/^key //p' "$out/manifest.txt")" = "$key" ] \
   && [ -f "$out/xen" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/dom0.cpio" ] && [ -f "$out/domU.cpio" ]; then
  log "cached ($out)"
  exit 0
fi

started=$SECONDS
work="$(mktemp -d "$out/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs"
log "downloading ${#pkgs[@]} packages"
(cd "$work/debs" && apt-get download -q $(for p in "${pkgs[@]}"; do printf '%s=%s ' "$p" "$(candidate "$p")"; done) >/dev/null 2>"$work/apt.err") \
  || die "apt-get download failed: $(tail -n 3 "$work/apt.err")"
x="$work/xen-root"
for p in "${xen_pkgs[@]}"; do dpkg-deb -x "$work/debs/${p}_"*.deb "$x"; done
dpkg-deb -x "$work/debs/${kpkg}_"*.deb "$work/kernel"
dpkg-deb -x "$work/debs/busybox-static_"*.deb "$work/bb"
zcat "$x/boot/xen-4.17-amd64.gz" > "$work/xen"
cp "$work/kernel/boot/vmlinuz-$kname" "$work/vmlinuz"
# The bzImage's payload (xz in Debian's amd64 kernels), found by its magic and unpacked to the ELF vmlinux.
for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$work/vmlinuz" | cut -d: -f1 | head -n 3); do
  tail -c +"$((off + 1))" "$work/vmlinuz" | xz -dc > "$work/vmlinux" 2>/dev/null || true
  [ "$(head -c 4 "$work/vmlinux" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] && break
done
[ "$(head -c 4 "$work/vmlinux" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || die "no xz-compressed ELF kernel inside vmlinuz-$kname"
kmods="$work/kernel/lib/modules/$kname/kernel"

# Prints the .ko paths (relative to $kmods) of the named modules and their dependencies, in load order,
# from each module's own depends= field (no kmod/depmod needed on the host).
declare -A mod_path mod_seen
while read -r p; do n="$(basename "$p" .ko)"; mod_path["${n//-/_}"]="$p"; done < <(cd "$kmods" && find . -name '*.ko' | sed 's|^\./||')
mod_visit() {
  local n="${1//-/_}" d p
  [ -z "${mod_seen[$n]:-}" ] || return 0
  mod_seen[$n]=1
  p="${mod_path[$n]:-}"
  [ -n "$p" ] || die "kernel module $n not in $kpkg"
  for d in $(tr '\0' '\n' < "$kmods/$p" | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' '); do mod_visit "$d"; done
  echo "$p"
}
# Copies modules (with dependencies) into ROOT/lib/modules/$kname and writes their load order to ROOT/.../load.
install_modules() {
  local root="$1" p; shift
  mod_seen=()
  mkdir -p "$root/lib/modules/$kname"
  for m in "$@"; do mod_visit "$m"; done > "$work/order"
  : > "$root/lib/modules/$kname/load"
  while read -r p; do
    cp "$kmods/$p" "$root/lib/modules/$kname/"
    basename "$p" >> "$root/lib/modules/$kname/load"
  done < "$work/order"
}

busybox_root() {
  local root="$1" applet
  mkdir -p "$root"/{bin,sbin,dev,proc,sys,run,tmp,etc}
  cp "$work/bb/bin/busybox" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  mknod -m 600 "$root/dev/console" c 5 1
}

pack() { # ROOT -> newc cpio on stdout, reproducible
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$1" && find . -mindepth 1 | sort | cpio --quiet -o -H newc -R 0:0 --reproducible)
}

# ---- domU ---------------------------------------------------------------------------------------
u="$work/domU"
busybox_root "$u"
mkdir -p "$u/www/cgi-bin"
install -m 0755 "$here/guest/init" "$u/init"
# The guest-memory probes (a counter in RAM survives xl save/restore).
install -m 0755 "$here"/guest/cgi-bin/* "$u/www/cgi-bin/"
# The kernel runs /sbin/poweroff when Xen asks the guest to shut down (xl shutdown).
install -m 0755 "$lab_src/domU-poweroff" "$u/sbin/poweroff"
install_modules "$u" xen-netfront
pack "$u" > "$work/domU.cpio"

# ---- dom0 ---------------------------------------------------------------------------------------
d="$work/dom0"
busybox_root "$d"
# The Xen toolstack, as Debian installs it (wrappers, hotplug scripts, libraries).
cp -a "$x/." "$d/"
rm -rf "$d/boot" "$d/usr/share/doc" "$d/usr/share/man"
# Host binaries at their own paths, plus every library they load that the Xen packages do not provide.
copy_with_libs() {
  local bin="$1" lib
  mkdir -p "$d$(dirname "$bin")"
  cp -L "$bin" "$d$bin"
  for lib in $(LD_LIBRARY_PATH="$x/usr/lib/x86_64-linux-gnu:$x/usr/lib/xen-4.17/lib" ldd "$bin" 2>/dev/null | awk '/=>/ {print $3} !/=>/ && $1 ~ /^\// {print $1}'); do
    case "$lib" in "$x"/*) continue ;; esac
    [ -e "$d$lib" ] && continue
    mkdir -p "$d$(dirname "$lib")"
    cp -L "$lib" "$d$lib"
  done
}
for p in "${host_paths[@]}"; do copy_with_libs "$p"; done
for f in "$d"/usr/lib/xen-4.17/bin/* "$d"/usr/bin/* "$d"/usr/sbin/*; do
  [ -f "$f" ] && [ ! -L "$f" ] && head -c 4 "$f" | grep -q ELF && copy_with_libs "${f#"$d"}"
done
# Binaries on PATH by their usual names (busybox's applets stay where no real tool is given).
for b in "${host_paths[@]}"; do ln -sf "$b" "$d/bin/$(basename "$b")"; done
ln -sf /usr/bin/node "$d/bin/node" 2>/dev/null || true
# Xen's hotplug scripts run #!/bin/bash; keep /bin/sh busybox.
ln -sf "$(readlink -f "$(command -v bash)")" "$d/bin/bash"
mkdir -p "$d"/etc/xen "$d"/var/lib/xen "$d"/var/log/xen "$d"/var/run "$d"/lab "$d"/out "$d"/src
printf 'root:x:0:0:root:/root:/bin/sh\njitsu-svc:x:990:990:jitsu services:/nonexistent:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$d/etc/passwd"
printf 'root:x:0:\njitsu-svc:x:990:\nnogroup:x:65534:\n' > "$d/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$d/etc/hosts"
printf 'hosts: files\n' > "$d/etc/nsswitch.conf"
: > "$d/etc/resolv.conf"
install -m 0755 "$lab_src/dom0-init" "$d/init"
# The domU image dom0 hands to xl: the same kernel, its own small root.
cp "$work/vmlinux" "$d/lab/vmlinux"
cp "$work/domU.cpio" "$d/lab/domU.cpio"
# Xen device drivers (privcmd, evtchn, gntdev, backends), the bridge, veth and nftables for Synjitsu, 9p for the shares.
install_modules "$d" xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-netback xen-blkback bridge veth tun \
  crc32c_generic nf_tables nft_reject_bridge nft_meta_bridge 9pnet_virtio 9p virtio_pci
pack "$d" > "$work/dom0.cpio"

for f in xen vmlinuz dom0.cpio domU.cpio; do mv "$work/$f" "$out/$f"; done
{
  echo "# Jitsu Xen lab; built by scripts/build-xen-lab.sh in $((SECONDS - started)) s"
  echo "key $key"
  echo "kernel_release $kname"
  for p in "${pkgs[@]}"; do echo "package $p $(candidate "$p")"; done
  echo "node $("$node_bin" --version)"
  for f in xen vmlinuz dom0.cpio domU.cpio; do echo "sha256 $(cd "$out" && sha256sum "$f")"; done
} > "$out/manifest.tmp"
mv "$out/manifest.tmp" "$out/manifest.txt"
log "done in $((SECONDS - started)) s -> $out"
