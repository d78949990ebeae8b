#!/usr/bin/env bash
# Set everything up on a fresh machine and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet ".[test]"
python3 -m pytest -q tests
