#!/usr/bin/env python
"""Probe: the action trainer with a faster-learning PLNet offset ``c`` (not a shipped option).

Why: at D = 1000 the trajectory loss stays at 100-200 for a whole hour
(``bench/results/synthetic_d1000_3600s.md``). Energies are normalised by the
warm-start samples, so good candidates sit ~18 standard deviations below the
mean, while f = 1/2 ||g||^2 + c >= c starts with c = 0 and Adam moves c by
about lr = 1e-3 per step. This probe gives ``c`` its own Adam parameter group
with learning rate ``--lr-c`` and prints the per-round distance and losses.

Example (shifted Alpine 1, seed 0, one thread)::

    python bench/probe_offset_lr.py --lr-c 0.05 --dim 1000 --budget-s 300
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openmm_actionmin.benchmarks.synthetic import make_system  # noqa: E402
from openmm_actionmin.search.action import ActionConfig, ActionTrainer  # noqa: E402


class FastOffsetTrainer(ActionTrainer):
    """ActionTrainer whose PLNet offset ``c`` learns at its own rate."""

    lr_c = 0.05

    def _build_model(self) -> None:
        super()._build_model()
        others = [p for name, p in self.model.named_parameters() if name != "c"]
        self.optimizer = torch.optim.Adam([{"params": others}, {"params": [self.model.c], "lr": self.lr_c}], lr=self.config.lr)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--function", default="alpine1")
    p.add_argument("--dim", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget-s", type=float, default=300.0)
    p.add_argument("--lr-c", type=float, default=0.05, help="learning rate of the offset c (0: the shipped trainer)")
    args = p.parse_args()
    torch.set_num_threads(1)
    system = make_system(args.function, args.dim, args.seed)
    trainer_cls = FastOffsetTrainer if args.lr_c > 0 else ActionTrainer
    FastOffsetTrainer.lr_c = args.lr_c
    result = trainer_cls(system, ActionConfig(seed=args.seed, budget_s=args.budget_s)).run()
    print("round wall_s candidate_distance best_distance trajectory_loss regression_loss")
    history = result.history
    for row in history[:: max(1, len(history) // 10)] + [history[-1]]:
        print(row["round"], round(row["wall_s"]), round(row["candidate_distance"], 1), round(row["best_distance"], 1),
              round(row["trajectory_loss"], 3), round(row["regression_loss"], 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
