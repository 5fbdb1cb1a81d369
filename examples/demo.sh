#!/bin/sh
# `make demo`: the most complete end-to-end scenario that exists.
set -eu
cd "$(dirname "$0")/.."
echo "privsep demo: nothing to show yet"
