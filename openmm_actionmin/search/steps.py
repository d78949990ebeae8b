"""Basin-hopping pieces, pele-style: step proposals, acceptance, storage.

Each piece is a small object with one job, so :func:`~.basin_hopping.basin_hopping`
can be assembled from different parts:

* proposals (``propose(x [k, N, 3], step_size [k], generator) -> [k, N, 3]``):
  :class:`RandomDisplacement` (uniform per-atom displacement in a cube of
  half-width ``step_size``) and :class:`AngularMove` (the surface move used for
  LJ clusters: re-seat the least-coordinated atoms at random points on the
  cluster's surface sphere), combined by :class:`ClusterStep`;
* acceptance (``accept(e_new [k], e_old [k], generator) -> bool [k]``):
  :class:`Metropolis`;
* step-size control: :class:`AdaptiveStepSize` (per walker, target acceptance);
* confinement: :class:`Container` (recentre, pull back evaporated atoms, flag
  structures with atoms outside the container);
* storage: :class:`MinimaDatabase` (the lowest distinct minima by energy and,
  optionally, permutation-invariant fingerprint).

The pieces that plug cluster basin hopping into the one loop
(:class:`~.hopping.BasinHoppingLoop`) are here too: :class:`ClusterProposal`
(a step with per-walker adaptive step sizes, the container, and random
restarts of walkers without a minimum), :class:`BatchQuench` (the streamed
batched L-BFGS or FIRE quench of :mod:`.local`), :class:`GoWithTheWinners`
(reseeding) and :class:`BatchPolish`.

All random numbers come from a caller-owned ``torch.Generator`` (CPU), so runs
are reproducible from a seed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..geometry import fingerprint
from .hopping import Quenched
from .local import make_minimizer


def _rand(shape, generator: Optional[torch.Generator], like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64, device="cpu").to(
        device=like.device, dtype=like.dtype
    )


def _randn(shape, generator: Optional[torch.Generator], like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float64, device="cpu").to(
        device=like.device, dtype=like.dtype
    )


# ---------------------------------------------------------------- proposals
class RandomDisplacement:
    """Displace every atom uniformly within ``[-s, s]^3`` (s per walker)."""

    def propose(
        self, x: torch.Tensor, step_size: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """New configurations.

        Args:
            x: Current minima ``[k, N, 3]``.
            step_size: Half-width per walker ``[k]``.
            generator: Torch generator.

        Returns:
            ``[k, N, 3]``.
        """
        u = 2.0 * _rand(x.shape, generator, x) - 1.0
        return x + u * step_size.reshape(-1, *([1] * (x.dim() - 1)))


@dataclasses.dataclass
class AngularMove:
    """Re-seat the least-coordinated atoms on the cluster's surface sphere.

    The ``n_atoms`` atoms with the fewest neighbours within ``neighbour_cutoff``
    are moved to uniformly random directions at the radius of the outermost
    atom (measured from the centroid). This "angular" or surface move helps
    LJ clusters re-arrange their surface without melting the core.

    Attributes:
        n_atoms: Atoms moved per proposal.
        neighbour_cutoff: Distance defining a neighbour (length units).
    """

    n_atoms: int = 1
    neighbour_cutoff: float = 1.3

    def propose(
        self, x: torch.Tensor, step_size: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """New configurations ``[k, N, 3]`` (``step_size`` is unused)."""
        k, n, _ = x.shape
        centre = x.mean(dim=1, keepdim=True)
        rel = x - centre
        radius = torch.linalg.vector_norm(rel, dim=-1).amax(dim=1)
        d = torch.cdist(x, x)
        coord = (d < self.neighbour_cutoff).sum(-1) - 1
        # random tie breaking among equally coordinated atoms
        score = coord.to(x.dtype) + 0.5 * _rand((k, n), generator, x)
        moved = torch.topk(score, min(self.n_atoms, n), dim=1, largest=False).indices
        direction = _randn((k, moved.shape[1], 3), generator, x)
        direction = direction / torch.linalg.vector_norm(direction, dim=-1, keepdim=True)
        new = x.clone()
        new.scatter_(1, moved[..., None].expand(-1, -1, 3), centre + radius[:, None, None] * direction)
        return new


class ExchangeMove:
    """Swap the positions of atoms of different types (binary and multi-component clusters).

    Each proposal exchanges ``n_swaps`` random pairs of atoms whose types
    differ, leaving the geometry as it is: the combinatorial half of a
    multi-component cluster's search (which site holds which element), which
    displacements reach only by melting the cluster. The field's "exchange"
    or "swap" move for binary Lennard-Jones clusters.

    Args:
        types: Atom type index per atom ``[N]``; at least two types.
        n_swaps: Pairs exchanged per proposal.

    Raises:
        ValueError: fewer than two types, or ``n_swaps < 1``.
    """

    def __init__(self, types: Sequence[int], n_swaps: int = 1) -> None:
        self.types = torch.as_tensor(list(types), dtype=torch.long)
        if int(torch.unique(self.types).numel()) < 2:
            raise ValueError("an exchange move needs atoms of at least two types")
        if n_swaps < 1:
            raise ValueError(f"n_swaps must be >= 1, got {n_swaps}")
        self.n_swaps = int(n_swaps)

    def propose(
        self, x: torch.Tensor, step_size: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """New configurations ``[k, N, 3]`` (``step_size`` is unused)."""
        k, n, _ = x.shape
        if self.types.numel() != n:
            raise ValueError(f"exchange move: {self.types.numel()} types for {n} atoms")
        new = x.clone()
        for _ in range(self.n_swaps):
            i = torch.randint(n, (k,), generator=generator)
            # a partner of another type than atom i, uniform among them
            other = (self.types[None, :] != self.types[i][:, None]).to(torch.float64)
            j = torch.multinomial(other, 1, generator=generator)[:, 0].to(x.device)
            i, rows = i.to(x.device), torch.arange(k, device=x.device)
            xi = new[rows, i].clone()
            new[rows, i] = new[rows, j]
            new[rows, j] = xi
        return new


def _rotation(axis: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotation matrices ``[A, 3, 3]`` by ``angle`` about unit axes ``[A, 3]`` (Rodrigues)."""
    a = axis
    zero = torch.zeros_like(a[:, 0])
    k = torch.stack(
        [
            torch.stack([zero, -a[:, 2], a[:, 1]], -1),
            torch.stack([a[:, 2], zero, -a[:, 0]], -1),
            torch.stack([-a[:, 1], a[:, 0], zero], -1),
        ],
        1,
    )
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand_as(k)
    return eye + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


@dataclasses.dataclass
class SymmetryMove:
    """Complete a partly symmetric cluster: move stray surface atoms into the sites its symmetry asks for.

    A move in the spirit of the field's symmetrisation and core-completion
    schemes for atomic clusters (Oakley, Johnston and Wales, PCCP 2013). For
    each walker's minimum:

    1. The core is the half of the atoms nearest the centroid; the centre is
       the core's centroid. Lengths are measured in the structure's own median
       nearest-neighbour distance ``d``, so the move needs no units.
    2. Candidate point operations about the centre: rotations by ``2 pi / n``
       (``n`` in ``orders``) and the reflections perpendicular to axes through
       the core's atoms, the midpoints of neighbouring core atoms and the
       core's principal axes, plus the inversion.
    3. An operation qualifies when it maps at least ``core_match`` of the core
       onto atoms (within ``tolerance * d``) without mapping every atom; among
       those, one of the ``choose_from`` that match the most atoms is drawn.
    4. Its images of atoms that land on no atom, are clear of every atom
       (``>= 0.8 d``) and touch at least three atoms are vacant sites of the
       symmetric structure. Atoms whose own image is unmatched move into
       them, the least coordinated atom into the best surrounded site, as long
       as the site has more neighbours than the atom (at most ``max_moved``);
       the quench that follows settles them.

    A walker for which no operation qualifies, or nothing is vacant, gets
    ``None`` back, and :class:`ClusterStep` gives it a random displacement.

    Attributes:
        max_moved: Most atoms moved per proposal.
        tolerance: Distance, in nearest-neighbour distances, within which an
            image matches an atom.
        core_match: Fraction of the core an operation must map onto atoms.
        orders: Rotation orders tried about each axis.
        choose_from: The best operations one is drawn from.
    """

    max_moved: int = 3
    tolerance: float = 0.2
    core_match: float = 0.8
    orders: Tuple[int, ...] = (2, 3, 4, 5, 6)
    choose_from: int = 3

    def __post_init__(self) -> None:
        if self.max_moved < 1 or not self.tolerance > 0 or not 0 < self.core_match <= 1 or self.choose_from < 1:
            raise ValueError(
                "SymmetryMove needs max_moved >= 1, tolerance > 0, core_match in (0, 1] and choose_from >= 1"
            )
        if not self.orders or min(self.orders) < 2:
            raise ValueError(f"SymmetryMove orders must be integers >= 2, got {self.orders}")

    def operations(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Candidate operations of one structure.

        Two centres are tried: the core's centroid and the atom nearest to it
        (icosahedra and decahedra have an atom at their centre).

        Args:
            x: One structure ``[N, 3]``.

        Returns:
            ``(ops [K, 3, 3], centres [K, 3], core bool [N])``; operation ``k``
            maps ``x`` to ``(x - centres[k]) @ ops[k]^T + centres[k]``.
        """
        n = x.shape[0]
        rel = x - x.mean(0)
        core = torch.zeros(n, dtype=torch.bool, device=x.device)
        core[torch.argsort(torch.linalg.vector_norm(rel, dim=-1))[: max(2, (n + 1) // 2)]] = True
        d = torch.cdist(x[core], x[core])
        d.fill_diagonal_(float("inf"))
        nn = d.amin(1).median()
        i, j = torch.nonzero(torch.triu(d < 1.2 * nn), as_tuple=True)
        centroid = x[core].mean(0)
        nearest = x[torch.argmin(torch.linalg.vector_norm(x - centroid, dim=-1))]
        eye = torch.eye(3, dtype=x.dtype, device=x.device)
        all_ops, all_centres = [], []
        for centre in (centroid, nearest):
            c = x[core] - centre
            _, vecs = torch.linalg.eigh(c.T @ c)
            axes = torch.cat([vecs.T, c, 0.5 * (c[i] + c[j])])
            norm = torch.linalg.vector_norm(axes, dim=-1)
            axes = axes[norm > 0.25 * nn] / norm[norm > 0.25 * nn, None]
            # one axis per direction (a and -a give the same operations)
            keep: List[int] = []
            for a in range(axes.shape[0]):
                if not keep or float((axes[keep] @ axes[a]).abs().max()) < 0.995:
                    keep.append(a)
            axes = axes[keep]
            ops = [_rotation(axes, 2.0 * math.pi / m) for m in self.orders]
            ops.append(eye - 2.0 * axes[:, :, None] * axes[:, None, :])
            ops.append(-eye[None])
            ops_c = torch.cat(ops)
            all_ops.append(ops_c)
            all_centres.append(centre.expand(ops_c.shape[0], 3))
        return torch.cat(all_ops), torch.cat(all_centres), core

    def propose_one(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> Optional[torch.Tensor]:
        """The move for one structure ``[N, 3]``, or ``None`` where it finds nothing to complete."""
        n = x.shape[0]
        if n < 4:
            return None
        ops, centres, core = self.operations(x)
        d_all = torch.cdist(x, x)
        d_all.fill_diagonal_(float("inf"))
        nn = float(d_all.amin(1).median())
        images = torch.einsum("kij,knj->kni", ops, x[None] - centres[:, None]) + centres[:, None]  # [K, N, 3]
        dist = torch.cdist(images, x.expand(ops.shape[0], n, 3))  # [K, N, N]
        gap = dist.amin(-1)  # [K, N]
        matched = gap < self.tolerance * nn
        support = (dist < 1.2 * nn).sum(-1)  # [K, N]
        vacant = (gap >= 0.8 * nn) & (support >= 3)
        stray = ~matched & ~core
        coord = (d_all < 1.2 * nn).sum(1)
        big = n + 1
        site_support = torch.where(vacant, support, torch.full_like(support, -1))
        best_site = site_support.argmax(1)  # [K]
        best_mover = torch.where(stray, coord[None], torch.full_like(support, big)).argmin(1)  # [K]
        rows = torch.arange(ops.shape[0], device=x.device)
        # a move gains when the site has more neighbours than the atom had, the atom itself not counted
        self_count = (torch.linalg.vector_norm(images[rows, best_site] - x[best_mover], dim=-1) < 1.2 * nn).long()
        gains = site_support[rows, best_site] - self_count > coord[best_mover]
        usable = (matched[:, core].to(x.dtype).mean(1) >= self.core_match) & stray.any(1) & vacant.any(1) & gains
        if not bool(usable.any()):
            return None
        # the most atoms in place, plus how well the best vacant site is surrounded
        score = matched.sum(1) + site_support[rows, best_site]
        score = torch.where(usable, score.to(x.dtype), torch.full_like(score, -1, dtype=x.dtype))
        top = torch.topk(score, min(self.choose_from, int(usable.sum())))
        pick = top.indices[int(torch.randint(top.indices.numel(), (1,), generator=generator))]
        sites = images[pick]
        # distinct vacant sites, best surrounded first
        order = torch.argsort(-support[pick].to(x.dtype) - 0.1 * _rand((n,), generator, x))
        vacancies: List[int] = []
        for s in order.tolist():
            if bool(vacant[pick, s]) and all(float(torch.dist(sites[s], sites[v])) > 0.8 * nn for v in vacancies):
                vacancies.append(s)
        movers = torch.nonzero(stray[pick], as_tuple=True)[0]
        movers = movers[torch.argsort(coord[movers].to(x.dtype) + 0.5 * _rand((movers.numel(),), generator, x))]
        # pair the least coordinated movers with the best surrounded sites while the atom gains neighbours
        m = 0
        while m < min(self.max_moved, len(vacancies), movers.numel()):
            site = sites[vacancies[m]]
            own = int(float(torch.dist(site, x[movers[m]])) < 1.2 * nn)
            if int(support[pick, vacancies[m]]) - own <= int(coord[movers[m]]):
                break
            m += 1
        if m == 0:
            return None
        new = x.clone()
        new[movers[:m]] = sites[torch.tensor(vacancies[:m], device=x.device)]
        return new

    def propose(
        self, x: torch.Tensor, step_size: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> List[Optional[torch.Tensor]]:
        """One proposal ``[N, 3]`` (or ``None``) per structure of ``x [k, N, 3]`` (``step_size`` is unused)."""
        return [self.propose_one(xi, generator) for xi in x.unbind(0)]


@dataclasses.dataclass
class ClusterStep:
    """Random displacement, replaced by an angular, exchange or symmetry move with their probabilities.

    Each walker's proposal is a symmetry move with probability
    ``symmetry_prob`` where that move finds a site to complete, else an
    exchange move with probability ``exchange_prob`` (when ``exchange`` is
    set), else an angular move with probability ``angular_prob``, else a
    random displacement. With a probability of 0 a move draws no random
    numbers, so runs without it are unchanged.

    Attributes:
        angular_prob: Probability that a walker's proposal is an angular move.
        angular: The :class:`AngularMove` used.
        displacement: The :class:`RandomDisplacement` used.
        exchange_prob: Probability that a walker's proposal is an exchange move.
        exchange: The :class:`ExchangeMove` used (``None``: no exchanges).
        symmetry_prob: Probability that a walker's proposal is a symmetry move.
        symmetry: The :class:`SymmetryMove` used.
    """

    angular_prob: float = 0.0
    angular: AngularMove = dataclasses.field(default_factory=AngularMove)
    displacement: RandomDisplacement = dataclasses.field(default_factory=RandomDisplacement)
    exchange_prob: float = 0.0
    exchange: Optional[ExchangeMove] = None
    symmetry_prob: float = 0.0
    symmetry: SymmetryMove = dataclasses.field(default_factory=SymmetryMove)

    def propose(
        self, x: torch.Tensor, step_size: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """New configurations ``[k, N, 3]``."""
        out = self.displacement.propose(x, step_size, generator)
        if self.angular_prob > 0:
            pick = _rand((x.shape[0],), generator, x) < self.angular_prob
            if bool(pick.any()):
                out[pick] = self.angular.propose(x[pick], step_size[pick], generator)
        if self.exchange is not None and self.exchange_prob > 0:
            pick = _rand((x.shape[0],), generator, x) < self.exchange_prob
            if bool(pick.any()):
                out[pick] = self.exchange.propose(x[pick], step_size[pick], generator)
        if self.symmetry_prob > 0:
            pick = torch.nonzero(_rand((x.shape[0],), generator, x) < self.symmetry_prob, as_tuple=True)[0]
            for row, moved in zip(pick.tolist(), self.symmetry.propose(x[pick], step_size[pick], generator)):
                if moved is not None:
                    out[row] = moved
        return out


# ---------------------------------------------------------------- acceptance
@dataclasses.dataclass
class Metropolis:
    """Metropolis acceptance at a fixed temperature (energy units, k_B = 1).

    Attributes:
        temperature: ``T`` in oracle energy units (reduced for clusters).
    """

    temperature: float = 0.8

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ValueError(f"Metropolis temperature must be >= 0, got {self.temperature}")

    def accept(
        self, e_new: torch.Tensor, e_old: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """Boolean ``[k]``: accept ``e_new`` over ``e_old``.

        Downhill moves and moves from an infinite ``e_old`` are always
        accepted; an infinite ``e_new`` never is.
        """
        de = e_new - e_old
        down = (de <= 0) | torch.isinf(e_old)
        if self.temperature == 0:
            return down & torch.isfinite(e_new)
        u = _rand(e_new.shape, generator, e_new)
        with torch.no_grad():
            up = u < torch.exp(-torch.clamp(de, min=0) / self.temperature)
        return (down | up) & torch.isfinite(e_new)


class OccasionalJumping:
    """Metropolis acceptance with occasional jumps (basin hopping with occasional jumping).

    A walker whose last ``stay`` hops were all rejected is stuck in its funnel;
    its next ``jump`` hops are accepted whatever their energy (an infinite
    temperature), which carries it over the barrier, then it goes back to the
    Metropolis rule. The idea is Iwamatsu and Okabe's (Chem. Phys. Lett. 399,
    396, 2004); here the counters are per walker. Invalid (infinite) minima are
    never accepted, not even in a jump.

    Args:
        metropolis: The rule between jumps.
        stay: Consecutive rejections that trigger a jump (>= 1).
        jump: Hops accepted unconditionally in a jump (>= 1).
    """

    def __init__(self, metropolis: Metropolis, stay: int, jump: int) -> None:
        if stay < 1 or jump < 1:
            raise ValueError(f"occasional jumping needs stay >= 1 and jump >= 1, got {stay} and {jump}")
        self.metropolis = metropolis
        self.stay, self.jump = int(stay), int(jump)
        self.rejected: Dict[int, int] = {}
        self.jumping: Dict[int, int] = {}
        self.jumps = 0

    def accept_rows(
        self, rows: Sequence[int], e_new: torch.Tensor, e_old: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """Boolean ``[k]`` for the hops of walkers ``rows``: a jump's hops are accepted, the rest by Metropolis."""
        acc = self.metropolis.accept(e_new, e_old, generator)
        finite = torch.isfinite(e_new)
        for i, row in enumerate(rows):
            row = int(row)
            if self.jumping.get(row, 0) > 0:
                if bool(finite[i]):
                    acc[i] = True
                    self.jumping[row] -= 1
                continue
            if bool(acc[i]):
                self.rejected[row] = 0
                continue
            self.rejected[row] = self.rejected.get(row, 0) + 1
            if self.rejected[row] >= self.stay:
                self.rejected[row] = 0
                self.jumping[row] = self.jump
                self.jumps += 1
        return acc

    def state_dict(self) -> Dict[str, Any]:
        """Counters, for checkpoints."""
        return {"rejected": dict(self.rejected), "jumping": dict(self.jumping), "jumps": self.jumps}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.rejected = {int(k): int(v) for k, v in state["rejected"].items()}
        self.jumping = {int(k): int(v) for k, v in state["jumping"].items()}
        self.jumps = int(state["jumps"])


# ---------------------------------------------------------------- step size
@dataclasses.dataclass
class AdaptiveStepSize:
    """Per-walker step-size control toward a target acceptance rate.

    After every ``interval`` hops of a walker, its step size is divided by
    ``factor`` if its acceptance rate was above ``target`` and multiplied by
    ``factor`` otherwise, within ``[minimum, maximum]``.

    Attributes:
        target: Target acceptance rate.
        interval: Hops between adjustments.
        factor: Multiplicative adjustment (< 1).
        minimum: Smallest step size.
        maximum: Largest step size.
    """

    target: float = 0.5
    interval: int = 10
    factor: float = 0.9
    minimum: float = 0.05
    maximum: float = 2.0

    def update(self, step_size: torch.Tensor, trials: torch.Tensor, accepts: torch.Tensor) -> None:
        """Adjust ``step_size [B]`` in place and reset the counters of adjusted walkers.

        Args:
            step_size: Per-walker step sizes ``[B]`` (modified).
            trials: Hops since the last adjustment ``[B]`` (modified).
            accepts: Accepted hops since the last adjustment ``[B]`` (modified).
        """
        due = trials >= self.interval
        if not bool(due.any()):
            return
        rate = accepts[due].to(step_size.dtype) / trials[due].to(step_size.dtype)
        scale = torch.where(
            rate > self.target, torch.full_like(rate, 1.0 / self.factor), torch.full_like(rate, self.factor)
        )
        step_size[due] = torch.clamp(step_size[due] * scale, self.minimum, self.maximum)
        trials[due] = 0
        accepts[due] = 0


# ---------------------------------------------------------------- container
@dataclasses.dataclass
class Container:
    """A sphere around the centroid that keeps clusters from evaporating.

    Attributes:
        radius: Container radius (length units).
    """

    radius: float

    @staticmethod
    def default_radius(n_atoms: int, density: float = 1.0) -> float:
        """``1 + 1.5 (3 N / (4 pi density))^(1/3)``: 1.5 times a compact cluster's radius plus one."""
        return 1.0 + 1.5 * (3.0 * n_atoms / (4.0 * math.pi * density)) ** (1.0 / 3.0)

    def recentre(self, x: torch.Tensor) -> torch.Tensor:
        """Move centroids to the origin, ``[k, N, 3]``."""
        return x - x.mean(dim=1, keepdim=True)

    @staticmethod
    def centre(x: torch.Tensor) -> torch.Tensor:
        """Coordinate-wise median of the atoms ``[k, 1, 3]``: robust to a few evaporated atoms."""
        return x.median(dim=1, keepdim=True).values

    def pull_back(self, x: torch.Tensor) -> torch.Tensor:
        """Put atoms farther than ``radius`` from the median centre back at ``0.9 radius``, then recentre.

        The direction from the centre is kept. The median, not the centroid,
        is the reference so that one far-away atom does not drag the whole
        cluster outside.
        """
        c = self.centre(x)
        rel = x - c
        r = torch.linalg.vector_norm(rel, dim=-1, keepdim=True)
        outside = r > self.radius
        rel = torch.where(outside, rel * (0.9 * self.radius / torch.clamp(r, min=1e-300)), rel)
        return self.recentre(rel)

    def inside(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean ``[k]``: every atom within ``radius`` of the median centre."""
        return (torch.linalg.vector_norm(x - self.centre(x), dim=-1) <= self.radius).all(dim=1)


# ---------------------------------------------------------------- storage
@dataclasses.dataclass
class Minimum:
    """One stored minimum.

    Attributes:
        energy: Energy (oracle units).
        x: Positions ``[N, 3]`` (numpy).
        fingerprint: Sorted pair distances (see :func:`~openmm_actionmin.geometry.fingerprint`),
            or ``None`` when the database compares energies only.
        count: How often it was found.
    """

    energy: float
    x: np.ndarray
    fingerprint: Optional[np.ndarray] = None
    count: int = 1


class MinimaDatabase:
    """The lowest distinct minima found, by energy and (optionally) fingerprint.

    Two minima are the same if their energies differ by less than
    ``energy_tol`` and, unless ``fingerprint_tol`` is ``None``, their
    fingerprints (sorted pair distances per type pair) by less than
    ``fingerprint_tol`` everywhere. A repeat raises the stored minimum's
    ``count`` and, if lower in energy, replaces its energy and positions.

    Clusters use the defaults (energy and fingerprint); torsion hopping on
    peptides, whose conformers differ in shape while sharing most pair
    distances, compares energies only
    (``MinimaDatabase(10, energy_tol=0.05, fingerprint_tol=None)``, kJ/mol).

    Args:
        max_size: Number of minima kept (the lowest).
        energy_tol: Energy tolerance of identity (oracle units).
        fingerprint_tol: Pair-distance tolerance of identity (length units);
            ``None``: energies alone decide, and no fingerprint is computed.
        types: Atom types ``[N]`` for the fingerprint (``None``: one type).
    """

    def __init__(
        self,
        max_size: int = 50,
        energy_tol: float = 1e-5,
        fingerprint_tol: Optional[float] = 1e-2,
        types: Optional[Sequence[int]] = None,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"MinimaDatabase max_size must be >= 1, got {max_size}")
        self.max_size = int(max_size)
        self.energy_tol = float(energy_tol)
        self.fingerprint_tol = None if fingerprint_tol is None else float(fingerprint_tol)
        self.types = None if types is None else list(types)
        self.minima: List[Minimum] = []

    def __len__(self) -> int:
        return len(self.minima)

    @property
    def energies(self) -> List[float]:
        """Stored energies, lowest first."""
        return [m.energy for m in self.minima]

    @property
    def lowest(self) -> Optional[Minimum]:
        """The lowest minimum, or ``None`` when empty."""
        return self.minima[0] if self.minima else None

    def _fingerprint(self, x: np.ndarray) -> Optional[np.ndarray]:
        return None if self.fingerprint_tol is None else fingerprint(x, self.types, decimals=None)

    def add(self, x, energy: float) -> bool:
        """Insert one minimum unless it duplicates a stored one or is too high.

        Args:
            x: Positions ``[N, 3]`` (numpy array or torch tensor).
            energy: Its energy.

        Returns:
            ``True`` if it was stored as a new minimum.
        """
        energy = float(energy)
        if not math.isfinite(energy):
            return False
        if len(self.minima) >= self.max_size and energy >= self.minima[-1].energy - self.energy_tol:
            return False
        xn = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)
        fp = None
        for i, m in enumerate(self.minima):
            if abs(m.energy - energy) < self.energy_tol:
                if self.fingerprint_tol is not None:
                    if fp is None:
                        fp = self._fingerprint(xn)
                    if np.max(np.abs(m.fingerprint - fp), initial=0.0) >= self.fingerprint_tol:
                        continue
                m.count += 1
                if energy < m.energy:
                    self.minima[i] = Minimum(energy, xn.copy(), fp, m.count)
                    self.minima.sort(key=lambda m: m.energy)
                return False
        if fp is None:
            fp = self._fingerprint(xn)
        self.minima.append(Minimum(energy, xn.copy(), fp))
        self.minima.sort(key=lambda m: m.energy)
        del self.minima[self.max_size :]
        return True

    def add_batch(self, x: torch.Tensor, energy: torch.Tensor) -> int:
        """Insert minima ``x [k, N, 3]``, ``energy [k]``; returns how many were new."""
        return sum(int(self.add(xi, float(ei))) for xi, ei in zip(x, energy))

    def state_dict(self) -> dict:
        """A picklable snapshot (for checkpoints): ``{"minima": [dict per minimum]}``."""
        return {"minima": [dataclasses.asdict(m) for m in self.minima]}

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`.

        Also accepts the ``{"items": [(energy, x), ...]}`` snapshot of an
        energy-only store (torsion-hopping checkpoints).
        """
        if "items" in state:
            pairs = [(float(e), np.asarray(x, dtype=np.float64)) for e, x in state["items"]]
            self.minima = [Minimum(e, x, self._fingerprint(x)) for e, x in pairs]
        else:
            self.minima = [Minimum(**m) for m in state["minima"]]


# ------------------------------------------------------- loop pieces (clusters)
class ClusterProposal:
    """Proposals of the cluster walkers for :class:`~.hopping.BasinHoppingLoop`.

    A walker with a minimum gets ``step.propose`` of it at its own step size;
    a walker without one (every quench so far failed) restarts from a fresh
    random configuration. Proposals are pulled back into the container.
    :meth:`record` feeds the acceptance counts to the step-size rule.

    Args:
        step: Proposal with ``propose(x [k, N, 3], step_size [k], generator)``.
        n_walkers: Number of walkers.
        step_size: Initial step size.
        sample: ``sample(k) -> [k, N, 3]`` fresh random configurations.
        generator: Torch generator of the proposals.
        step_rule: Step-size rule with ``update(step_size, trials, accepts)``
            (``None``: fixed step sizes).
        container: Optional :class:`Container`.
        device: Device of the configurations.
    """

    def __init__(
        self,
        step: Any,
        n_walkers: int,
        step_size: float,
        sample: Callable[[int], torch.Tensor],
        generator: torch.Generator,
        step_rule: Optional[AdaptiveStepSize] = None,
        container: Optional[Container] = None,
        device: Any = "cpu",
    ) -> None:
        self.step = step
        self.sample = sample
        self.generator = generator
        self.step_rule = step_rule
        self.container = container
        self.device = device
        self.step_size = torch.full((n_walkers,), float(step_size), dtype=torch.float64, device=device)
        self.trials = torch.zeros(n_walkers, dtype=torch.long, device=device)
        self.accepts = torch.zeros(n_walkers, dtype=torch.long, device=device)

    def propose(self, walkers: Sequence[Any]) -> List[torch.Tensor]:
        """One proposal ``[N, 3]`` per walker."""
        idx = torch.tensor([w.index for w in walkers], dtype=torch.long, device=self.device)
        has_min = [math.isfinite(w.energy) for w in walkers]
        x = torch.stack(
            [
                torch.as_tensor(w.x, dtype=torch.float64).to(self.device)
                if ok
                else torch.zeros_like(torch.as_tensor(walkers[0].x, dtype=torch.float64)).to(self.device)
                for w, ok in zip(walkers, has_min)
            ]
        )
        new = self.step.propose(x, self.step_size[idx], self.generator)
        if not all(has_min):
            lost = torch.tensor([not ok for ok in has_min], device=self.device)
            new[lost] = self.sample(int(lost.sum())).to(device=self.device, dtype=torch.float64)
        if self.container is not None:
            new = self.container.pull_back(new)
        return list(new.unbind(0))

    def record(self, walkers: Sequence[Any], accepted: Sequence[bool]) -> None:
        """Count the judged hops of ``walkers`` and adapt their step sizes when due."""
        idx = torch.tensor([w.index for w in walkers], dtype=torch.long, device=self.device)
        self.trials.index_add_(0, idx, torch.ones_like(idx))
        self.accepts.index_add_(0, idx, torch.tensor([int(a) for a in accepted], dtype=torch.long, device=self.device))
        if self.step_rule is not None:
            self.step_rule.update(self.step_size, self.trials, self.accepts)

    def state_dict(self) -> Dict[str, Any]:
        """Step sizes and acceptance counters for checkpoints."""
        return {"step_size": self.step_size.cpu(), "trials": self.trials.cpu(), "accepts": self.accepts.cpu()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        for key in ("step_size", "trials", "accepts"):
            getattr(self, key).copy_(state[key].to(self.device))


class BatchQuench:
    """The streamed batched quench of :mod:`.local` as a loop quench (one row per walker).

    One :meth:`step` is one batched force call over the running rows; a row
    finishes when its own minimiser has converged or used ``max_steps``. A
    finished configuration is a minimum when it converged and (with a
    container) has every atom inside; minima are reported recentred.

    Args:
        oracle: The energy oracle.
        n_rows: Rows (walkers).
        method: ``"lbfgs"`` or ``"fire"``.
        container: Optional :class:`Container`.
        generator: Torch generator of the minimiser's jitter.
        **options: ``fmax``, ``max_steps``, ``max_step`` of the minimiser.
    """

    def __init__(
        self,
        oracle: Any,
        n_rows: int,
        method: str = "lbfgs",
        container: Optional[Container] = None,
        generator: Optional[torch.Generator] = None,
        **options: Any,
    ) -> None:
        self.oracle = oracle
        self.n_rows = int(n_rows)
        self.container = container
        shape = (self.n_rows, oracle.n_atoms, 3)
        self.minimizer = make_minimizer(
            oracle,
            torch.zeros(shape, dtype=torch.float64, device=oracle.device),
            method,
            generator=generator,
            **options,
        )
        self.minimizer.done[:] = True
        self.pending = torch.zeros(self.n_rows, dtype=torch.bool, device=oracle.device)
        self.failures = 0
        self.evaporated = 0

    def reset(self, rows: Sequence[int], configs: Sequence[torch.Tensor], phase: str = "hop") -> None:
        """Start quenching ``configs`` (each ``[N, 3]``) in ``rows``."""
        idx = torch.tensor(list(rows), dtype=torch.long, device=self.pending.device)
        self.minimizer.reset(idx, torch.stack([torch.as_tensor(c) for c in configs]).to(self.pending.device))
        self.pending[idx] = True

    def step(self, deadline: Optional[float] = None) -> List[Any]:
        """One batched force call; the rows that finished (``Quenched``)."""
        m = self.minimizer
        m.step()
        fin = torch.nonzero(m.done & self.pending).flatten()
        if fin.numel() == 0:
            return []
        self.pending[fin] = False
        x = m.x[fin].reshape(-1, self.oracle.n_atoms, 3).clone()
        valid = m.converged[fin].clone()
        self.failures += int((~valid).sum())
        if self.container is not None:
            inside = self.container.inside(x)
            self.evaporated += int((valid & ~inside).sum())
            valid &= inside
            x = self.container.recentre(x)
        energy = m.energy[fin].tolist()
        return [Quenched(int(r), x[k], energy[k], bool(valid[k])) for k, r in enumerate(fin.tolist())]

    def lowest(self) -> Optional[Tuple[torch.Tensor, float]]:
        """The lowest finite-energy configuration in flight, or ``None``."""
        m = self.minimizer
        e = torch.where(self.pending & torch.isfinite(m.energy), m.energy, torch.full_like(m.energy, math.inf))
        if not bool(torch.isfinite(e).any()):
            return None
        k = int(torch.argmin(e))
        return m.x[k].reshape(self.oracle.n_atoms, 3).clone(), float(e[k])

    def state_dict(self) -> Dict[str, Any]:
        """Failure counters for checkpoints (quenches in flight are not kept)."""
        return {"failures": self.failures, "evaporated": self.evaporated}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.failures, self.evaporated = int(state["failures"]), int(state["evaporated"])


@dataclasses.dataclass
class GoWithTheWinners:
    """Reseed high walkers from the lowest stored minima ("go with the winners").

    Every ``interval`` hops of a walker, if its energy is among the highest
    ``fraction`` of the walkers', it restarts from one of the ``pool`` lowest
    distinct minima (chosen at random with the loop's generator).

    Attributes:
        interval: Hops of a walker between checks (0: off).
        fraction: Fraction of walkers eligible.
        pool: Lowest minima to pick from.
        device: Device of the configurations.
    """

    interval: int = 10
    fraction: float = 0.25
    pool: int = 8
    device: Any = "cpu"

    def restart(self, walkers: Sequence[Any], finished: Sequence[Any], loop: Any) -> None:
        """Reseed the due walkers of ``finished`` (counted in ``loop.counters["reseeded"]``)."""
        if self.interval <= 0 or len(loop.storage) == 0:
            return
        due = [w for w in finished if w.hops % self.interval == 0]
        if not due:
            return
        finite = torch.tensor([w.energy for w in walkers if math.isfinite(w.energy)], dtype=torch.float64)
        if finite.numel():
            cut = float(torch.quantile(finite, 1.0 - self.fraction))
            due = [w for w in due if w.energy >= cut]
        pool = loop.storage.minima[: self.pool]
        for w in due:
            pick = pool[int(torch.randint(len(pool), (1,), generator=loop.generator))]
            w.x = torch.as_tensor(pick.x, dtype=torch.float64, device=self.device)
            w.energy = pick.energy
        loop.counters["reseeded"] = loop.counters.get("reseeded", 0) + len(due)


class BatchPolish:
    """Re-minimise the best minimum to a tight threshold with the batched minimiser.

    Args:
        oracle: The energy oracle.
        method: ``"lbfgs"`` or ``"fire"``.
        grace_s: Seconds the polish may take when the deadline has passed.
        **options: ``fmax``, ``max_steps``, ``max_step`` of the minimiser.
    """

    def __init__(self, oracle: Any, method: str = "lbfgs", grace_s: float = 0.2, **options: Any) -> None:
        self.oracle = oracle
        self.method = method
        self.grace_s = float(grace_s)
        self.options = options

    def polish(
        self, candidates: Sequence[Tuple[Any, float]], deadline: Optional[float]
    ) -> Tuple[np.ndarray, float, None]:
        """The first candidate polished (kept as it was if the polish did not lower it)."""
        x0, e0 = candidates[0]
        x0 = torch.as_tensor(x0, dtype=torch.float64)
        m = make_minimizer(self.oracle, x0[None].to(self.oracle.device), self.method, **self.options)
        res = m.run(deadline=None if deadline is None else max(deadline, time.perf_counter() + self.grace_s))
        if float(res.energy[0]) <= e0:
            return res.x[0].detach().cpu().numpy(), float(res.energy[0]), None
        return x0.detach().cpu().numpy(), float(e0), None
