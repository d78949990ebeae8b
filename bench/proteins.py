#!/usr/bin/env python
"""Protein benchmark (thin wrapper): see openmm_actionmin.benchmarks.proteins.

Example:
    python bench/proteins.py --systems cln025 --methods openmm_minimize,openmm_anneal \
        --seeds 2 --budget-s 60 --json bench/results/proteins_cln025.json
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openmm_actionmin.benchmarks.proteins import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
