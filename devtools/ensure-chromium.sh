#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (browsers can't be downloaded here): install it
# when missing. Needs root, as apt does; otherwise says what to run.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "The browser tests need Chromium: sudo apt-get install chromium" >&2
  exit 1
fi
echo "Installing chromium for the browser tests"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
