#!/bin/sh
# Suite: the Python client (clients/python/privsep.py). Unit and conformance tests (pytest,
# one line per case), the scenario helper and the docs' minimal helper against the stand-in
# broker, and mypy --strict when mypy is installed.
# One line per step, then "N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 2
suite=client-python
. Tests/suites/lib/client-suite.sh
doc_helper() {
    awk '/^```python$/ { f = 1; next } /^```$/ { if (f) exit } f' docs/client-python.md >"$out/upper.py"
    PYTHONPATH=clients/python broker --scenario doc --label python_doc -- python3 "$out/upper.py"
}

step compile python3 -m py_compile clients/python/privsep.py
# -p no:cacheprovider: nothing is written into the source tree
step pytest python3 -m pytest -v -p no:cacheprovider clients/python/tests
step scenario broker --label python_scenario -- python3 clients/python/tests/scenario_helper.py
step doc-helper doc_helper
if python3 -m mypy --version >/dev/null 2>&1; then
    step mypy-strict python3 -m mypy --strict --no-incremental --cache-dir=/dev/null clients/python/privsep.py
else
    echo "n/a  client-python: mypy-strict (mypy is not installed)"
fi

finish
