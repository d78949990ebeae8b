#!/usr/bin/env python
"""Cluster benchmark (thin wrapper): see openmm_actionmin.benchmarks.clusters.

Example:
    python bench/clusters.py --systems LJ13,LJ38 --methods basin_hopping,scipy_basinhopping \
        --seeds 3 --budget-s 60 --json bench/results/clusters_calibration.json
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openmm_actionmin.benchmarks.clusters import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
