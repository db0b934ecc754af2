#!/usr/bin/env bash
# The test suite. ./run_tests.sh: the fast tier (every test not marked slow); ./run_tests.sh --all: every test,
# as CI runs it. Both install what is missing first (./install.sh); other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
./install.sh
if [ "${1:-}" = --all ]; then
    shift
    exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest -m "not slow" "$@"
