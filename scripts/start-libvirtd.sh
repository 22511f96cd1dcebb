#!/usr/bin/env bash
# Starts a real libvirtd (+ virtlogd) for Jitsu's libvirt backend and its tests, without systemd.
# Idempotent: a daemon that already answers is left alone. Prints one line:
#   "started" when this call started libvirtd, "running" when it already answered.
# Usage: scripts/start-libvirtd.sh [--stop]
#   --stop   stop the daemons a previous call of this script started (and only those)
# Needs root and the Debian packages libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients.
set -euo pipefail

uri="qemu:///system"
state=/run/jitsu-libvirt
log() { printf 'start-libvirtd: %s\n' "$*" >&2; }
die() { printf 'start-libvirtd: error: %s\n' "$*" >&2; exit 1; }

answers() { timeout 10 virsh -c "$uri" version >/dev/null 2>&1; }

stop_ours() {
  for d in libvirtd virtlogd; do
    pidfile="$state/$d.pid"
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    # Only a process that is still the daemon we started (same pid, same program).
    if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$d" ]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null || true
      log "stopped $d ($pid)"
    fi
    rm -f "$pidfile"
    # virtlogd leaves its socket behind; a stale one would make the next start skip virtlogd.
    if [ "$d" = virtlogd ]; then rm -f /run/libvirt/virtlogd-sock; fi
  done
}

if [ "${1:-}" = "--stop" ]; then
  stop_ours
  exit 0
fi
[ $# -eq 0 ] || die "unknown argument '$1' (use --stop or nothing)"

[ "$(id -u)" = 0 ] || die "must run as root (libvirtd's system instance)"
for b in libvirtd virtlogd virsh; do
  command -v "$b" >/dev/null 2>&1 || die "missing $b (apt-get install -y libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)"
done

if answers; then
  echo running
  exit 0
fi

# What the Debian packages' maintainer scripts and systemd units would have made.
getent group kvm >/dev/null || groupadd --system kvm
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
if ! id libvirt-qemu >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin -g kvm libvirt-qemu
fi
mkdir -p /var/log/libvirt/qemu /run/libvirt /var/lib/libvirt/qemu /var/cache/libvirt "$state"

# virtlogd: QEMU's stdout/stderr go through it; libvirtd refuses to start domains without it.
# The socket outlives a killed virtlogd, so only a live virtlogd process counts.
if ! pgrep -x virtlogd >/dev/null; then
  rm -f /run/libvirt/virtlogd-sock
  virtlogd --daemon --pid-file "$state/virtlogd.pid"
  for _ in $(seq 1 50); do [ -S /run/libvirt/virtlogd-sock ] && break; sleep 0.1; done
  [ -S /run/libvirt/virtlogd-sock ] || die "virtlogd did not create /run/libvirt/virtlogd-sock"
fi

libvirtd --daemon --pid-file "$state/libvirtd.pid"
for _ in $(seq 1 100); do
  answers && { echo started; exit 0; }
  sleep 0.2
done
die "libvirtd started but $uri does not answer after 20 s (see /var/log/libvirt/)"
