#!/usr/bin/env python
"""Probe: the action trainer with a learned-growth PLNet head (``PLNetConfig(growth="learned")``).

Why: f = 1/2 ||g||^2 + c grows quadratically away from its minimiser, while the envelope of
Alpine 1 grows linearly and that of Schaffer F7 like |x|^(1/2). Least squares then puts the
bowl's bottom between the true minimum and the middle of the sampled box (a separable quadratic
fitted to 1e5 uniform samples lands ~190 from the shifted minimum at D = 100). A strictly
increasing head h(u) = (2 s / q)((1 + u / s)^(q/2) - 1) keeps exactly one minimiser and lets the
fit choose the growth exponent q.

Example (shifted Alpine 1, seed 0, one thread)::

    python bench/probe_growth_head.py --function alpine1 --dim 100 --budget-s 120
"""

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openmm_actionmin.benchmarks.synthetic import make_system  # noqa: E402
from openmm_actionmin.search.action import ActionConfig, ActionTrainer  # noqa: E402


class LearnedGrowthTrainer(ActionTrainer):
    """ActionTrainer whose PLNet has the learned-growth head."""

    growth = "learned"
    head_lr = 0.05
    fast = ("c", "log_q", "log_s")

    learn_bounds = True
    decay = False

    def _round(self):
        if self.decay and self.head_lr > 0 and self.config.budget_s:
            frac = min(self._elapsed() / self.config.budget_s, 1.0)
            self.optimizer.param_groups[1]["lr"] = self.head_lr * max(0.02, 1.0 - frac)
        return super()._round()

    def _model_config(self):
        return dataclasses.replace(super()._model_config(), growth=self.growth, learn_bounds=self.learn_bounds)

    def _build_model(self) -> None:
        super()._build_model()
        head = set(self.fast)
        others = [p for name, p in self.model.named_parameters() if name not in head]
        scalars = [p for name, p in self.model.named_parameters() if name in head]
        if self.head_lr > 0:
            self.optimizer = torch.optim.Adam([{"params": others}, {"params": scalars, "lr": self.head_lr}], lr=self.config.lr)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--function", default="alpine1")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget-s", type=float, default=120.0)
    p.add_argument("--growth", default="learned", choices=("learned", "quadratic"))
    p.add_argument("--no-shift", action="store_true")
    p.add_argument("--head-lr", type=float, default=0.05, help="learning rate of the fast parameters (0: the trainer's lr)")
    p.add_argument("--fast", default="c,log_q,log_s", help="comma-separated parameter names trained at --head-lr "
                   "(add bilipnet.orthogonal.0.bias to move the minimiser fast)")
    p.add_argument("--fixed-bounds", action="store_true", help="keep the BiLipNet bounds mu, nu fixed")
    p.add_argument("--decay", action="store_true", help="decay the fast learning rate linearly to 2%% over the budget")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="ActionConfig override, e.g. --set warm_start_steps=2000 (repeatable)")
    args = p.parse_args()
    overrides = {k: type(getattr(ActionConfig, k))(v) for k, v in (item.split("=", 1) for item in args.set)}
    torch.set_num_threads(1)
    system = make_system(args.function, args.dim, args.seed, shifted=not args.no_shift)
    LearnedGrowthTrainer.growth = args.growth
    LearnedGrowthTrainer.head_lr = args.head_lr
    LearnedGrowthTrainer.learn_bounds = not args.fixed_bounds
    LearnedGrowthTrainer.decay = args.decay
    LearnedGrowthTrainer.fast = tuple(args.fast.split(","))
    trainer = LearnedGrowthTrainer(system, ActionConfig(seed=args.seed, budget_s=args.budget_s, **overrides))
    result = trainer.run()
    print("round wall_s candidate_distance best_distance trajectory_loss regression_loss q")
    history = result.history
    for row in history[:: max(1, len(history) // 10)] + [history[-1]]:
        print(row["round"], round(row["wall_s"]), round(row["candidate_distance"], 1), round(row["best_distance"], 1),
              round(row["trajectory_loss"], 3), round(row["regression_loss"], 3))
    print("final growth exponent q =", round(trainer.model.growth_exponent, 3), "best distance", round(history[-1]["best_distance"], 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
