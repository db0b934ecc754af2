#!/usr/bin/env bash
# The test suite: installs what is missing (./install.sh), then runs pytest with any arguments given.
set -euo pipefail
cd "$(dirname "$0")"
./install.sh
exec .venv/bin/python -m pytest "$@"
