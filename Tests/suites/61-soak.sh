#!/bin/sh
# Suite: a short soak (20,000 requests, C and Python requesters and servers) while a chaos loop
# SIGKILLs the servers every 0.3 s. Every request must get exactly one final reply (the
# requesters count them), the broker's counters must balance, fds and RSS must end flat (+-10%).
# `make soak` runs the long version (1,000,000 requests). Needs root and the .build/debug build.
cd "$(dirname "$0")/../.." || exit 2
exec python3 Tests/Soak/run.py --requests "${SOAK_REQUESTS:-20000}" --chaos 0.3 --timeout 60
