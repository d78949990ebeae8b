"""Synthetic loop chains: bead chains whose bead ``i`` attracts bead ``i + 10``.

Two variants of the test problem of Dehmamy et al. (NeurIPS 2024), in reduced
units (energies in epsilon, lengths in sigma), as batched torch oracles
``x [B, n, 3] -> energy [B]`` with autograd forces:

* ``"bond_lj"``: harmonic bonds ``sum_i (r_{i,i+1} - 1)^2`` plus a weak
  Lennard-Jones (12, 6) pair ``loop_weight * LJ(r_{i,i+10})``;
* ``"pure_lj"``: every interaction is Lennard-Jones,
  ``sum_{i<j} A_ij LJ(r_ij)`` with the coupling ``A = A_bond + loop_weight *
  A_loop`` (``A_bond`` joins ``i, i+1``, ``A_loop`` joins ``i, i+10``).

``LJ(r) = 4 ((sigma/r)^12 - (sigma/r)^6)`` with ``sigma = 1``; pairs that are
neither bonded nor loop pairs do not interact. Every interacting pair can sit
at its own minimum at once (bond length 1 or ``2^(1/6)``, loop contact at
``2^(1/6)``), so the global minimum energy is known exactly
(:meth:`LoopChainOracle.ideal_energy`) and is reached by a helix with ten beads
per turn (:func:`ideal_loop_chain`). From a random walk the loop contacts are
far apart and feel almost no force (the LJ tail decays as ``r^-7``), which is
what makes the problem hard for descent in Cartesian coordinates.

:func:`loop_formed` measures how far a configuration has folded: the fraction
of ``i, i+10`` contacts closer than ``1.5 sigma``.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch

from .base import REDUCED_UNITS, OracleError, TorchOracle

#: The loop-chain variants.
LOOP_VARIANTS = ("bond_lj", "pure_lj")
#: Sequence offset of the attracting pairs.
LOOP_OFFSET = 10
#: Separation of the Lennard-Jones pair minimum (sigma = 1).
LJ_MIN = 2.0 ** (1.0 / 6.0)
#: A loop contact counts as formed below this separation (sigma).
CONTACT_CUTOFF = 1.5


def _check(n: int, variant: str) -> None:
    if variant not in LOOP_VARIANTS:
        raise OracleError(f"unknown loop-chain variant {variant!r}; choose one of {', '.join(LOOP_VARIANTS)}")
    if int(n) != n or n <= LOOP_OFFSET:
        raise OracleError(f"a loop chain needs an integer number of beads above {LOOP_OFFSET}, got {n}")


class LoopChainOracle(TorchOracle):
    """Energy of an ``n``-bead loop chain (reduced units, no cutoff).

    Args:
        n: Number of beads (more than 10).
        variant: ``"bond_lj"`` or ``"pure_lj"``.
        loop_weight: Weight of the ``i, i+10`` Lennard-Jones pairs (0.1: the
            paper's ``A_bond + 0.1 A_loop``).
        dtype: Floating dtype.
        device: Torch device.
        **kwargs: Passed to :class:`~.base.EnergyOracle` (``transform``,
            ``nonfinite_energy``).
    """

    def __init__(
        self,
        n: int,
        variant: str = "bond_lj",
        *,
        loop_weight: float = 0.1,
        dtype: torch.dtype = torch.float64,
        device: Union[str, torch.device] = "cpu",
        **kwargs,
    ) -> None:
        _check(n, variant)
        if not (loop_weight > 0 and math.isfinite(loop_weight)):
            raise OracleError(f"loop_weight must be positive and finite, got {loop_weight}")
        super().__init__(n_atoms=int(n), units=REDUCED_UNITS, dtype=dtype, device=device, **kwargs)
        self.variant = variant
        self.loop_weight = float(loop_weight)
        n = int(n)
        self._bond_i = torch.arange(n - 1, device=self.device)
        self._loop_i = torch.arange(n - LOOP_OFFSET, device=self.device)

    @staticmethod
    def _lj(r2: torch.Tensor) -> torch.Tensor:
        inv6 = 1.0 / (r2 * r2 * r2)
        return 4.0 * (inv6 * inv6 - inv6)

    def energy_fn(self, x: torch.Tensor) -> torch.Tensor:
        """Raw energy ``[B]`` of ``x [B, n, 3]``."""
        bond = x[:, self._bond_i + 1] - x[:, self._bond_i]
        loop = x[:, self._loop_i + LOOP_OFFSET] - x[:, self._loop_i]
        loop_e = self.loop_weight * self._lj((loop * loop).sum(-1)).sum(-1)
        if self.variant == "bond_lj":
            r = torch.linalg.vector_norm(bond, dim=-1)
            return ((r - 1.0) ** 2).sum(-1) + loop_e
        return self._lj((bond * bond).sum(-1)).sum(-1) + loop_e

    @property
    def bond_length(self) -> float:
        """Bond length at the bond term's minimum (1, or ``2^(1/6)`` for pure LJ)."""
        return 1.0 if self.variant == "bond_lj" else LJ_MIN

    def ideal_energy(self) -> float:
        """The global minimum energy: every bond and every loop pair at its own minimum."""
        n = self.n_atoms
        loops = -self.loop_weight * (n - LOOP_OFFSET)
        return loops if self.variant == "bond_lj" else loops - (n - 1)

    def ideal_shape(self) -> torch.Tensor:
        """A global minimum ``[n, 3]``: the helix of :func:`ideal_loop_chain` for this variant."""
        return ideal_loop_chain(self.n_atoms, self.bond_length, dtype=self.dtype, device=self.device)


def ideal_loop_chain(
    n: int,
    bond: float = 1.0,
    contact: float = LJ_MIN,
    *,
    dtype: torch.dtype = torch.float64,
    device: Union[str, torch.device] = "cpu",
) -> torch.Tensor:
    """A helix of ``n`` beads, ten per turn, with every ``i, i+10`` pair in contact.

    Consecutive beads are ``bond`` apart and bead ``i + 10`` sits ``contact``
    above bead ``i`` (the rise per bead is ``contact / 10``), so every bond and
    every loop pair of a loop chain is at its minimum.

    Args:
        n: Number of beads.
        bond: Bond length (sigma).
        contact: Separation of the ``i, i+10`` pairs (sigma); less than ``10 * bond``.
        dtype: Floating dtype.
        device: Torch device.

    Returns:
        Positions ``[n, 3]``, centred at the origin.
    """
    rise = contact / LOOP_OFFSET
    if not (0 < rise < bond):
        raise ValueError(f"ideal_loop_chain needs 0 < contact < 10 * bond, got contact={contact}, bond={bond}")
    angle = 2.0 * math.pi / LOOP_OFFSET
    radius = math.sqrt(bond * bond - rise * rise) / (2.0 * math.sin(angle / 2.0))
    k = torch.arange(n, dtype=torch.float64)
    x = torch.stack([radius * torch.cos(angle * k), radius * torch.sin(angle * k), rise * k], dim=-1)
    x = x - x.mean(0)
    return x.to(dtype=dtype, device=device)


def random_walk_chain(
    n: int,
    bond: float = 1.0,
    *,
    generator: Optional[torch.Generator] = None,
    min_separation: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A self-avoiding random walk of ``n`` beads ``[n, 3]`` with steps of ``bond``, centred.

    Each step is a random unit direction, redrawn (up to 50 times) while the new
    bead comes closer than ``min_separation`` to an earlier one.
    """
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    pts = torch.zeros(n, 3, dtype=torch.float64)
    for i in range(1, n):
        for _ in range(50):
            d = torch.randn(3, generator=gen, dtype=torch.float64)
            cand = pts[i - 1] + bond * d / d.norm()
            if i < 2 or float((pts[: i - 1] - cand).norm(dim=-1).min()) >= min_separation:
                break
        pts[i] = cand
    return (pts - pts.mean(0)).to(dtype)


def loop_formed(x: torch.Tensor, cutoff: float = CONTACT_CUTOFF) -> torch.Tensor:
    """Fraction of ``i, i+10`` contacts closer than ``cutoff`` (sigma).

    Args:
        x: Positions ``[n, 3]`` or a batch ``[B, n, 3]``.
        cutoff: Contact distance.

    Returns:
        A scalar tensor, or ``[B]`` for a batch.
    """
    xb = x if x.dim() == 3 else x[None]
    d = torch.linalg.vector_norm(xb[:, LOOP_OFFSET:] - xb[:, :-LOOP_OFFSET], dim=-1)
    frac = (d < cutoff).to(torch.float64).mean(-1)
    return frac if x.dim() == 3 else frac[0]
