#!/bin/sh
# Build a tiny root filesystem for the container backend's tests, demo and bench, from Debian
# packages already installed on this machine (no image registry):
#   busybox  (default) busybox-static + a static page in /www: `httpd -f -p 80 -h /www` serves it (~2 MB)
#   node     busybox plus the host's node binary and its shared libraries, and /srv/server.js: an HTTP
#            server that serves systemd-activated sockets (LISTEN_FDS, fd 3..) or binds $PORT (~100 MB)
# Usage: scripts/build-rootfs.sh [busybox|node]   -> prints the rootfs directory
# Cached under ${JITSU_CACHE:-/var/cache/jitsu}/rootfs/<flavor>; rebuilt when its inputs change.
set -eu

flavor=${1:-busybox}
case "$flavor" in busybox|node) ;; *) echo "build-rootfs: unknown flavor '$flavor' (busybox|node)" >&2; exit 2 ;; esac

cache=${JITSU_CACHE:-/var/cache/jitsu}/rootfs
out=$cache/$flavor

busybox=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/bin/busybox$' || true)
[ -n "$busybox" ] && [ -x "$busybox" ] || { echo "build-rootfs: busybox-static is not installed: apt-get install -y busybox-static" >&2; exit 1; }
stamp="busybox $(dpkg-query -W -f '${Version}' busybox-static) script 3"
if [ "$flavor" = node ]; then
  node=$(command -v node) || { echo "build-rootfs: node is not on PATH" >&2; exit 1; }
  node=$(readlink -f "$node")
  stamp="$stamp node $("$node" --version) $(stat -c %Y "$node")"
fi

if [ -f "$out/.jitsu-rootfs" ] && [ "$(cat "$out/.jitsu-rootfs")" = "$stamp" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.build-$flavor.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

mkdir -p "$tmp/bin" "$tmp/proc" "$tmp/dev" "$tmp/sys" "$tmp/tmp" "$tmp/etc" "$tmp/www" "$tmp/srv"
cp "$busybox" "$tmp/bin/busybox"
for applet in sh ash httpd sleep cat echo ls ps kill true false env id wget nc; do
  ln -s busybox "$tmp/bin/$applet"
done
echo "root:x:0:0:root:/:/bin/sh" > "$tmp/etc/passwd"
echo "root:x:0:" > "$tmp/etc/group"
echo "hello from a jitsu container" > "$tmp/www/index.html"

if [ "$flavor" = node ]; then
  mkdir -p "$tmp/usr/bin"
  cp "$node" "$tmp/usr/bin/node"
  # The dynamic loader and every library node links against, at the same paths as on the host.
  for lib in $(ldd "$node" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }'); do
    mkdir -p "$tmp$(dirname "$lib")"
    cp -L "$lib" "$tmp$lib"
  done
  cat > "$tmp/srv/server.js" <<'JS'
// Tiny HTTP server: serves systemd-activated sockets (LISTEN_FDS, fd 3..) or binds $PORT (default 80).
// $DELAY_MS simulates a slow start (before any accept); $MESSAGE is the reply body.
const http = require('node:http');
const delay = Number(process.env.DELAY_MS || 0);
const message = (process.env.MESSAGE || 'hello from a jitsu container') + '\n';
const fds = Number(process.env.LISTEN_FDS || 0);
setTimeout(() => {
  const handler = (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(message) });
    res.end(message);
  };
  if (fds > 0) for (let i = 0; i < fds; i++) http.createServer(handler).listen({ fd: 3 + i });
  else http.createServer(handler).listen(Number(process.env.PORT || 80), '0.0.0.0');
}, delay);
process.on('SIGTERM', () => process.exit(0));
JS
fi

echo "$stamp" > "$tmp/.jitsu-rootfs"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out"
