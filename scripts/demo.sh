#!/usr/bin/env bash
# make demo, in two parts:
#  1. real containers: install what is missing from Debian (containerd,
#     runc, busybox-static, docker-registry), build a small OCI image from
#     busybox-static, serve it from a registry on loopback, start a dev
#     agent (server + client), run examples/web.hcl (busybox httpd), show
#     it answering, read its logs, stop it.
#  2. the control plane: a 3-server cluster on 127.0.0.1-3 (default
#     ports) that survives its leader being killed, and a snapshot saved
#     and restored.
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


step "Part 1: real containers. Installing what is missing from Debian"
need=()
for pair in containerd:containerd runc:runc busybox:busybox-static docker-registry:docker-registry curl:curl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  run apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "containerd, runc, busybox-static, docker-registry and curl are installed"
fi

step "A registry on 127.0.0.1:5000 with a busybox image built from busybox-static"
mkdir -p "$DEMO/registry"
cat > "$DEMO/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $DEMO/registry
http:
  addr: 127.0.0.1:5000
YML
docker-registry serve "$DEMO/registry.yml" >"$DEMO/registry.log" 2>&1 &
pids[10]=$!
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS http://127.0.0.1:5000/v2/ >/dev/null || { echo "the registry did not start; see $DEMO/registry.log" >&2; exit 1; }
run go run ./scripts/mkimage -busybox "$(command -v busybox)" -out "$DEMO/busybox.tar" -push 127.0.0.1:5000/skiff/busybox:latest

step "A dev agent: server and client in one process, pulling from the local registry over plain HTTP"
cat > "$DEMO/dev.hcl" <<HCL
client {
  containerd {
    insecure_registries = ["127.0.0.1:5000"]
  }
}
HCL
"$BIN" agent -dev -config "$DEMO/dev.hcl" >"$DEMO/dev.log" 2>&1 &
pids[11]=$!
export SKIFF_ADDR=http://127.0.0.1:4646
for _ in $(seq 1 100); do "$BIN" node status 2>/dev/null | grep -q ready && break; sleep 0.1; done
run "$BIN" node status

step "Run the web job: the CLI follows it until its containers run"
run "$BIN" job run examples/web.hcl
run "$BIN" job status web
alloc=$("$BIN" job status web | awk '/^Allocations/ {f=1} f && / running / {print $1; exit}')
run "$BIN" alloc status "$alloc"
addr=$("$BIN" alloc status "$alloc" | awk '$1 == "*http" {print $2; exit}')
run curl -fsS "http://$addr/"
run "$BIN" alloc logs "$alloc"

step "A rolling update: a new greeting replaces the instances one at a time, each healthy for 5 s before the next"
run "$BIN" job run -var greeting=bonjour examples/web.hcl
alloc=$("$BIN" job status web | awk '/^Allocations/ {f=1} f && / run  *running / {print $1; exit}')
addr=$("$BIN" alloc status "$alloc" | awk '$1 == "*http" {print $2; exit}')
run curl -fsS "http://$addr/"
run "$BIN" deployment list

step "Stop the job: containers get SIGTERM, then SIGKILL after kill_timeout"
run "$BIN" job stop web
kill -INT "${pids[11]}"; wait "${pids[11]}" 2>/dev/null || true; unset 'pids[11]'
kill "${pids[10]}"; wait "${pids[10]}" 2>/dev/null || true; unset 'pids[10]'

step "Part 2: the control plane. Starting three servers on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (logs in $DEMO)"
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
