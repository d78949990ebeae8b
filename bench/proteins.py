#!/usr/bin/env python
"""Protein benchmark (thin wrapper): see openmm_actionmin.benchmarks.proteins.

Example (the run behind bench/results/peptides/cln025_trpcage_5seeds_60s.json):
    python bench/proteins.py --systems cln025,trpcage \
        --methods openmm,anneal,action,basin_hopping,hybrid \
        --seeds 5 --budget-s 60 --json out/cln025_trpcage_5seeds_60s.json
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openmm_actionmin.benchmarks.proteins import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
