"""Loop-chain systems: the synthetic bead chains of :mod:`openmm_actionmin.oracles.loops`.

A loop chain is an atomic system of the ``cluster`` kind (reduced units, a
torch oracle). Its start is a seeded self-avoiding random walk, its
``reference_energy`` the exact global minimum and its ``reference_positions``
the ideal helix.
"""

from __future__ import annotations

from typing import Union

import torch

from ..oracles.loops import LoopChainOracle, loop_formed, random_walk_chain
from ..spaces import Displacement
from .base import System


def loop_chain(
    n: int,
    variant: str = "bond_lj",
    *,
    seed: int = 0,
    loop_weight: float = 0.1,
    dtype: torch.dtype = torch.float64,
    device: Union[str, torch.device] = "cpu",
) -> System:
    """An ``n``-bead loop chain started from a random walk.

    Args:
        n: Number of beads (more than 10).
        variant: ``"bond_lj"`` or ``"pure_lj"``.
        seed: Seed of the random-walk start.
        loop_weight: Weight of the ``i, i+10`` Lennard-Jones pairs.
        dtype: Oracle dtype.
        device: Oracle device.

    Returns:
        A :class:`System` named ``"loop_<variant>_<n>"``; its space is a
        Cartesian displacement of up to ``n / 4`` sigma around the start.
    """
    oracle = LoopChainOracle(n, variant, loop_weight=loop_weight, dtype=dtype, device=device)
    start = random_walk_chain(n, oracle.bond_length, generator=torch.Generator().manual_seed(int(seed)), dtype=dtype)
    start = start.to(device)
    return System(
        name=f"loop_{variant}_{n}",
        oracle=oracle,
        space=Displacement(start, max(2.0, n / 4.0)),
        reference_energy=oracle.ideal_energy(),
        reference_positions=oracle.ideal_shape(),
        start_positions=start,
        symbols=["C"] * n,
        types=[0] * n,
        metadata={
            "model": f"loop chain ({variant})",
            "variant": variant,
            "loop_weight": loop_weight,
            "seed": int(seed),
            "loop_formed_start": float(loop_formed(start)),
        },
    )
