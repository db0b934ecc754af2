#!/usr/bin/env bash
# The test suite. ./run_tests.sh: the fast tier (every test not marked slow); ./run_tests.sh --all: every test,
# as CI runs it. Both install what is missing first (./install.sh) and run the test files in two processes
# (pytest-xdist; each file's tests in one process, so that its shared set-up runs once); other arguments go to
# pytest (-n 0: one process).
set -euo pipefail
cd "$(dirname "$0")"
./install.sh
tier=(-m "not slow")
if [ "${1:-}" = --all ]; then
    shift
    tier=()
fi
exec .venv/bin/python -m pytest -n 2 --dist loadfile ${tier[@]+"${tier[@]}"} "$@"
