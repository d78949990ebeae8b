#!/usr/bin/env python
"""Synthetic benchmark (thin wrapper): see openmm_actionmin.benchmarks.synthetic.

Example (one function's shifted runs in bench/results/synthetic/d100_120s.json; add
--no-shift for the unshifted ones, --dims 1000 --budget-s 450 for d1000_450s.json):
    python bench/synthetic.py --functions alpine1 --dims 100 --seeds 3 --budget-s 120 \
        --methods action,random_only,adam,scipy_basinhopping,cma --json out/d100_alpine1.json
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openmm_actionmin.benchmarks.synthetic import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
