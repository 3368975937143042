#!/usr/bin/env bash
# Debian packages the test suite drives for real: Chromium (SMART JS client in a
# headless browser) and docker-compose (validates docker-compose.yml without an
# engine). Installed once when missing; without root/apt the tests that need
# them skip with a visible reason.
set -u
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "bootstrap: cannot install ${missing[*]} (need root and apt-get); those tests will skip" >&2
  exit 0
fi
echo "bootstrap: installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "bootstrap: apt-get install ${missing[*]} failed; those tests will skip" >&2
exit 0
