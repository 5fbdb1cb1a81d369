#!/bin/sh
# Suite: end-to-end conformance. The same scenario helper written with each client (C, shell
# under dash and bash, Python, Swift) runs under the real broker against a C peer; prints the
# table client x scenario and "conformance: N passed, M failed, K n/a". See docs/conformance.md.
cd "$(dirname "$0")/../.." || exit 2
exec sh Tests/Conformance/e2e/run.sh
