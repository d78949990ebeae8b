#!/usr/bin/env python
"""Probe: one action (or random-only) run with ActionConfig overrides, printing the per-round history.

The probe behind the round-bowl model (``openmm_actionmin.search.action_config.BOWL_MODEL``).
Why a learned growth head: f = 1/2 ||g||^2 + c grows quadratically away from its minimiser,
while the envelope of Alpine 1 grows linearly and that of Schaffer F7 like |x|^(1/2). Least
squares then puts the bowl's bottom between the true minimum and the middle of the sampled
box (a separable quadratic fitted to 1e5 uniform samples lands ~190 from the shifted minimum
at D = 100). A strictly increasing head h(u) = (2 s / q)((1 + u / s)^(q/2) - 1) keeps exactly
one minimiser and lets the fit choose the growth exponent q. Why a near-isometric g and a fast
placement rate: a flexible BiLipNet fits the samples as well but its minimiser is not pinned by
them, and at lr 1e-3 the minimiser moves ~1e-3 box half-widths per step.

Examples (shifted functions, seed 0, one thread)::

    python bench/experiments/probe_growth_head.py --function alpine1 --bowl                   # BOWL_MODEL
    python bench/experiments/probe_growth_head.py --function alpine1 --bowl --set action_weight=0   # random-only
    python bench/experiments/probe_growth_head.py --function alpine1 --set model_growth=learned --set placement_lr=0.05
    # placement learning rate decaying to 2 %:
    python bench/experiments/probe_growth_head.py --function schaffer_f7 --bowl --decay
    # another offset learning rate:
    python bench/experiments/probe_growth_head.py --dim 1000 --budget-s 300 --set offset_lr=0.05
    python bench/experiments/probe_growth_head.py --function schaffer_f7 --dim 1000 --budget-s 450 --synthetic \
        --set fresh_batch=1024 --save run.json --record-candidates cands.pt   # record candidates
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from openmm_actionmin.benchmarks.synthetic import make_system  # noqa: E402
from openmm_actionmin.search.action import BOWL_MODEL, SYNTHETIC_ACTION, ActionConfig, ActionTrainer  # noqa: E402


class DecayingPlacementTrainer(ActionTrainer):
    """ActionTrainer whose placement learning rate decays linearly to 2 % over the budget."""

    def _round(self):
        lr0 = self.config.placement_lr
        if lr0 is not None and self.config.budget_s:
            frac = min(self._elapsed() / self.config.budget_s, 1.0)
            for group in self.optimizer.param_groups[1:2]:
                group["lr"] = lr0 * max(0.02, 1.0 - frac)
        return super()._round()


class RatePastFloorTrainer(ActionTrainer):
    """ActionTrainer whose translation rate keeps shrinking after the trust region reaches its floor.

    The rate follows ``placement_lr * r ** translation_region_power`` where ``r`` shrinks with the
    region but has a floor of 1e-4 instead of ``region_min``; sampling keeps the region's floor
    (not adopted).
    """

    RATE_FLOOR = 1e-4

    def __init__(self, *args, **kwargs):
        self.rate_radius = 1.0
        super().__init__(*args, **kwargs)

    def _translation_lr(self, radius=None) -> float:
        """The base rule at this probe's own radius (``rate_radius``); a given ``radius`` wins."""
        return super()._translation_lr(self.rate_radius if radius is None else radius)

    def _update_region(self, improved: bool) -> None:
        super()._update_region(improved)
        if self.config.region == "trust" and not improved and self.region_stall == 0:  # the patience ran out
            self.rate_radius = max(self.RATE_FLOOR, self.rate_radius * self.config.region_shrink)
            self._refresh_translation_lr()


def print_history(history) -> None:
    """Print about ten rows of a trainer history (round, time, distances, losses)."""
    print("round wall_s candidate_distance best_distance trajectory_loss regression_loss")
    for row in history[:: max(1, len(history) // 10)] + [history[-1]]:
        print(
            row["round"],
            round(row["wall_s"]),
            round(row["candidate_distance"], 1),
            round(row["best_distance"], 1),
            round(row["trajectory_loss"], 3),
            round(row["regression_loss"], 3),
        )


def _parse_overrides(items):
    out = {}
    for item in items:
        key, value = item.split("=", 1)
        default = getattr(ActionConfig, key)
        if isinstance(default, bool):
            out[key] = value.lower() in ("1", "true", "yes")
        elif default is None:
            out[key] = float(value)
        else:
            out[key] = type(default)(value)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--function", default="alpine1")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget-s", type=float, default=120.0)
    p.add_argument("--no-shift", action="store_true")
    p.add_argument("--bowl", action="store_true", help="start from BOWL_MODEL")
    p.add_argument("--synthetic", action="store_true", help="start from SYNTHETIC_ACTION (the benchmark's action)")
    p.add_argument(
        "--decay", action="store_true", help="decay the placement learning rate linearly to 2%% over the budget"
    )
    p.add_argument(
        "--rate-past-floor",
        action="store_true",
        help="keep shrinking the translation rate after the trust region reaches its floor",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="ActionConfig override, e.g. --set warm_start_steps=2000 (repeatable)",
    )
    p.add_argument("--save", default=None, help="write the Result (with its per-round history) to this JSON file")
    p.add_argument(
        "--record-candidates",
        default=None,
        metavar="FILE",
        help="torch.save every round's candidate [rounds, d] and the minimum's location to FILE",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    system = make_system(args.function, args.dim, args.seed, shifted=not args.no_shift)
    base = SYNTHETIC_ACTION if args.synthetic else BOWL_MODEL if args.bowl else {}
    settings = {**base, **_parse_overrides(args.set)}
    trainer_cls = (
        DecayingPlacementTrainer if args.decay else RatePastFloorTrainer if args.rate_past_floor else ActionTrainer
    )
    trainer = trainer_cls(system, ActionConfig(seed=args.seed, budget_s=args.budget_s, **settings))
    candidates = []  # every round's candidate z [d], for offline analysis (e.g. averaging)

    def record(row):
        candidates.append(trainer.last_candidate.float().clone())

    result = trainer.run(on_round=record if args.record_candidates else None)
    print_history(result.history)
    if args.save:
        result.save(args.save)
    if args.record_candidates:
        reference = torch.as_tensor(system.reference_positions).reshape(-1).float()
        torch.save({"z": torch.stack(candidates), "reference": reference}, args.record_candidates)
    print(
        "final growth exponent q =",
        round(trainer.model.growth_exponent, 3),
        "best distance",
        round(result.history[-1]["best_distance"], 1),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
