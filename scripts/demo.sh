#!/usr/bin/env bash
# make demo: start a 3-server Skiff cluster on loopback (127.0.0.1-3, the
# default ports), run an example job through it, survive the leader being
# killed, save and restore a snapshot, and stop everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/bin/skiff"
DEMO="$(mktemp -d /tmp/skiff-demo.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DEMO"
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run()  { printf '$ %s\n' "$*"; "$@"; }

start_server() {
  local i=$1
  cat > "$DEMO/s$i.hcl" <<HCL
name      = "s$i"
data_dir  = "$DEMO/s$i"
bind_addr = "127.0.0.$i"
server {
  enabled          = true
  bootstrap_expect = 3
  server_join {
    retry_join     = ["127.0.0.1:4648", "127.0.0.2:4648", "127.0.0.3:4648"]
    retry_interval = "250ms"
  }
}
HCL
  "$BIN" agent -config "$DEMO/s$i.hcl" >"$DEMO/s$i.log" 2>&1 &
  pids[$i]=$!
}

wait_leader() {
  for _ in $(seq 1 100); do
    if leader=$(SKIFF_ADDR="$1" "$BIN" operator raft list-peers -json 2>/dev/null) && grep -q '"Leader": *true' <<<"$leader"; then
      return 0
    fi
    sleep 0.1
  done
  echo "no leader after 10s; server logs are in $DEMO" >&2
  tail -n 20 "$DEMO"/s*.log >&2
  return 1
}

step "Starting three servers on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (logs in $DEMO)"
for i in 1 2 3; do start_server "$i"; done
export SKIFF_ADDR=http://127.0.0.1:4646
wait_leader "$SKIFF_ADDR"

step "The cluster"
run "$BIN" server members
run "$BIN" operator raft list-peers

step "Validate and register a job (through raft, on every server)"
run "$BIN" job validate examples/web.hcl
run "$BIN" job run -detach examples/web.hcl
run "$BIN" job status web
printf '$ skiff job inspect web | head -n 12\n'
"$BIN" job inspect web | head -n 12

step "Save a snapshot of the cluster state"
run "$BIN" operator snapshot save "$DEMO/cluster.snap"

step "Kill the leader with SIGKILL; the others elect a new one and keep the job"
leader_addr=$("$BIN" operator raft list-peers -json | tr -d ' \n' | grep -o '"Address":"[^"]*","Leader":true' | cut -d'"' -f4)
for i in 1 2 3; do
  if [[ "$leader_addr" == "127.0.0.$i:4647" ]]; then victim=$i; fi
done
echo "leader is s$victim ($leader_addr); kill -9 ${pids[$victim]}"
kill -9 "${pids[$victim]}"
survivor=$(( victim % 3 + 1 ))
export SKIFF_ADDR=http://127.0.0.$survivor:4646
wait_leader "$SKIFF_ADDR"
run "$BIN" operator raft list-peers
run "$BIN" job status web

step "Restart the killed server; it rejoins with its state"
start_server "$victim"
sleep 1
run "$BIN" server members

step "Stop the job, then restore the snapshot taken while it ran"
run "$BIN" job stop -detach web
run "$BIN" job status web
run "$BIN" operator snapshot restore "$DEMO/cluster.snap"
run "$BIN" job status web

step "Done: stopping the cluster"
