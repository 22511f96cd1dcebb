#!/usr/bin/env bash
# Sets up a fresh Debian machine for Jitsu, idempotently: Debian packages (scripts/apt-packages.txt),
# npm packages (npm ci, which also builds the native addon), the TypeScript build, and with --test
# the artefacts the test suite boots (guest kernel + initramfs, container rootfs), and the `jitsu`
# command on PATH ($JITSU_BIN_DIR/jitsu, default /usr/local/bin/jitsu, running this checkout's build),
# and the unprivileged system user services run as (jitsu-svc: no login shell, no home).
# Run as root: the daemon creates bridges and network namespaces.
#   --install-command  only (re)install the jitsu command     --uninstall  remove it again
#   --create-user      only create the service user (remove it with: userdel jitsu-svc)
#   --install-service  install the systemd unit (and the command, the user, /etc/jitsu/jitsu.yaml if absent)
#   --uninstall-service  disable and remove the unit (and the example config, if still unedited)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)

want_test_artefacts=0
only=""
for arg in "$@"; do
  case "$arg" in
    --test) want_test_artefacts=1 ;;
    --install-command|--uninstall|--create-user|--install-service|--uninstall-service) only="$arg" ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument $arg (use --test, --install-command, --uninstall, --create-user, --install-service or --uninstall-service)" >&2; exit 2 ;;
  esac
done

# The command is a two-line sh wrapper rather than a symlink to dist/src/cli/main.js: it survives a
# clean rebuild (tsc does not keep the executable bit) and pins the node it was installed with.
# The marker line is how re-runs and --uninstall know the file is ours and never touch anyone else's.
command_path="${JITSU_BIN_DIR:-/usr/local/bin}/jitsu"
marker="# jitsu command installed by scripts/setup.sh"
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
ours() { [ ! -e "$command_path" ] || grep -qxF "$marker" "$command_path" 2>/dev/null; }

install_command() {
  if ! ours; then
    echo "setup.sh: $command_path exists and was not installed by setup.sh: remove it, or set JITSU_BIN_DIR to install elsewhere" >&2
    exit 2
  fi
  local node tmp
  node=$(command -v node) || { echo "setup.sh: node is not on PATH" >&2; exit 2; }
  mkdir -p "$(dirname "$command_path")"
  tmp=$(mktemp "$(dirname "$command_path")/.jitsu.XXXXXX")
  {
    echo '#!/bin/sh'
    echo "$marker"
    echo "# from $repo; remove with: $(quote "$repo/scripts/setup.sh") --uninstall"
    echo "exec $(quote "$node") $(quote "$repo/dist/src/cli/main.js") \"\$@\""
  } >"$tmp"
  chmod 755 "$tmp"
  mv -f "$tmp" "$command_path" # atomic: a concurrent run never sees half a file
  echo "installed $command_path ($("$command_path" --version))"
}

uninstall_command() {
  if ! ours; then
    echo "setup.sh: $command_path was not installed by setup.sh: left alone" >&2
    exit 2
  fi
  rm -f "$command_path"
  echo "removed $command_path"
}

# The user process services and QEMU run as by default (src/backends/common/identity.ts
# DEFAULT_SERVICE_USER). A system user with its own group, no home, no login shell; never modified
# once it exists. Remove it with `userdel jitsu-svc` (its group goes with it).
service_user=jitsu-svc
create_service_user() {
  if getent passwd "$service_user" >/dev/null; then
    echo "user $service_user exists ($(id "$service_user"))"
    return
  fi
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "Jitsu services (unprivileged)" "$service_user"
  echo "created user $service_user ($(id "$service_user"))"
}

# The systemd unit and the configuration it starts with (packaging/). The unit goes to
# $JITSU_UNIT_DIR (default /etc/systemd/system) with ExecStart naming the installed command; the
# example config to $JITSU_CONFIG_DIR/jitsu.yaml (default /etc/jitsu) only when there is none, so a
# re-run never overwrites an edited one. A unit without the marker line is someone else's: left alone.
unit_path="${JITSU_UNIT_DIR:-/etc/systemd/system}/jitsu.service"
config_path="${JITSU_CONFIG_DIR:-/etc/jitsu}/jitsu.yaml"
unit_marker="Installed by scripts/setup.sh --install-service"
unit_ours() { [ ! -e "$unit_path" ] || grep -qF "$unit_marker" "$unit_path" 2>/dev/null; }
systemd_running() { [ -d /run/systemd/system ]; }

install_service() {
  if ! unit_ours; then
    echo "setup.sh: $unit_path exists and was not installed by setup.sh: remove it, or set JITSU_UNIT_DIR" >&2
    exit 2
  fi
  install_command
  create_service_user
  local tmp
  mkdir -p "$(dirname "$unit_path")"
  tmp=$(mktemp "$(dirname "$unit_path")/.jitsu.service.XXXXXX")
  sed -e "s|^ExecStart=/usr/local/bin/jitsu --config /etc/jitsu/jitsu.yaml\$|ExecStart=$command_path --config $config_path|" \
    packaging/systemd/jitsu.service >"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$unit_path"
  echo "installed $unit_path"
  if [ -e "$config_path" ]; then
    echo "kept $config_path (exists)"
  else
    install -D -m 0644 packaging/jitsu.yaml "$config_path"
    echo "installed $config_path (the example: edit it, then jitsu check --config $config_path)"
  fi
  "$command_path" check --config "$config_path" || echo "setup.sh: $config_path does not validate: fix it before starting the service" >&2
  if systemd_running; then
    systemctl daemon-reload
    echo "start it with: systemctl enable --now jitsu"
  else
    echo "systemd is not running on this machine (PID 1 is $(ps -p 1 -o comm=)): the unit is in place for when it is"
  fi
}

uninstall_service() {
  if [ ! -e "$unit_path" ]; then
    echo "no $unit_path"
  elif ! unit_ours; then
    echo "setup.sh: $unit_path was not installed by setup.sh: left alone" >&2
    exit 2
  else
    if systemd_running; then systemctl disable --now jitsu.service || true; fi
    rm -f "$unit_path"
    if systemd_running; then systemctl daemon-reload; fi
    echo "removed $unit_path"
  fi
  if [ -e "$config_path" ] && cmp -s packaging/jitsu.yaml "$config_path"; then
    rm -f "$config_path"
    rmdir "$(dirname "$config_path")" 2>/dev/null || true
    echo "removed $config_path (the unedited example)"
  elif [ -e "$config_path" ]; then
    echo "kept $config_path (edited: remove it yourself)"
  fi
}

case "$only" in
  --install-command) install_command; exit 0 ;;
  --uninstall) uninstall_command; exit 0 ;;
  --create-user) create_service_user; exit 0 ;;
  --install-service) install_service; exit 0 ;;
  --uninstall-service) uninstall_service; exit 0 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages; the daemon needs CAP_NET_ADMIN)" >&2
  exit 2
fi

step() { printf '\n== %s\n' "$*"; }

step "Debian packages"
mapfile -t packages < <(grep -v '^\s*#' scripts/apt-packages.txt | sed 's/\s*#.*//' | grep -v '^\s*$' | sort -u)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  # DNS servers among them (unbound, nsd, knot) would otherwise be started by their maintainer
  # scripts (invoke-rc.d / deb-systemd-invoke) and stay on port 53: the benchmarks run their own
  # copies on loopback ports, and jitsu itself wants 53. A policy-rc.d that denies every start
  # (exit 101) is honoured by both; one already present (containers ship one) is left alone.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/setup.sh: no service starts during its apt-get install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap '[ "$own_policy" -eq 1 ] && rm -f "$policy"' EXIT
  fi
  # With recommends: that is how every package here was installed and tested.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  if [ "$own_policy" -eq 1 ]; then
    rm -f "$policy"
    own_policy=0
  fi
else
  echo "all ${#packages[@]} present"
fi

step "npm packages and native addon"
npm ci --no-audit --no-fund --loglevel=error

step "TypeScript build"
npm run --silent build:ts

if [ "$want_test_artefacts" -eq 1 ]; then
  # Every scripts/build-*.sh builds one cached test artefact (guest image, container rootfs, labs);
  # each is idempotent and does nothing when its inputs are unchanged.
  for script in scripts/build-*.sh; do
    if [ -x "$script" ]; then
      step "$script"
      "$script"
    fi
  done
fi

step "jitsu command"
install_command

step "service user"
create_service_user

step "ready"
