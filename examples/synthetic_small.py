"""The synthetic benchmark at small scale: the action method against Adam multi-start and random-only training.

python examples/synthetic_small.py [--dims 20] [--budget-s 30] [--seeds 1] [--device cuda]
"""

import argparse

from openmm_actionmin.benchmarks import synthetic


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="20")
    parser.add_argument("--budget-s", default="30")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--json", default="synthetic_small.json")
    parser.add_argument(
        "--device", default="cpu", help="torch device of the oracle and the PLNet trainers: cpu or cuda"
    )
    args = parser.parse_args(argv)
    synthetic.main(
        [
            "--functions",
            "alpine1,schaffer_f7",
            "--dims",
            args.dims,
            "--seeds",
            args.seeds,
            "--budget-s",
            args.budget_s,
            "--methods",
            "action,random_only,adam",
            "--json",
            args.json,
            "--device",
            args.device,
        ]
    )


if __name__ == "__main__":
    main()
