#!/usr/bin/env python
"""Probe: does a monotone power transform of the energy remove the box-centre bias? (not shipped)

Why: f = 1/2 ||g||^2 + c grows quadratically away from its minimiser, Alpine 1
about linearly and Schaffer F7 like |x|^0.5, so a box-wide fit is pulled to the
box centre. A monotone transform T keeps the argmin of U, so fitting T(U)
with quadratic growth is legitimate. Two measurements:

* ``--quadfit``: a separable quadratic least-squares fit (features 1, s_i,
  s_i^2) of T(U) on 16384 uniform samples; prints the distance of its vertex
  to the shifted minimum for several T.
* otherwise: the action trainer fitted to ``sign(u) |u|^p`` with
  ``u = (T_fin(U) - min_warm) / std_warm`` (``T_fin`` the trainer's
  FiniteEnergy transform, min/std over the warm-start samples), which is
  strictly increasing in U; prints per-round distances.

Examples (one thread)::

    python bench/experiments/probe_growth_transform.py --quadfit
    python bench/experiments/probe_growth_transform.py --function alpine1 --seed 0 --power 2 --offset-init data
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from openmm_actionmin.benchmarks.synthetic import make_system  # noqa: E402
from openmm_actionmin.search.action import ActionConfig, ActionTrainer  # noqa: E402
from probe_growth_head import print_history  # noqa: E402


def quadfit(dim: int, seed: int, n: int = 16384) -> None:
    for fn in ("alpine1", "schaffer_f7"):
        system = make_system(fn, dim, seed)
        o = torch.as_tensor(system.reference_positions, dtype=torch.float64).reshape(-1)
        z = system.space.sample(n, generator=torch.Generator().manual_seed(1)).double()
        u, _ = system.oracle.energy_and_forces(system.space.to_config(z), transform=None)
        u = u.double()
        h = float(system.space.upper.double().max())
        s = z / h
        x = torch.cat([torch.ones(n, 1, dtype=torch.float64), s, s**2], 1)
        umin = u.min()
        print(
            f"{fn}: U mean {float(u.mean()):.4g} std {float(u.std()):.4g} min {float(umin):.4g}; "
            f"distance of the lowest sample {float((z[u.argmin()] - o).norm()):.1f}; of the box centre "
            f"{float(o.norm()):.1f}"
        )
        for name, y in [
            ("U", u),
            ("U^1.5", u**1.5),
            ("U^2", u**2),
            ("U^3", u**3),
            ("(U-Umin)^2", (u - umin) ** 2),
            ("log U", u.log()),
        ]:
            y = (y - y.mean()) / y.std()
            coef = torch.linalg.lstsq(x, y.unsqueeze(1)).solution.squeeze(1)
            b, a = coef[1 : dim + 1], coef[dim + 1 :]
            vertex = (-b / (2 * a)).clamp(-1, 1) * h
            print(f"  T = {name:11s} vertex distance {float((vertex - o).norm()):7.1f}")


class PowerTrainer(ActionTrainer):
    """ActionTrainer regressing ``sign(u) |u|^power`` instead of the normalised energy."""

    power = 2.0
    u0 = 0.0
    scale = 1.0

    def _pow(self, energy: torch.Tensor) -> torch.Tensor:
        if self.transform is not None:
            energy = self.transform(energy)[0]
        u = (energy - self.u0) / self.scale
        return torch.sign(u) * u.abs() ** self.power

    def _normalise(self, energy: torch.Tensor) -> torch.Tensor:
        return (self._pow(energy) - self.energy_mean) / self.energy_std

    def _fit_normalisation(self, raw: torch.Tensor) -> None:
        super()._fit_normalisation(raw)
        t = self.transform(raw)[0] if self.transform is not None else raw
        self.u0, self.scale = float(t.min()), float(t.std())
        tp = self._pow(raw)
        self.energy_mean, self.energy_std = float(tp.mean()), float(tp.std())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quadfit", action="store_true")
    p.add_argument("--function", default="alpine1")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget-s", type=float, default=120.0)
    p.add_argument("--power", type=float, default=2.0)
    p.add_argument("--offset-init", default="data", choices=["zero", "data"])
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.quadfit:
        quadfit(args.dim, args.seed)
        return 0
    PowerTrainer.power = args.power
    system = make_system(args.function, args.dim, args.seed)
    result = PowerTrainer(
        system, ActionConfig(seed=args.seed, budget_s=args.budget_s, offset_init=args.offset_init)
    ).run()
    print_history(result.history)
    return 0


if __name__ == "__main__":
    sys.exit(main())
