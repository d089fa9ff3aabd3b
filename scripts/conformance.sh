#!/usr/bin/env bash
# Run the official MCP conformance suites (server side) against mcpq, for both protocol eras:
#
#   2025: @modelcontextprotocol/conformance@0.1.16 server --suite all   (2025-11-25, 32 scenarios)
#   2026: @modelcontextprotocol/conformance@0.2.0-alpha.12 server --requirements 2026-07-28
#         (37 scored scenarios, plus the unscored tasks-* extension and pending scenarios)
#
# each against two stacks:
#   run 1: private nats-server + edge + 1 worker  (--catalog example,conformance)
#   run 2: fresh nats-server + edge + 2 workers   (both --catalog example,conformance: one pool, so
#          JetStream spreads the calls of one session, and the rounds of one MRTR request, over
#          both workers; they share a random MCPQ_REQUEST_STATE_KEYS made for the run)
#
# Needs a build (services/cli/dist/main.js) and nats-server; `make conformance` does both.
# The conformance CLIs need Node >= 22; `scripts/node.sh 22 --at-least` provides one.
#
# Env:
#   CONFORMANCE_SUITES             suites to run, comma-separated (default 2025,2026)
#   CONFORMANCE_PORT               edge port (default 8080, or a free port if 8080 is taken)
#   CONFORMANCE_EXPECTED_FAILURES  optional YAML baseline passed as --expected-failures (2025 suite)
#   CONFORMANCE_READY_TIMEOUT      seconds to wait for /readyz (default 60)
#   MCPQ_CLI                       CLI entry to run (default services/cli/dist/main.js)
#   CONFORMANCE_PROBE_TOOL         tool that must appear in tools/list before a run
#                                  (default test_simple_text; empty disables the probe)
#   CONFORMANCE_EXPECTED_SCENARIOS scenarios that must pass per 2025 run (default 32 = --suite all)
#   CONFORMANCE_2026_EXPECTED      scored scenarios that must pass per 2026 run (default 37)
# Output: .conformance/out/<suite>-<run>/ (checks.json per scenario), .conformance/logs/*.log
set -euo pipefail

CONFORMANCE_VERSION="0.1.16"
CONFORMANCE_2026_VERSION="0.2.0-alpha.12"
CONFORMANCE_2026_REVISION="2026-07-28"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/local/sbin:/usr/sbin"

say() { printf 'conformance: %s\n' "$*"; }
die() { printf 'conformance: ERROR: %s\n' "$*" >&2; exit 1; }

CLI="${MCPQ_CLI:-$ROOT/services/cli/dist/main.js}"
OUT_ROOT="$ROOT/.conformance/out"
LOG_DIR="$ROOT/.conformance/logs"
READY_TIMEOUT="${CONFORMANCE_READY_TIMEOUT:-60}"
PROBE_TOOL="${CONFORMANCE_PROBE_TOOL-test_simple_text}"
# --suite all of 0.1.16: 30 active scenarios + 2 pending (json-schema-2020-12, server-sse-polling).
EXPECTED_SCENARIOS="${CONFORMANCE_EXPECTED_SCENARIOS:-32}"
# --requirements 2026-07-28 of 0.2.0-alpha.12: 37 scored scenarios (requirements/2026-07-28.yaml).
EXPECTED_2026="${CONFORMANCE_2026_EXPECTED:-37}"
SUITES="${CONFORMANCE_SUITES:-2025,2026}"
has_suite() { [[ ",$SUITES," == *",$1,"* ]]; }
has_suite 2025 || has_suite 2026 || die "CONFORMANCE_SUITES must name 2025 and/or 2026 (got '$SUITES')."

[ -f "$CLI" ] || die "$CLI not found; build first (make build / pnpm build)."
NATS_BIN="$(command -v nats-server || true)"
[ -n "$NATS_BIN" ] || die "nats-server not found; run scripts/ensure-tools.sh."
command -v node >/dev/null 2>&1 || die "node not found."

# ---------------------------------------------------------------- Node 22 + conformance CLIs
NODE22="$("$ROOT/scripts/node.sh" 22 --at-least)" || die "could not obtain a Node >= 22 binary (scripts/node.sh 22 --at-least)."
# ensure_cli PREFIX VERSION -> prints the CLI entry, installing the pinned version on first use.
# Each version has its own prefix, so both suites stay installed side by side.
ensure_cli() {
  local prefix="$1" version="$2" pkg have
  pkg="$prefix/node_modules/@modelcontextprotocol/conformance"
  have="$( [ -f "$pkg/package.json" ] && node -p "require('$pkg/package.json').version" 2>/dev/null || true)"
  if [ "$have" != "$version" ] || [ ! -f "$pkg/dist/index.js" ]; then
    say "installing @modelcontextprotocol/conformance@$version into ${prefix#"$ROOT/"}" >&2
    mkdir -p "$prefix"
    npm i --prefix "$prefix" --no-audit --no-fund --loglevel=error \
      "@modelcontextprotocol/conformance@$version" >/dev/null
  fi
  echo "$pkg/dist/index.js"
}
CONF_JS=""
CONF_2026_JS=""
if has_suite 2025; then CONF_JS="$(ensure_cli "$ROOT/.mcpq/conformance" "$CONFORMANCE_VERSION")"; fi
if has_suite 2026; then CONF_2026_JS="$(ensure_cli "$ROOT/.mcpq/conformance-2026" "$CONFORMANCE_2026_VERSION")"; fi
say "node22 $("$NODE22" -v) at $NODE22; suites: $SUITES"

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
# start_stack RUN NODE WORKER_CATALOG...  -> nats + edge + one worker per catalog argument, the
# edge and the workers run by the Node binary NODE
start_stack() {
  local run="$1" serve_node="$2"; shift 2
  say "[$run] edge and workers on node $("$serve_node" -v)"
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
    "$serve_node" "$CLI" edge --port "$EDGE_PORT"
  # One request-state key for the whole pool: an MRTR retry may reach either worker. Made per
  # stack and passed in the environment only (never on a command line or in a log).
  local state_key
  state_key="$(node -e 'console.log(require("crypto").randomBytes(32).toString("base64url"))')"
  local i=0 names=("$run-nats" "$run-edge") catalog
  for catalog in "$@"; do
    i=$((i + 1))
    start_child "$run-worker$i" env MCPQ_REQUEST_STATE_KEYS="$state_key" "$serve_node" "$CLI" worker --catalog "$catalog"
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
SUMMARY_ROWS=()
# print_failed_checks OUT -> every failed check with its message, from the per-scenario checks.json
print_failed_checks() {
  node - "$1" <<'EOF' || true
const fs = require("fs"), path = require("path");
const out = process.argv[2];
for (const d of fs.readdirSync(out).sort()) {
  const f = path.join(out, d, "checks.json");
  if (!fs.existsSync(f)) continue;
  let checks; try { checks = JSON.parse(fs.readFileSync(f, "utf8")); } catch { continue; }
  for (const c of checks) if (c.status === "FAILURE")
    console.log(`  FAIL ${d.replace(/^server-/, "").replace(/-\d{4}-\d\d-\d\dT.*$/, "")} / ${c.id}: ${(c.errorMessage ?? "").replace(/\s*\n\s*/g, " | ")}`);
}
EOF
}
# run_cli LOG ARGS... -> a conformance CLI under Node 22, in the background + wait (so INT/TERM
# traps fire at once); returns its exit status
run_cli() {
  local log="$1" rc=0
  shift
  "$NODE22" "$@" >"$log" 2>&1 &
  CONF_PID=$!
  wait "$CONF_PID" || rc=$?
  CONF_PID=""
  return "$rc"
}
# add_totals LOG -> sets TOTALS to the log's "Total: N passed, M failed" line (empty when absent)
# and adds it to the grand totals (no subshell, so the sums survive)
TOTALS=""
add_totals() {
  local passed failed
  TOTALS="$(grep -E '^Total: [0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1 || true)"
  passed="$(sed -E 's/^Total: ([0-9]+) passed.*/\1/' <<<"$TOTALS")"
  failed="$(sed -E 's/^Total: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$TOTALS")"
  TOTAL_PASSED=$((TOTAL_PASSED + ${passed:-0}))
  TOTAL_FAILED=$((TOTAL_FAILED + ${failed:-0}))
}
row() { printf '%-30s %-20s %-10s %-34s %s' "$@"; }

# run_suite_2025 RUN -> 0.1.16 --suite all; prints per-scenario lines + failed checks
run_suite_2025() {
  local run="$1" name="2025-$1" rc=0
  local out="$OUT_ROOT/$name" log="$LOG_DIR/$name-conformance.log"
  local args=("$CONF_JS" server --url "$MCP_URL" --suite all -o "$out")
  if [ -n "${CONFORMANCE_EXPECTED_FAILURES:-}" ]; then
    args+=(--expected-failures "$CONFORMANCE_EXPECTED_FAILURES")
  fi
  mkdir -p "$out"
  say "[$name] conformance@$CONFORMANCE_VERSION server --url $MCP_URL --suite all"
  run_cli "$log" "${args[@]}" || rc=$?

  if grep -q '=== SUMMARY ===' "$log"; then
    sed -n '/=== SUMMARY ===/,$p' "$log" | sed '/^=== SUMMARY ===/d; /^[[:space:]]*$/d; s/^/  /'
  else
    tail -n 40 "$log" | sed 's/^/  /'
  fi
  print_failed_checks "$out"
  add_totals "$log"
  local totals="$TOTALS"
  # Scenario lines: "✓ name: ..." (no failure, no warning) or "✗ name: ...".
  local ok_sc bad_sc scenarios verdict=ok
  ok_sc="$(grep -cE '^✓ ' "$log" || true)"
  bad_sc="$(grep -cE '^✗ ' "$log" || true)"
  scenarios="${ok_sc:-0}/$((${ok_sc:-0} + ${bad_sc:-0}))"
  if [ "$rc" -ne 0 ] || [ -z "$totals" ] || [ "${ok_sc:-0}" -ne "$EXPECTED_SCENARIOS" ]; then
    verdict=FAILED
    FAILED_RUNS+=("$name")
    say "[$name] FAILED (exit $rc) $scenarios scenarios (expected $EXPECTED_SCENARIOS); ${totals:-no totals; see $log}"
  else
    say "[$name] ok: $scenarios scenarios; $totals"
  fi
  SUMMARY_ROWS+=("$(row "$CONFORMANCE_VERSION --suite all" "$run" "$scenarios" "${totals#Total: }" "$verdict")")
}

# run_suite_2026 RUN -> 0.2.0-alpha.12 --requirements 2026-07-28: the scored scenarios, then the
# unscored ones (tasks-* extension, pending) by reason
run_suite_2026() {
  local run="$1" name="2026-$1" rc=0
  local out="$OUT_ROOT/$name" log="$LOG_DIR/$name-conformance.log"
  mkdir -p "$out"
  say "[$name] conformance@$CONFORMANCE_2026_VERSION server --url $MCP_URL --requirements $CONFORMANCE_2026_REVISION"
  run_cli "$log" "$CONF_2026_JS" server --url "$MCP_URL" --requirements "$CONFORMANCE_2026_REVISION" -o "$out" || rc=$?

  # The summary lists every scenario run ("✓|✗ name: N passed, M failed"); the "Not scored for"
  # section names the unscored ones with their reason. Scored = the summary minus those.
  local table
  table="$(node - "$log" <<'EOF'
const fs = require("fs");
const text = fs.readFileSync(process.argv[2], "utf8");
const start = text.indexOf("=== SUMMARY ===");
if (start < 0) { console.log("SCORED 0 0 -"); process.exit(0); }
const lines = text.slice(start).split("\n");
const results = new Map();
for (const l of lines) {
  const m = /^([✓✗]) (\S+): (\d+) passed, (\d+) failed/.exec(l);
  if (m) results.set(m[2], { ok: m[1] === "✓", passed: +m[3], failed: +m[4] });
}
const unscored = new Map();
let inNotScored = false;
for (const l of lines) {
  if (/^Not scored for /.test(l)) { inNotScored = true; continue; }
  const m = inNotScored && /^\s+[✓✗] (\S+) \(([^)]*)\)/.exec(l);
  if (m) unscored.set(m[1], m[2]);
}
const fmt = (n, r) => `${r?.ok ? "✓" : "✗"} ${n}: ${r?.passed ?? 0} passed, ${r?.failed ?? 0} failed`;
const scored = [...results].filter(([n]) => !unscored.has(n));
for (const [n, r] of scored) console.log(`  ${fmt(n, r)}`);
const groups = new Map();
for (const [n, reason] of unscored) groups.set(reason, [...(groups.get(reason) ?? []), n]);
const extra = [];
for (const [reason, names] of groups) {
  const pass = names.filter((n) => results.get(n)?.ok).length;
  extra.push(`${reason} ${pass}/${names.length}`);
  console.log(`  not scored (${reason}): ${pass}/${names.length} pass`);
  for (const n of names) console.log(`    ${fmt(n, results.get(n))}`);
}
console.log(`SCORED ${scored.filter(([, r]) => r.ok).length} ${scored.length} ${extra.join(", ") || "-"}`);
EOF
)" || table="SCORED 0 0 -"
  grep -v '^SCORED ' <<<"$table" || tail -n 40 "$log" | sed 's/^/  /'
  print_failed_checks "$out"
  add_totals "$log"
  local totals="$TOTALS" score ok_sc all_sc unscored verdict=ok
  score="$(grep '^SCORED ' <<<"$table" | tail -n 1)"
  ok_sc="$(cut -d' ' -f2 <<<"$score")"
  all_sc="$(cut -d' ' -f3 <<<"$score")"
  unscored="$(cut -d' ' -f4- <<<"$score")"
  # The CLI exits non-zero when a scored scenario fails; the count guards against a short run.
  if [ "$rc" -ne 0 ] || [ "${ok_sc:-0}" -ne "$EXPECTED_2026" ]; then
    verdict=FAILED
    FAILED_RUNS+=("$name")
    say "[$name] FAILED (exit $rc) $ok_sc/$all_sc scored scenarios (expected $EXPECTED_2026); not scored: $unscored; ${totals:-no totals; see $log}"
  else
    say "[$name] ok: $ok_sc/$all_sc scored scenarios; not scored: $unscored; $totals"
  fi
  SUMMARY_ROWS+=("$(row "$CONFORMANCE_2026_VERSION $CONFORMANCE_2026_REVISION" "$run" "$ok_sc/$all_sc" "${totals#Total: }" "$verdict; not scored: $unscored")")
}

run_suites() {
  if has_suite 2025; then run_suite_2025 "$1"; fi
  if has_suite 2026; then run_suite_2026 "$1"; fi
}

# ---------------------------------------------------------------- run 1: single worker
# Run 1 serves on the machine's Node, run 2 on Node 22 (the Docker image's): Node 22 and 24
# changed ServerResponse corking in a way that lost SSE answers, which run 1 alone never saw.
start_stack run1-single-worker "$(command -v node)" "example,conformance"
run_suites run1-single-worker
stop_children

# ---------------------------------------------------------------- run 2: two workers
start_stack run2-two-workers "$NODE22" "example,conformance" "example,conformance"
run_suites run2-two-workers
stop_children

say "logs: .conformance/logs, results: .conformance/out"
echo
row "suite" "run" "scenarios" "checks" "verdict"
echo
for r in "${SUMMARY_ROWS[@]}"; do echo "$r"; done
echo
say "checks: $TOTAL_PASSED passed, $TOTAL_FAILED failed (all runs)"
if [ "${#FAILED_RUNS[@]}" -ne 0 ]; then
  say "FAILED runs: ${FAILED_RUNS[*]}"
  exit 1
fi
say "all runs passed"
