#!/usr/bin/env bash
# Set everything up on a fresh machine and run the main job:
# evaluate and locally minimise an LJ13 cluster and a peptide, printing energies.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet .
actionmin demo "$@"
