#!/usr/bin/env bash
# Ensure the toolchain mcpq needs is present, then install deps and build.
# Idempotent: safe to run repeatedly (make setup / make test / make dev run it).
#
#   node >= 20.19   (required; not installed by this script)
#   pnpm 10.34.9    (corepack -> npm -g -> ./.mcpq/tools fallback)
#   nats-server     (apt-get when root or passwordless sudo; otherwise explains)
#   promtool        (optional; Debian's prometheus package, same way; tests skip without it)
#
# Env: MCPQ_SKIP_INSTALL=1 skips `pnpm install`, MCPQ_SKIP_BUILD=1 skips `pnpm build`.
set -euo pipefail

PNPM_VERSION="10.34.9"
NODE_MIN_MAJOR=20
NODE_MIN_MINOR=19

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS_DIR="$ROOT/.mcpq/tools"
# A local pnpm from an earlier run, and sbin dirs (Debian puts nats-server in /usr/sbin,
# which is often missing from non-root PATHs).
export PATH="$TOOLS_DIR/node_modules/.bin:$PATH:/usr/local/sbin:/usr/sbin"
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0

say() { printf 'ensure-tools: %s\n' "$*"; }
warn() { printf 'ensure-tools: WARNING: %s\n' "$*" >&2; }
die() { printf 'ensure-tools: ERROR: %s\n' "$*" >&2; exit 1; }

can_sudo() {
  [ "$(id -u)" -eq 0 ] && return 0
  command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1
}
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# ---------------------------------------------------------------- node
if ! command -v node >/dev/null 2>&1; then
  die "node not found. Install Node.js >= ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR} (e.g. from nodejs.org or your distro) and re-run."
fi
NODE_VERSION="$(node -p 'process.versions.node')"
IFS=. read -r n_major n_minor _ <<<"$NODE_VERSION"
if [ "$n_major" -lt "$NODE_MIN_MAJOR" ] ||
  { [ "$n_major" -eq "$NODE_MIN_MAJOR" ] && [ "$n_minor" -lt "$NODE_MIN_MINOR" ]; }; then
  die "node $NODE_VERSION is too old; need >= ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR}."
fi
say "node $NODE_VERSION ok (>= ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR})"

# ---------------------------------------------------------------- pnpm
pnpm_works() { pnpm --version >/dev/null 2>&1; }

if pnpm_works; then
  have="$(pnpm --version)"
  if [ "${have%%.*}" != "${PNPM_VERSION%%.*}" ]; then
    warn "pnpm $have found; this repo pins pnpm@$PNPM_VERSION (packageManager field)."
  fi
  say "pnpm $have ok"
else
  installed=""
  if command -v corepack >/dev/null 2>&1 &&
    corepack enable >/dev/null 2>&1 &&
    corepack prepare "pnpm@$PNPM_VERSION" --activate >/dev/null 2>&1 &&
    hash -r && pnpm_works; then
    installed="corepack"
  fi
  if [ -z "$installed" ]; then
    npm_gprefix="$(npm prefix -g 2>/dev/null || true)"
    if [ -n "$npm_gprefix" ] && [ -w "$npm_gprefix" ] &&
      npm i -g --no-audit --no-fund "pnpm@$PNPM_VERSION" >/dev/null 2>&1 &&
      hash -r && pnpm_works; then
      installed="npm -g"
    fi
  fi
  if [ -z "$installed" ]; then
    mkdir -p "$TOOLS_DIR"
    npm i --prefix "$TOOLS_DIR" --no-audit --no-fund --no-save "pnpm@$PNPM_VERSION" >/dev/null ||
      die "could not install pnpm@$PNPM_VERSION (corepack, npm -g and local install all failed)."
    hash -r
    pnpm_works || die "pnpm installed into $TOOLS_DIR but does not run."
    installed="local ($TOOLS_DIR)"
    say "pnpm installed locally; make targets add it to PATH. For your shell:"
    say "  export PATH=\"$TOOLS_DIR/node_modules/.bin:\$PATH\""
  fi
  say "pnpm $(pnpm --version) ok (installed via $installed)"
fi

# ---------------------------------------------------------------- nats-server
if ! command -v nats-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && can_sudo; then
    say "nats-server missing; installing with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
    hash -r
    command -v nats-server >/dev/null 2>&1 || die "apt-get installed nats-server but it is not on PATH."
  else
    {
      echo "ensure-tools: ERROR: nats-server not found and cannot be installed automatically"
      echo "  (need root or passwordless sudo with apt-get). Install it, then re-run:"
      echo "    Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y nats-server"
      echo "    macOS:          brew install nats-server"
      echo "    otherwise:      put a nats-server (>= 2.9) binary on PATH"
    } >&2
    exit 1
  fi
fi
say "nats-server $(nats-server --version 2>&1 | sed 's/^nats-server: //') ok ($(command -v nats-server))"

# ---------------------------------------------------------------- promtool (optional)
# Checks and unit-tests the Prometheus rules in infra/prometheus (infra/test/prometheus.test.ts;
# skipped there when absent). Debian ships it in the prometheus package; nothing else of that
# package is started (no init system here; on a host with one, the service stays as packaged).
if ! command -v promtool >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && can_sudo; then
    say "promtool missing; installing Debian's prometheus package with apt-get"
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
      hash -r
    else
      warn "apt-get could not install prometheus; the promtool checks will be skipped."
    fi
  else
    warn "promtool not found (Debian: apt-get install prometheus); the promtool checks will be skipped."
  fi
fi
if command -v promtool >/dev/null 2>&1; then
  say "promtool $(promtool --version 2>&1 | head -n1 | sed 's/^promtool, version //') ok ($(command -v promtool))"
fi

# ---------------------------------------------------------------- deps + build
if [ "${MCPQ_SKIP_INSTALL:-0}" != "1" ]; then
  if [ -f pnpm-lock.yaml ]; then
    say "pnpm install --frozen-lockfile"
    log="$(mktemp)"
    if ! pnpm install --frozen-lockfile 2>&1 | tee "$log"; then
      if grep -qE 'ERR_PNPM_OUTDATED_LOCKFILE|ERR_PNPM_LOCKFILE_CONFIG_MISMATCH|lockfile.*(not up to date|outdated)' "$log"; then
        warn "pnpm-lock.yaml is out of date with package.json; running pnpm install --no-frozen-lockfile (commit the updated lockfile)."
        rm -f "$log"
        pnpm install --no-frozen-lockfile
      else
        rm -f "$log"
        die "pnpm install --frozen-lockfile failed."
      fi
    fi
    rm -f "$log"
  else
    say "no pnpm-lock.yaml; pnpm install"
    pnpm install --no-frozen-lockfile
  fi
fi

if [ "${MCPQ_SKIP_BUILD:-0}" != "1" ]; then
  say "pnpm build"
  pnpm build
fi
say "done"
