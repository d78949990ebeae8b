#!/usr/bin/env python
"""Cluster benchmark (thin wrapper): see openmm_actionmin.benchmarks.clusters.

Example (the run behind bench/results/clusters/lj_lattice_10seeds_40s.json):
    python bench/clusters.py --systems LJ13,LJ38,LJ55,LJ75,BLJ100 \
        --methods basin_hopping_lattice,basin_hopping,scipy_basinhopping_unbounded \
        --seeds 10 --budget-s 40 --json out/lj_lattice_10seeds_40s.json

The benchmark's JSON holds every run's details; bench/README.md says how a table in
bench/results/ is kept.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openmm_actionmin.benchmarks.clusters import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
