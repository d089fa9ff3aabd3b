#!/usr/bin/env bash
# Run the official MCP conformance suite (server side, --suite all) against mcpq.
#
#   run 1: private nats-server + edge + 1 worker  (--catalog example,conformance)
#   run 2: fresh nats-server + edge + 2 workers   (both --catalog example,conformance: one pool, so
#          JetStream spreads the calls of one session over both workers)
#
# Needs a build (services/cli/dist/main.js) and nats-server; `make conformance` does both.
# The conformance CLI needs Node >= 22; scripts/node22.sh provides one.
#
# Env:
#   CONFORMANCE_PORT               edge port (default 8080, or a free port if 8080 is taken)
#   CONFORMANCE_EXPECTED_FAILURES  optional YAML baseline passed as --expected-failures
#   CONFORMANCE_READY_TIMEOUT      seconds to wait for /readyz (default 60)
#   MCPQ_CLI                       CLI entry to run (default services/cli/dist/main.js)
#   CONFORMANCE_PROBE_TOOL         tool that must appear in tools/list before a run
#                                  (default test_simple_text; empty disables the probe)
#   CONFORMANCE_EXPECTED_SCENARIOS scenarios that must pass per run (default 32 = --suite all)
# Output: .conformance/out/<run>/ (checks.json per scenario), .conformance/logs/*.log
set -euo pipefail

CONFORMANCE_VERSION="0.1.16"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/local/sbin:/usr/sbin"

say() { printf 'conformance: %s\n' "$*"; }
die() { printf 'conformance: ERROR: %s\n' "$*" >&2; exit 1; }

CLI="${MCPQ_CLI:-$ROOT/services/cli/dist/main.js}"
CONF_PREFIX="$ROOT/.mcpq/conformance"
CONF_PKG="$CONF_PREFIX/node_modules/@modelcontextprotocol/conformance"
CONF_JS="$CONF_PKG/dist/index.js"
OUT_ROOT="$ROOT/.conformance/out"
LOG_DIR="$ROOT/.conformance/logs"
READY_TIMEOUT="${CONFORMANCE_READY_TIMEOUT:-60}"
PROBE_TOOL="${CONFORMANCE_PROBE_TOOL-test_simple_text}"
# --suite all of 0.1.16: 30 active scenarios + 2 pending (json-schema-2020-12, server-sse-polling).
EXPECTED_SCENARIOS="${CONFORMANCE_EXPECTED_SCENARIOS:-32}"

[ -f "$CLI" ] || die "$CLI not found; build first (make build / pnpm build)."
NATS_BIN="$(command -v nats-server || true)"
[ -n "$NATS_BIN" ] || die "nats-server not found; run scripts/ensure-tools.sh."
command -v node >/dev/null 2>&1 || die "node not found."

# ---------------------------------------------------------------- Node 22 + conformance CLI
NODE22="$("$ROOT/scripts/node22.sh")" || die "could not obtain a Node >= 22 binary (scripts/node22.sh)."
installed_version() {
  [ -f "$CONF_PKG/package.json" ] && node -p "require('$CONF_PKG/package.json').version" 2>/dev/null
}
if [ "$(installed_version || true)" != "$CONFORMANCE_VERSION" ] || [ ! -f "$CONF_JS" ]; then
  say "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION into .mcpq/conformance"
  mkdir -p "$CONF_PREFIX"
  npm i --prefix "$CONF_PREFIX" --no-audit --no-fund --loglevel=error \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" >/dev/null
fi
say "node22 $("$NODE22" -v) at $NODE22; conformance $(installed_version)"

# ---------------------------------------------------------------- helpers (system node)
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}
port_is_free() { # exit 0 when 127.0.0.1:$1 can be bound
  node -e 'const s=require("net").createServer();s.once("error",()=>process.exit(1));s.listen(+process.argv[1],"127.0.0.1",()=>s.close(()=>process.exit(0)));' "$1"
}
tcp_open() { # exit 0 when something accepts on 127.0.0.1:$1
  node -e 'const c=require("net").connect(+process.argv[1],"127.0.0.1");c.once("connect",()=>{c.destroy();process.exit(0)});c.once("error",()=>process.exit(1));' "$1"
}
http_200() { # exit 0 when GET $1 answers 200
  node -e 'fetch(process.argv[1],{signal:AbortSignal.timeout(2000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1));' "$1"
}
# Exit 0 when an MCP initialize + tools/list over streamable HTTP lists tool $2 (JSON or SSE body).
mcp_lists_tool() {
  node - "$1" "$2" <<'EOF'
const [url, tool] = process.argv.slice(2);
const base = { "content-type": "application/json", accept: "application/json, text/event-stream" };
const post = async (body, extra = {}) => {
  const r = await fetch(url, { method: "POST", headers: { ...base, ...extra }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  return { r, text: await r.text() };
};
(async () => {
  const init = await post({ jsonrpc: "2.0", id: 1, method: "initialize", params: {
    protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "conformance-probe", version: "0" } } });
  if (!init.r.ok) process.exit(1);
  const h = { "mcp-protocol-version": "2025-06-18" };
  const sid = init.r.headers.get("mcp-session-id");
  if (sid) h["mcp-session-id"] = sid;
  await post({ jsonrpc: "2.0", method: "notifications/initialized" }, h);
  const list = await post({ jsonrpc: "2.0", id: 2, method: "tools/list" }, h);
  if (sid) await fetch(url, { method: "DELETE", headers: h }).catch(() => {});
  process.exit(list.r.ok && list.text.includes(`"${tool}"`) ? 0 : 1);
})().catch(() => process.exit(1));
EOF
}

# ---------------------------------------------------------------- process management
CHILD_PIDS=()
STORE_DIRS=()
CONF_PID=""
start_child() { # start_child NAME CMD... ; logs to $LOG_DIR/NAME.log, own process group when possible
  local name="$1"; shift
  if command -v setsid >/dev/null 2>&1; then
    setsid "$@" >"$LOG_DIR/$name.log" 2>&1 &
  else
    "$@" >"$LOG_DIR/$name.log" 2>&1 &
  fi
  CHILD_PIDS+=("$!")
  eval "PID_${name//-/_}=$!"
}
stop_children() {
  local pid i
  [ "${#CHILD_PIDS[@]}" -eq 0 ] && return 0
  # workers first, nats last (reverse start order)
  for ((i = ${#CHILD_PIDS[@]} - 1; i >= 0; i--)); do
    pid="${CHILD_PIDS[$i]}"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${CHILD_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${CHILD_PIDS[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  CHILD_PIDS=()
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$CONF_PID" ]; then kill -TERM "$CONF_PID" 2>/dev/null || true; wait "$CONF_PID" 2>/dev/null || true; fi
  stop_children
  local d
  for d in "${STORE_DIRS[@]}"; do rm -rf "$d"; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

check_alive() { # fail fast with the log tail of a dead child
  local name
  for name in "$@"; do
    local var="PID_${name//-/_}"
    if ! kill -0 "${!var}" 2>/dev/null; then
      echo "conformance: $name exited early; last log lines:" >&2
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      exit 1
    fi
  done
}

# ---------------------------------------------------------------- ports
if [ -n "${CONFORMANCE_PORT:-}" ]; then
  EDGE_PORT="$CONFORMANCE_PORT"
  port_is_free "$EDGE_PORT" || die "CONFORMANCE_PORT=$EDGE_PORT is already in use."
elif port_is_free 8080; then
  EDGE_PORT=8080
else
  EDGE_PORT="$(free_port)"
  say "port 8080 busy; using edge port $EDGE_PORT (set CONFORMANCE_PORT to choose)"
fi
MCP_URL="http://127.0.0.1:$EDGE_PORT/mcp"

rm -rf "$OUT_ROOT" "$LOG_DIR"
mkdir -p "$OUT_ROOT" "$LOG_DIR"

# ---------------------------------------------------------------- one run
# start_stack RUN WORKER_CATALOG...  -> nats + edge + one worker per catalog argument
start_stack() {
  local run="$1"; shift
  local nats_port store
  nats_port="$(free_port)"
  store="$(mktemp -d "${TMPDIR:-/tmp}/mcpq-conformance-js.XXXXXX")"
  STORE_DIRS+=("$store")
  export MCPQ_NATS_URL="nats://127.0.0.1:$nats_port"

  start_child "$run-nats" "$NATS_BIN" -js -a 127.0.0.1 -p "$nats_port" -sd "$store"
  local deadline=$((SECONDS + 20))
  until tcp_open "$nats_port"; do
    check_alive "$run-nats"
    [ "$SECONDS" -lt "$deadline" ] || die "nats-server did not listen on $nats_port within 20s."
    sleep 0.2
  done

  # The suite speaks Streamable HTTP only; the edge's socket transports get random ports so a
  # dev stack on the default 8090/50051 does not collide.
  start_child "$run-edge" env MCPQ_TCP_PORT="${MCPQ_TCP_PORT:-0}" MCPQ_GRPC_PORT="${MCPQ_GRPC_PORT:-0}" \
    node "$CLI" edge --port "$EDGE_PORT"
  local i=0 names=("$run-nats" "$run-edge") catalog
  for catalog in "$@"; do
    i=$((i + 1))
    start_child "$run-worker$i" node "$CLI" worker --catalog "$catalog"
    names+=("$run-worker$i")
  done

  deadline=$((SECONDS + READY_TIMEOUT))
  until http_200 "http://127.0.0.1:$EDGE_PORT/readyz"; do
    check_alive "${names[@]}"
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$LOG_DIR/$run-edge.log" >&2 || true
      die "edge /readyz not 200 within ${READY_TIMEOUT}s."
    fi
    sleep 0.25
  done
  if [ -n "$PROBE_TOOL" ]; then
    until mcp_lists_tool "$MCP_URL" "$PROBE_TOOL"; do
      check_alive "${names[@]}"
      if [ "$SECONDS" -ge "$deadline" ]; then
        say "warning: tools/list never showed '$PROBE_TOOL'; running anyway"
        break
      fi
      sleep 0.5
    done
  fi
  sleep 0.5 # let every worker finish joining
  check_alive "${names[@]}"
  say "[$run] ready: nats :$nats_port, edge :$EDGE_PORT, $# worker(s): $*"
}

TOTAL_PASSED=0
TOTAL_FAILED=0
FAILED_RUNS=()
# run_suite RUN  -> runs the conformance CLI, prints per-scenario lines + failed checks
run_suite() {
  local run="$1" out="$OUT_ROOT/$1" log="$LOG_DIR/$1-conformance.log" rc=0
  local args=(server --url "$MCP_URL" --suite all -o "$out")
  if [ -n "${CONFORMANCE_EXPECTED_FAILURES:-}" ]; then
    args+=(--expected-failures "$CONFORMANCE_EXPECTED_FAILURES")
  fi
  mkdir -p "$out"
  say "[$run] $NODE22 conformance ${args[*]}"
  # in the background + wait, so INT/TERM traps fire immediately
  "$NODE22" "$CONF_JS" "${args[@]}" >"$log" 2>&1 &
  CONF_PID=$!
  wait "$CONF_PID" || rc=$?
  CONF_PID=""

  if grep -q '=== SUMMARY ===' "$log"; then
    sed -n '/=== SUMMARY ===/,$p' "$log" | sed '/^=== SUMMARY ===/d; /^[[:space:]]*$/d; s/^/  /'
  else
    tail -n 40 "$log" | sed 's/^/  /'
  fi
  # failed checks with their messages, from the per-scenario checks.json files
  node - "$out" <<'EOF' || true
const fs = require("fs"), path = require("path");
const out = process.argv[2];
for (const d of fs.readdirSync(out).sort()) {
  const f = path.join(out, d, "checks.json");
  if (!fs.existsSync(f)) continue;
  let checks; try { checks = JSON.parse(fs.readFileSync(f, "utf8")); } catch { continue; }
  for (const c of checks) if (c.status === "FAILURE")
    console.log(`  FAIL ${d.replace(/^server-/, "").replace(/-\d{4}-\d\d-\d\dT.*$/, "")} / ${c.id}: ${c.errorMessage ?? ""}`);
}
EOF
  local totals passed failed
  totals="$(grep -E '^Total: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)"
  passed="$(sed -E 's/^Total: ([0-9]+) passed.*/\1/' <<<"$totals")"
  failed="$(sed -E 's/^Total: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$totals")"
  TOTAL_PASSED=$((TOTAL_PASSED + ${passed:-0}))
  TOTAL_FAILED=$((TOTAL_FAILED + ${failed:-0}))
  # Scenario lines: "✓ name: ..." (no failure, no warning) or "✗ name: ...".
  local ok_sc bad_sc scenarios
  ok_sc="$(grep -cE '^✓ ' "$log" || true)"
  bad_sc="$(grep -cE '^✗ ' "$log" || true)"
  scenarios="${ok_sc:-0}/$(( ${ok_sc:-0} + ${bad_sc:-0} )) scenarios"
  if [ "$rc" -ne 0 ] || [ -z "$totals" ] || [ "${ok_sc:-0}" -ne "$EXPECTED_SCENARIOS" ]; then
    FAILED_RUNS+=("$run")
    say "[$run] FAILED (exit $rc) $scenarios (expected $EXPECTED_SCENARIOS); ${totals:-no totals; see $log}"
  else
    say "[$run] ok: $scenarios; $totals"
  fi
}

# ---------------------------------------------------------------- run 1: single worker
start_stack run1-single-worker "example,conformance"
run_suite run1-single-worker
stop_children

# ---------------------------------------------------------------- run 2: two workers
start_stack run2-two-workers "example,conformance" "example,conformance"
run_suite run2-two-workers
stop_children

say "logs: .conformance/logs, results: .conformance/out"
say "checks: $TOTAL_PASSED passed, $TOTAL_FAILED failed (2 runs)"
if [ "${#FAILED_RUNS[@]}" -ne 0 ]; then
  say "FAILED runs: ${FAILED_RUNS[*]}"
  exit 1
fi
say "all runs passed"
