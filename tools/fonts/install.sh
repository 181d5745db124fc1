#!/usr/bin/env bash
# The letters' font (`make deps`): Debian's fonts-dejavu-core, a Unicode TrueType font that notifications embeds in
# every PDF letter (services/notifications/letter.py), so that names like "Çelik" or "Nguyễn" print as written.
# From the operating system, never a file in this repository. Idempotent: nothing happens when the files are there.
set -euo pipefail

REGULAR=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
BOLD=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf

say() { printf '[deps] %s\n' "$*"; }
fail() { printf '[deps] ERROR: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if [ -f "$REGULAR" ] && [ -f "$BOLD" ]; then exit 0; fi
say "installing fonts-dejavu-core from Debian (apt-get) for the PDF letters"
as_root apt-get update -qq || fail "apt-get update failed; are the Debian package lists reachable (and are we root or sudo)?"
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null \
  || fail "could not install fonts-dejavu-core (apt-get install -y fonts-dejavu-core)"
[ -f "$REGULAR" ] && [ -f "$BOLD" ] || fail "fonts-dejavu-core is installed but $REGULAR or $BOLD is missing"
