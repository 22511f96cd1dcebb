#!/bin/sh
# The daemon end to end inside the armhf board (run by driver.sh; cwd: the checkout). Each check
# writes one line to $1: `RESULT NAME pass|fail DETAIL`, and figures as `FIGURE NAME VALUE UNIT`.
# The host test (test/integration/armhf-board.test.ts) asserts every RESULT line. The daemon-process
# and daemon-masking vitest files check the same on x86-64; their timing bounds are calibrated for a
# native host, so the board checks behaviour only: answers, pages, SYN retransmits, pids, boots.
#   e2e:      dig summons a process service in its own namespace; curl gets its page
#   masking:  mask=handshake, a 3 s boot (busybox httpd after `sleep 3`: a Node server's own start costs
#             seconds of emulated CPU right when the SYN comes, and starved the daemon's handshake past
#             the client's 1 s SYN timeout under TCG); a client in its own namespace on the bridge: 0 SYN retransmits
#   adoption: kill -9 the daemon; a restart on the same state adopts the service (same pid, 1 boot)
#   cleanup:  SIGTERM stops the service and removes the bridge and namespaces
set -u
results="$1"
: > "$results"
# The daemon's log, where the host can follow it (the results share).
log="$(dirname "$results")/daemon.log"
: > "$log"
work=/var/tmp/jitsu-board
state=/var/lib/jitsu-board
bridge=jtarm0
client=jtarmc
port="${JITSU_BOARD_DNS_PORT:-5353}"
metrics="${JITSU_BOARD_METRICS_PORT:-9153}"
rm -rf "$work" "$state" && mkdir -p "$work/demo" && chmod 755 "$work" "$work/demo"
cp dist/src/demo/http.js "$work/demo/http.js" && chmod 644 "$work/demo/http.js"
# The masked service's page (busybox httpd serves it; the dir name keeps "hello-slow" in its command line).
mkdir -p "$work/hello-slow" && echo hello-slow > "$work/hello-slow/index.html" && chmod -R a+rX "$work/hello-slow"
echo '{ "type": "module" }' > "$work/package.json" && chmod 644 "$work/package.json"
node_bin="$(command -v node)"

result() { echo "RESULT $1 $2 $3" >> "$results"; }
figure() { echo "FIGURE $1 $2 $3" >> "$results"; }
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
# wait_log PATTERN SECONDS: the latest daemon's log has a line matching PATTERN (grep -E) within SECONDS
# (by the clock: under TCG each poll costs more than its sleep).
wait_log() {
  deadline=$(($(now_ms) + $2 * 1000))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    tail -n +"$log_from" "$log" 2>/dev/null | grep -Eq "$1" && return 0
    sleep 0.2
  done
  return 1
}
start_daemon() {
  echo "e2e: starting the daemon ($(cut -d' ' -f1 /proc/uptime) s)"
  echo "---- daemon start at $(cut -d' ' -f1 /proc/uptime) s" >> "$log"
  log_from=$(($(wc -l < "$log") + 1))
  # NODE_OPTIONS (the vitest shim) is not the daemon's business.
  env -u NODE_OPTIONS "$node_bin" dist/src/cli/main.js -b 127.0.0.1 -l "$port" -f 0.0.0.0 --bridge "$bridge" \
    --state "$state" --metrics 127.0.0.1:$metrics --log-level debug --boot-timeout 120 \
    "name=web,dns=web.board.test,ip=10.79.0.10,port=80,exec=$node_bin $work/demo/http.js --port 80 --message hello-web" \
    "name=slow,dns=slow.board.test,ip=10.79.1.10,mask=handshake,ready=tcp:80,exec=/bin/busybox sh -c 'sleep 3; exec /bin/busybox httpd -f -p 80 -h $work/hello-slow'" \
    >> "$log" 2>&1 &
  daemon=$!
}
# status_field SERVICE FIELD: a numeric field of SERVICE in /status (one object per service).
status_field() { curl -s -m 10 http://127.0.0.1:$metrics/status | tr -d " \n" | tr "{" "\n" | grep "\"service\": *\"$1\"" | sed -n "s/.*\"$2\": *\([0-9]*\).*/\1/p" | head -n 1; }
cleanup() {
  [ -n "${daemon:-}" ] && kill -9 "$daemon" 2>/dev/null
  pkill -KILL -f "hello-(web|slow)" 2>/dev/null
  ip netns del "$client" 2>/dev/null
  ip link del "${client}h" 2>/dev/null
  for ns in $(ip netns list | awk '/^jitsu-/ { print $1 }'); do ip netns del "$ns"; done
  ip link del "$bridge" 2>/dev/null
}
trap cleanup EXIT

t0="$(now_ms)"
start_daemon
if wait_log 'msg="?jitsu ready' 240; then
  figure daemon_start_ms $(($(now_ms) - t0)) ms
else
  result e2e fail "daemon not ready in 240 s: $(tail -n 5 "$log" | tr '\n' ' ')"
  exit 0
fi

echo "e2e: daemon ready"
# ---- e2e: dig summons, curl gets the page
t0="$(now_ms)"
answer="$(dig +short +time=60 +tries=1 @127.0.0.1 -p "$port" web.board.test A)"
t_dns=$(($(now_ms) - t0))
page="$(curl -sS -m 120 http://10.79.0.10/ 2>&1)"
t_page=$(($(now_ms) - t0))
if [ "$answer" = 10.79.0.10 ] && echo "$page" | grep -q hello-web; then
  result e2e pass "answer $answer; page: $page"
  figure e2e_dns_answer_ms "$t_dns" ms
  figure e2e_query_to_first_byte_ms "$t_page" ms
else
  result e2e fail "answer '$answer'; page '$page'; log: $(tail -n 5 "$log" | tr '\n' ' ')"
fi
# The service lives in its own namespace, not the board's.
if ip netns list | grep -q '^jitsu-web'; then result e2e_netns pass "$(ip netns list | grep '^jitsu-' | tr '\n' ' ')"; else result e2e_netns fail "no jitsu-web* namespace: $(ip netns list | tr '\n' ' ')"; fi

echo "e2e: e2e done"
# ---- masking: a client in its own namespace on the bridge, handshake over a 3 s boot
ip netns add "$client"
ip link add "${client}h" type veth peer name eth0 netns "$client"
ip link set "${client}h" master "$bridge" up
ip -n "$client" link set lo up
ip -n "$client" addr add 10.79.1.50/24 dev eth0
ip -n "$client" link set eth0 up
ip -n "$client" route add default via 10.79.1.1
syn_before="$(ip netns exec "$client" nstat -asz TcpExtTCPSynRetrans | awk '/TcpExtTCPSynRetrans/ { print $2 }')"
t0="$(now_ms)"
answer="$(dig +short +time=60 +tries=1 @127.0.0.1 -p "$port" slow.board.test A)"
t_dns=$(($(now_ms) - t0))
out="$(ip netns exec "$client" curl -sS -m 180 -w '\n%{time_connect} %{time_starttransfer}' http://10.79.1.10/ 2>&1)"
syn_after="$(ip netns exec "$client" nstat -asz TcpExtTCPSynRetrans | awk '/TcpExtTCPSynRetrans/ { print $2 }')"
timing="$(echo "$out" | tail -n 1)"
retrans=$((${syn_after:-0} - ${syn_before:-0}))
if [ "$answer" = 10.79.1.10 ] && echo "$out" | grep -q hello-slow && [ -n "$syn_after" ] && [ "$retrans" -eq 0 ]; then
  result masking pass "answer $answer in $t_dns ms; connect/first byte $timing s; SYN retransmits $retrans"
else
  result masking fail "answer '$answer'; curl '$out'; SYN retransmits ${syn_before:-?} -> ${syn_after:-?}; log: $(grep -E 'level=(warn|error)' "$log" | tail -n 3 | tr '\n' ' ')"
fi
figure masking_dns_answer_ms "$t_dns" ms
figure masking_connect_s "${timing% *}" s
figure masking_first_byte_s "${timing#* }" s
figure masking_syn_retransmits "$retrans" count

echo "e2e: masking done"
# ---- adoption: kill -9, restart on the same state
pid_before="$(status_field web pid)"
boots_before="$(status_field web bootCount)"
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
alive=0
[ -n "$pid_before" ] && kill -0 "$pid_before" 2>/dev/null && alive=1
t0="$(now_ms)"
start_daemon
if wait_log 'msg="?jitsu ready' 240; then
  figure restart_to_ready_ms $(($(now_ms) - t0)) ms
  pid_after="$(status_field web pid)"
  boots_after="$(status_field web bootCount)"
  page="$(curl -sS -m 60 http://10.79.0.10/ 2>&1)"
  if [ "$alive" = 1 ] && [ "$pid_after" = "$pid_before" ] && [ "$boots_after" = 1 ] && echo "$page" | grep -q hello-web; then
    result adoption pass "pid $pid_before kept across kill -9 + restart, boots $boots_before -> $boots_after, page served"
  else
    result adoption fail "pid $pid_before (alive after kill -9: $alive) -> ${pid_after:-none}; boots ${boots_before:-?} -> ${boots_after:-?}; page '$page'"
  fi
else
  result adoption fail "restarted daemon not ready in 240 s: $(tail -n 5 "$log" | tr '\n' ' ')"
fi

# ---- cleanup: a clean exit stops the services and removes what the daemon made
ip netns del "$client"
kill -TERM "$daemon"
i=0
while kill -0 "$daemon" 2>/dev/null && [ "$i" -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
left="$(pgrep -f 'hello-(web|slow)' | tr '\n' ' ')$(ip -o link show "$bridge" 2>/dev/null | cut -d: -f2)$(ip netns list | grep '^jitsu-' | tr '\n' ' ')"
if ! kill -0 "$daemon" 2>/dev/null && [ -z "$left" ]; then result cleanup pass "daemon exited, nothing left"; else result cleanup fail "left: $left"; fi
daemon=
