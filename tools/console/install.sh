#!/usr/bin/env bash
# The console's frontend (`make deps`): bpmn-js, esbuild and axe-core from package-lock.json (npm ci), then the
# diagram bundle in tools/console/dist (git-ignored). Quick when nothing changed: npm ci runs only when
# package-lock.json changed, the bundle only when its sources are newer.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STAMP="$HERE/node_modules/.ipsflow-lock.sha256"
say() { printf '[deps] %s\n' "$*"; }
fail() { printf '[deps] ERROR: %s\n' "$*" >&2; exit 1; }

command -v npm >/dev/null 2>&1 || fail "npm is missing (tools/bpmn/install.sh installs nodejs and npm first)"
want="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
have=""
[ -f "$STAMP" ] && have="$(cat "$STAMP")"
if [ "$want" != "$have" ] || [ ! -x "$HERE/node_modules/.bin/esbuild" ]; then
  say "installing the console's frontend tools into tools/console/node_modules (npm ci, from package-lock.json)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in tools/console failed; is the npm registry reachable?"
  echo "$want" >"$STAMP"
fi

OUT="$HERE/dist"
if [ ! -f "$OUT/diagram.js" ] || [ -n "$(find "$HERE/src" "$HERE/package-lock.json" -newer "$OUT/diagram.js" -print -quit)" ]; then
  mkdir -p "$OUT"
  (cd "$HERE" && node_modules/.bin/esbuild src/diagram.js --bundle --minify --format=iife --target=es2020 \
     --log-level=warning --outfile="$OUT/diagram.js.tmp") || fail "esbuild could not bundle tools/console/src/diagram.js"
  cat "$HERE/node_modules/bpmn-js/dist/assets/diagram-js.css" "$HERE/node_modules/bpmn-js/dist/assets/bpmn-js.css" \
      "$HERE/src/markers.css" >"$OUT/diagram.css"
  mv "$OUT/diagram.js.tmp" "$OUT/diagram.js"
  say "bundled the console's diagram viewer into tools/console/dist"
fi

# The studio (issue 16): bpmn-js Modeler, properties panel and bpmnlint; esbuild writes studio.js, studio.css and
# the bpmn font files it refers to.
if [ ! -f "$OUT/studio.js" ] || [ -n "$(find "$HERE/src" "$HERE/package-lock.json" -newer "$OUT/studio.js" -print -quit)" ]; then
  mkdir -p "$OUT/studio.tmp"
  (cd "$HERE" && node_modules/.bin/esbuild src/studio.js --bundle --minify --format=iife --target=es2020 \
     --jsx=automatic --jsx-import-source=@bpmn-io/properties-panel/preact --loader:.woff=file \
     --loader:.woff2=file --loader:.ttf=file --loader:.eot=file --loader:.svg=file --asset-names=[name]-[hash] \
     --log-level=warning --outdir="$OUT/studio.tmp") || fail "esbuild could not bundle tools/console/src/studio.js"
  mv "$OUT"/studio.tmp/* "$OUT"/ && rmdir "$OUT/studio.tmp"
  say "bundled the studio into tools/console/dist"
fi

# The studio's DMN editor (issue 16): dmn-js with the test bench; esbuild writes dmn.js, dmn.css and the dmn font.
if [ ! -f "$OUT/dmn.js" ] || [ -n "$(find "$HERE/src" "$HERE/package-lock.json" -newer "$OUT/dmn.js" -print -quit)" ]; then
  mkdir -p "$OUT/dmn.tmp"
  (cd "$HERE" && node_modules/.bin/esbuild src/dmn.js --bundle --minify --format=iife --target=es2020 \
     --loader:.woff=file --loader:.woff2=file --loader:.ttf=file --loader:.eot=file --loader:.svg=file \
     --asset-names=[name]-[hash] --log-level=warning --outdir="$OUT/dmn.tmp") \
     || fail "esbuild could not bundle tools/console/src/dmn.js"
  mv "$OUT"/dmn.tmp/* "$OUT"/ && rmdir "$OUT/dmn.tmp"
  say "bundled the DMN editor into tools/console/dist"
fi
