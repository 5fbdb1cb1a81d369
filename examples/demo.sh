#!/bin/sh
# `make demo`: the most complete end-to-end scenario that exists.
#
# For now: wire protocol v1 between a Swift parent and a helper it posix_spawns over a
# socketpair (framed JSON both ways, a descriptor passed each way). `make demo` has already run
# `swift build`; building here again only matters when the script is run on its own.
set -eu
cd "$(dirname "$0")/.."
demo=.build/debug/wire-demo
if [ ! -x "$demo" ]; then
    swift build --product wire-demo
fi
exec "$demo"
