#!/usr/bin/env bash
#
# "make test-browser": the demo shop (examples/), started with an empty
# Redis of its own, opened in headless chromium by t/browser/shop.py; the
# demo is stopped whatever the outcome, and the status is the test's.
#
# environment (set by the Makefile):
#   BROWSER_DIR          the demo's prefix and the screenshots
#                        (build/browser)
#   BROWSER_PORT         port of the demo's nginx (18090)
#   BROWSER_REDIS_PORT   port of its Redis (18091)
#   BROWSER_DRIVER_PORT  first of two ports for chromedriver (18092)
#   MODULE, NGINX_BIN    as for scripts/demo.sh

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

BROWSER_DIR=${BROWSER_DIR:-$top/build/browser}
BROWSER_PORT=${BROWSER_PORT:-18090}
BROWSER_REDIS_PORT=${BROWSER_REDIS_PORT:-18091}
export BROWSER_DRIVER_PORT=${BROWSER_DRIVER_PORT:-18092}

export RUN_DIR=$BROWSER_DIR/run RUN_HOST=127.0.0.1 RUN_PORT=$BROWSER_PORT \
       RUN_REDIS_PORT=$BROWSER_REDIS_PORT

trap '"$top/scripts/demo.sh" stop >/dev/null' EXIT
trap 'exit 130' INT TERM

rm -rf "$BROWSER_DIR/screenshots"
"$top/scripts/demo.sh" start >/dev/null

echo "test-browser: the demo on http://127.0.0.1:$BROWSER_PORT/," \
     "$(chromium --version 2>/dev/null || echo chromium), screenshots in" \
     "$BROWSER_DIR/screenshots"

# Debian's python3, which python3-selenium is for, whatever is first in PATH
"${PYTHON:-/usr/bin/python3}" "$top/t/browser/shop.py" "http://127.0.0.1:$BROWSER_PORT" \
    "$BROWSER_DIR/screenshots"
