#!/usr/bin/env bash
# The BPMN checks' tools (`make deps`): bpmnlint and bpmn-js from package-lock.json (npm ci), and Debian's chromium
# for the Playwright test in tests/browser (Playwright's own browser download is not used).
# Idempotent and quick when everything is there: npm ci runs only when package-lock.json changed since the last install.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STAMP="$HERE/node_modules/.ipsflow-lock.sha256"

say() { printf '[deps] %s\n' "$*"; }
fail() { printf '[deps] ERROR: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

APT_UPDATED=0
apt_install() { # package...
  if [ "$APT_UPDATED" = 0 ]; then
    as_root apt-get update -qq || fail "apt-get update failed; are the Debian package lists reachable (and are we root or sudo)?"
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
    || fail "could not install $* (apt-get install -y $*)"
}

node_tools() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "installing nodejs and npm from Debian (apt-get)"
    apt_install nodejs npm
  fi
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if (( major < 20 )); then
    say "warning: Node $(node --version) found; bpmnlint 11 and bpmn-js 18 are tested with Node >= 20"
  fi
  local want have=""
  want="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
  [ -f "$STAMP" ] && have="$(cat "$STAMP")"
  if [ "$want" = "$have" ] && [ -f "$HERE/node_modules/bpmnlint/bin/bpmnlint.js" ] \
     && [ -f "$HERE/node_modules/bpmn-js/dist/bpmn-navigated-viewer.production.min.js" ]; then
    return
  fi
  say "installing bpmnlint and bpmn-js into tools/bpmn/node_modules (npm ci, from package-lock.json)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) \
    || fail "npm ci in tools/bpmn failed; is the npm registry reachable?"
  echo "$want" >"$STAMP"
}

browser() {
  if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then return; fi
  say "installing chromium from Debian (apt-get) for the bpmn-js browser test"
  apt_install chromium
  command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || fail "chromium is not on PATH after apt-get install chromium"
}

node_tools
browser
