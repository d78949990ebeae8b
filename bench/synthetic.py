#!/usr/bin/env python
"""Synthetic benchmark (thin wrapper): see openmm_actionmin.benchmarks.synthetic.

Example:
    python bench/synthetic.py --functions alpine1,schaffer_f7 --dims 100 --seeds 3 \
        --budget-s 120 --methods action,random_only,adam --json bench/results/synthetic_d100.json
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openmm_actionmin.benchmarks.synthetic import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
