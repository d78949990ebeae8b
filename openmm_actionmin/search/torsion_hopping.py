"""Torsion-space basin hopping (Monte-Carlo minimisation) for peptides.

The search walks between local minima of the OpenMM energy (nm, kJ/mol):

1. **Proposal** (:class:`PivotMove`): from the current minimised structure,
   set the backbone (phi, psi) of 1..``max_residues`` consecutive residues to a
   new pair drawn jointly from a Ramachandran basin (alpha-R, beta, PPII,
   alpha-L centres plus Gaussian noise) or uniformly on the torus, or set one
   side-chain chi to a rotamer. Each change is a *pivot*: the atoms on one side
   of the rotatable bond (the smaller connected component after cutting it)
   rotate rigidly about the bond axis (Rodrigues' formula), so bond lengths
   and angles stay exactly as they were. Proposals whose heavy atoms overlap
   (any pair more than three bonds apart closer than ``clash_nm``) are redrawn
   before any energy is computed.
2. **Quench**: OpenMM's ``LocalEnergyMinimizer`` in one reused Context (same
   ``openmm.System`` as the oracle, so the same force field and solvent) with a
   loose tolerance and an iteration cap; the best minima are polished to the
   user's tolerance at the end.
3. **Acceptance**: Metropolis at ``temperature`` kJ/mol
   (:class:`~.steps.Metropolis`); after ``reset_after`` hops without a new
   best the walk returns to the best minimum.
4. **Storage** (:class:`~.steps.MinimaDatabase`, energies only): the lowest
   distinct minima (energy, positions).

Force calls are counted as in :mod:`.openmm_baselines`: one per L-BFGS
iteration plus one per state read-out. Rotatable bonds come from the OpenMM
topology's bond graph: backbone phi (C(i-1)-N-CA-C; skipped for proline,
whose N-CA bond is in a ring), psi (N-CA-C-N(i+1)) and, optionally, side-chain
chi bonds between heavy atoms that are not in a ring and carry at least one
further heavy atom.

The walk is a configuration of the one basin-hopping loop
(:class:`~.hopping.BasinHoppingLoop`) with one walker and the pieces
:class:`PivotProposal`, :class:`OpenMMQuench`, :class:`OpenMMPolish` and
:class:`~.hopping.ResetToBest`. Budget: every quench (the starts' included)
stops at the loop's deadline, the last ``min_polish_s`` (at most a quarter of
the budget) are kept for the polish, and the polish stops at the budget's
end, so a run ends with its budget whatever the protein's size.

Checkpoints (``checkpoint_path``): the walk's state, minima, random states,
history, elapsed time and force calls are written atomically every
``checkpoint_interval_s`` and before polishing; ``resume=True`` continues from
an existing file. With ``max_steps`` (and no wall-clock limit reached) a
resumed run ends exactly where an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import checkpoints
from ..result import Result
from .hopping import BasinHoppingLoop, HopOutcome, LoopSettings, Quenched, ResetToBest
from .openmm_baselines import Observer, _check_positions, _minimize_in, _state, make_context, resolve_target, rms_force
from .steps import Metropolis, MinimaDatabase

#: Ramachandran basin centres (phi, psi) in degrees and their default weights.
RAMACHANDRAN_BASINS: Dict[str, Tuple[float, float]] = {
    "alpha_R": (-63.0, -43.0),
    "beta": (-120.0, 130.0),
    "PPII": (-75.0, 145.0),
    "alpha_L": (57.0, 47.0),
}
_BASIN_WEIGHTS = np.array([0.40, 0.25, 0.25, 0.10])
_GLYCINE_WEIGHTS = np.array([0.30, 0.20, 0.20, 0.30])
_ROTAMERS_DEG = np.array([-60.0, 60.0, 180.0])


# ------------------------------------------------------------------ geometry
def dihedral_np(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> float:
    """Dihedral p0-p1-p2-p3 (IUPAC sign convention) in radians, points ``[3]``."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / np.linalg.norm(b1)
    v = b0 - np.dot(b0, b1n) * b1n
    w = b2 - np.dot(b2, b1n) * b1n
    return float(math.atan2(np.dot(np.cross(b1n, v), w), np.dot(v, w)))


def rotate_about_axis(points: np.ndarray, origin: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotate ``points [M, 3]`` by ``angle`` radians about the line ``origin + t * axis``.

    Right-handed (Rodrigues' formula); ``axis [3]`` need not be normalised.
    """
    k = axis / np.linalg.norm(axis)
    v = points - origin
    c, s = math.cos(angle), math.sin(angle)
    return origin + v * c + np.cross(k, v) * s + np.outer(v @ k, k) * (1.0 - c)


@dataclasses.dataclass(frozen=True, eq=False)
class PivotBond:
    """One rotatable bond and the atoms that turn with it.

    Attributes:
        kind: ``"phi"``, ``"psi"`` or ``"chi"``.
        residue_index: Zero-based index of the residue the torsion belongs to.
        label: Readable name, e.g. ``"phi TYR2"``.
        atoms: Dihedral atoms ``(a, b, c, d)``; the axis is the bond ``b-c``.
        moving: Indices ``[M]`` of the atoms rotated (the smaller side of the
            cut bond, never containing ``b`` and ``c``).
        moves_d_side: True when ``moving`` is the side of ``d`` (a positive
            rotation then increases the dihedral), False for ``a``'s side.
    """

    kind: str
    residue_index: int
    label: str
    atoms: Tuple[int, int, int, int]
    moving: np.ndarray
    moves_d_side: bool

    def angle(self, x: np.ndarray) -> float:
        """The dihedral of ``x [N, 3]`` about this bond, radians."""
        a, b, c, d = self.atoms
        return dihedral_np(x[a], x[b], x[c], x[d])

    def set_angle(self, x: np.ndarray, value: float) -> np.ndarray:
        """A copy of ``x [N, 3]`` with this dihedral set to ``value`` radians."""
        delta = _wrap(value - self.angle(x))
        return self.rotate(x, delta)

    def rotate(self, x: np.ndarray, delta: float) -> np.ndarray:
        """A copy of ``x [N, 3]`` with this dihedral changed by ``delta`` radians (rigid pivot)."""
        _, b, c, _ = self.atoms
        out = np.array(x, dtype=np.float64, copy=True)
        sign = 1.0 if self.moves_d_side else -1.0
        out[self.moving] = rotate_about_axis(out[self.moving], out[b], out[c] - out[b], sign * delta)
        return out


def _wrap(angle: float) -> float:
    """Angle wrapped to ``(-pi, pi]``."""
    return float(math.atan2(math.sin(angle), math.cos(angle)))


def _adjacency(topology: Any) -> List[List[int]]:
    n = topology.getNumAtoms()
    adj: List[List[int]] = [[] for _ in range(n)]
    for bond in topology.bonds():
        i, j = bond[0].index, bond[1].index
        adj[i].append(j)
        adj[j].append(i)
    return adj


def _side(adj: List[List[int]], b: int, c: int) -> Optional[np.ndarray]:
    """Atoms reachable from ``c`` without crossing the bond ``b-c``; None when ``b-c`` is in a ring."""
    seen = {c}
    queue = deque([c])
    while queue:
        i = queue.popleft()
        for j in adj[i]:
            if i == c and j == b:
                continue
            if j == b:
                return None
            if j not in seen:
                seen.add(j)
                queue.append(j)
    return np.array(sorted(seen), dtype=np.int64)


def _pivot(
    kind: str, res_index: int, label: str, atoms: Tuple[int, int, int, int], adj: List[List[int]]
) -> Optional[PivotBond]:
    a, b, c, d = atoms
    side_c = _side(adj, b, c)
    if side_c is None:
        return None
    n = len(adj)
    if len(side_c) <= n - len(side_c):
        moving, d_side = side_c[side_c != c], True
    else:
        mask = np.ones(n, dtype=bool)
        mask[side_c] = False
        mask[b] = False
        moving, d_side = np.nonzero(mask)[0].astype(np.int64), False
    return PivotBond(kind, res_index, label, atoms, moving, d_side)


def find_pivots(topology: Any, include_chi: bool = True) -> List[PivotBond]:
    """Rotatable backbone (and side-chain) bonds of a peptide topology.

    Args:
        topology: ``openmm.app.Topology`` with bonds (one or more protein chains).
        include_chi: Add side-chain chi bonds (heavy atoms, not in a ring,
            with a further heavy atom beyond the bond).

    Returns:
        The :class:`PivotBond` list, in residue order (phi, psi, then chi).

    Raises:
        ValueError: the topology has no bonds or no rotatable backbone bond.
    """
    adj = _adjacency(topology)
    if not any(adj):
        raise ValueError("find_pivots: the topology has no bonds; load a PDB with CONECT/standard residues")
    heavy = np.array([a.element is not None and a.element.symbol != "H" for a in topology.atoms()])
    residues = list(topology.residues())
    named = [{a.name: a.index for a in r.atoms()} for r in residues]
    pivots: List[PivotBond] = []
    for k, res in enumerate(residues):
        names = named[k]
        if not all(x in names for x in ("N", "CA", "C")):
            continue
        n_, ca, c_ = names["N"], names["CA"], names["C"]
        tag = f"{res.name}{k + 1}"
        res_pivots: List[PivotBond] = []
        prev_c = next((j for j in adj[n_] if j != ca and heavy[j] and topology_atom_name(topology, j) == "C"), None)
        if prev_c is not None:
            p = _pivot("phi", k, f"phi {tag}", (prev_c, n_, ca, c_), adj)
            if p is not None:  # proline: N-CA closes the ring
                res_pivots.append(p)
        next_n = next((j for j in adj[c_] if j != ca and heavy[j] and topology_atom_name(topology, j) == "N"), None)
        if next_n is not None:
            p = _pivot("psi", k, f"psi {tag}", (n_, ca, c_, next_n), adj)
            if p is not None:
                res_pivots.append(p)
        if include_chi:
            res_pivots.extend(_chi_pivots(k, tag, res, names, adj, heavy, topology))
        pivots.extend(res_pivots)
    if not any(p.kind in ("phi", "psi") for p in pivots):
        raise ValueError("find_pivots: no rotatable backbone bond found (is this a peptide with N, CA, C atoms?)")
    return pivots


def topology_atom_name(topology: Any, index: int) -> str:
    """Name of atom ``index`` of an OpenMM topology (cached per topology)."""
    cache = getattr(topology, "_actionmin_atom_names", None)
    if cache is None:
        cache = [a.name for a in topology.atoms()]
        try:
            topology._actionmin_atom_names = cache
        except AttributeError:
            pass
    return cache[index]


def _chi_pivots(k: int, tag: str, res: Any, names: Dict[str, int], adj, heavy, topology) -> List[PivotBond]:
    """Side-chain chi bonds of one residue, walking out from CA."""
    backbone = {names.get(x) for x in ("N", "CA", "C", "O", "OXT")}
    in_res = {a.index for a in res.atoms()}
    out: List[PivotBond] = []
    prev, b = names["N"], names["CA"]
    visited = {b}
    chi = 0
    while True:
        side = [j for j in adj[b] if heavy[j] and j in in_res and j not in backbone and j not in visited]
        if len(side) != 1:
            break  # branch point or end of the chain (rings stop at _side)
        c = side[0]
        beyond = sorted((j for j in adj[c] if heavy[j] and j != b), key=lambda j: topology_atom_name(topology, j))
        if not beyond:
            break
        chi += 1
        p = _pivot("chi", k, f"chi{chi} {tag}", (prev, b, c, beyond[0]), adj)
        if p is None:
            break
        out.append(p)
        visited.add(c)
        prev, b = b, c
    return out


# ------------------------------------------------------------------ proposal
@dataclasses.dataclass
class PivotMove:
    """Pivot proposals in torsion space acting on Cartesian coordinates (nm).

    Build with :meth:`from_topology`.

    Attributes:
        pivots: Rotatable bonds (:func:`find_pivots`).
        heavy_pairs: Heavy-atom index pairs ``[P, 2]`` more than three bonds
            apart, checked for clashes.
        residue_names: Residue names, for glycine's basin weights.
        max_residues: A backbone move changes 1..max_residues consecutive residues.
        basin_prob: Probability that a residue's (phi, psi) comes from a
            Ramachandran basin (else uniform on the torus).
        noise_deg: Standard deviation of the Gaussian noise around a basin
            centre or rotamer, degrees.
        chi_prob: Probability that a move turns one side-chain chi instead.
        local_prob: Probability that a backbone move perturbs the current
            (phi, psi) of its residues by Gaussian noise of ``local_deg``
            instead of jumping to new angles.
        local_deg: Standard deviation of those local perturbations, degrees.
        clash_nm: Heavy-atom pairs closer than this (nm) reject a proposal.
        max_tries: Proposals drawn before giving up on a clash-free one (the
            least clashing is returned).
    """

    pivots: Sequence[PivotBond]
    heavy_pairs: np.ndarray
    residue_names: Sequence[str]
    max_residues: int = 2
    basin_prob: float = 0.8
    noise_deg: float = 15.0
    chi_prob: float = 0.2
    local_prob: float = 0.0
    local_deg: float = 30.0
    clash_nm: float = 0.15
    max_tries: int = 25

    def __post_init__(self) -> None:
        if self.max_residues < 1 or self.max_tries < 1:
            raise ValueError("PivotMove.max_residues and max_tries must be at least 1")
        if not (0 <= self.basin_prob <= 1 and 0 <= self.chi_prob <= 1 and 0 <= self.local_prob <= 1):
            raise ValueError("PivotMove.basin_prob, chi_prob and local_prob must be probabilities in [0, 1]")
        by_res: Dict[int, Dict[str, PivotBond]] = {}
        for p in self.pivots:
            if p.kind in ("phi", "psi"):
                by_res.setdefault(p.residue_index, {})[p.kind] = p
        self._backbone = by_res
        self._backbone_residues = np.array(sorted(by_res), dtype=np.int64)
        self._chi = [p for p in self.pivots if p.kind == "chi"]
        self.proposals = 0
        self.clash_retries = 0

    @classmethod
    def from_topology(cls, topology: Any, include_chi: bool = True, **kwargs: Any) -> "PivotMove":
        """Pivots and clash pairs of ``topology``; ``kwargs`` set the other attributes."""
        pivots = find_pivots(topology, include_chi=include_chi)
        adj = _adjacency(topology)
        heavy = np.array([a.element is not None and a.element.symbol != "H" for a in topology.atoms()])
        idx = np.nonzero(heavy)[0]
        near: Dict[int, set] = {}
        for i in idx:  # atoms within three bonds (through any atom)
            seen = {int(i)}
            frontier = {int(i)}
            for _ in range(3):
                frontier = {j for f in frontier for j in adj[f]} - seen
                seen |= frontier
            near[int(i)] = seen
        pairs = [(int(i), int(j)) for a, i in enumerate(idx) for j in idx[a + 1 :] if int(j) not in near[int(i)]]
        heavy_pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        return cls(
            pivots=pivots, heavy_pairs=heavy_pairs, residue_names=[r.name for r in topology.residues()], **kwargs
        )

    def min_heavy_distance(self, x: np.ndarray) -> float:
        """Smallest distance (nm) of the clash-checked heavy-atom pairs of ``x [N, 3]``."""
        if len(self.heavy_pairs) == 0:
            return math.inf
        d = x[self.heavy_pairs[:, 0]] - x[self.heavy_pairs[:, 1]]
        return float(np.sqrt(np.min(np.einsum("ij,ij->i", d, d))))

    def _backbone_move(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        res = self._backbone_residues
        n = int(rng.integers(1, self.max_residues + 1))
        start = int(rng.integers(0, max(len(res) - n + 1, 1)))
        out = x
        local = rng.random() < self.local_prob
        for r in res[start : start + n]:
            piv = self._backbone[int(r)]
            if local:
                for kind in ("phi", "psi"):
                    if kind in piv:
                        out = piv[kind].rotate(out, math.radians(self.local_deg * rng.standard_normal()))
                continue
            weights = _GLYCINE_WEIGHTS if self.residue_names[int(r)] == "GLY" else _BASIN_WEIGHTS
            if rng.random() < self.basin_prob:
                centre = list(RAMACHANDRAN_BASINS.values())[int(rng.choice(4, p=weights))]
                phi, psi = (math.radians(c + self.noise_deg * rng.standard_normal()) for c in centre)
            else:
                phi, psi = rng.uniform(-math.pi, math.pi, size=2)
            if self.residue_names[int(r)] == "GLY" and rng.random() < 0.5:
                phi, psi = -phi, -psi  # glycine's map is symmetric
            if "phi" in piv:
                out = piv["phi"].set_angle(out, float(phi))
            if "psi" in piv:
                out = piv["psi"].set_angle(out, float(psi))
        return out

    def _chi_move(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self._chi[int(rng.integers(len(self._chi)))]
        if rng.random() < self.basin_prob:
            value = math.radians(float(rng.choice(_ROTAMERS_DEG)) + self.noise_deg * rng.standard_normal())
        else:
            value = float(rng.uniform(-math.pi, math.pi))
        return p.set_angle(x, value)

    def propose(self, x: np.ndarray, generator: np.random.Generator) -> np.ndarray:
        """A clash-free pivot move of ``x [N, 3]`` nm (a new array, same shape).

        Args:
            x: Positions ``[N, 3]`` in nm.
            generator: ``numpy.random.Generator`` driving every random choice.

        Returns:
            Proposed positions ``[N, 3]`` nm; the least clashing of
            ``max_tries`` draws when none is clash-free.
        """
        x = np.asarray(x, dtype=np.float64)
        best, best_d = x, -math.inf
        self.proposals += 1
        for attempt in range(self.max_tries):
            if self._chi and generator.random() < self.chi_prob:
                y = self._chi_move(x, generator)
            else:
                y = self._backbone_move(x, generator)
            d = self.min_heavy_distance(y)
            if d >= self.clash_nm:
                return y
            self.clash_retries += 1
            if d > best_d:
                best, best_d = y, d
        return best


# ------------------------------------------------------------------- storage
#: Stored minima closer in energy than this (kJ/mol) count as one.
MINIMA_ENERGY_TOL_KJ_MOL = 0.05


# -------------------------------------------------------------------- config
@dataclasses.dataclass
class TorsionHoppingConfig:
    """Settings of :func:`torsion_hopping`.

    Attributes:
        seed: Seed of proposals and acceptance.
        budget_s: Wall-clock budget in seconds, polishing included (None: no limit).
        max_steps: Hops (None: no limit); one of budget_s / max_steps is needed.
        temperature: Metropolis temperature, kJ/mol (None:
            ``temperature_per_residue`` times the number of residues).
        temperature_per_residue: kJ/mol per residue of the default
            temperature (0.25: 2.5 kJ/mol for CLN025, 5 for Trp-cage, the best
            of 2.5 / 5 / 10 / 15 / 30 in short 60 s runs on each).
        max_residues: Consecutive residues changed per backbone move.
        basin_prob: Probability of Ramachandran-basin (vs uniform) angles.
        noise_deg: Noise around basin centres and rotamers, degrees.
        chi_prob: Probability of a side-chain chi move.
        local_prob: Probability that a backbone move is a small Gaussian
            perturbation (``local_deg``) of the current angles.
        local_deg: Its standard deviation, degrees.
        include_chi: Use side-chain chi bonds at all.
        clash_nm: Heavy-atom clash distance rejecting a proposal, nm.
        quench_tolerance_kj_mol_nm: LocalEnergyMinimizer tolerance during the
            search (RMS force, kJ/mol/nm).
        quench_max_iterations: L-BFGS iteration cap per quench during the search.
        tolerance_kj_mol_nm: Tolerance of the final polish (the user's).
        polish_candidates: Lowest stored minima polished at the end (the
            lowest always, the others while the budget lasts).
        min_polish_s: Seconds at the end of the budget kept for the final
            polish (at most a quarter of the budget).
        reset_after: Hops without a new best after which the walk returns to
            the best minimum (0: never).
        keep_minima: Distinct minima stored.
        platform: OpenMM platform (None: the oracle's, else CPU).
        threads: CPU threads of the Context (None: OpenMM's default).
        progress: Show a tqdm bar.
        checkpoint_path: Checkpoint file (None: none).
        checkpoint_interval_s: Seconds between checkpoints.
        resume: Continue from ``checkpoint_path`` when it exists.
        method_name: Name put in the result.
    """

    seed: int = 0
    budget_s: Optional[float] = 60.0
    max_steps: Optional[int] = None
    temperature: Optional[float] = None
    temperature_per_residue: float = 0.25
    max_residues: int = 2
    basin_prob: float = 0.8
    noise_deg: float = 15.0
    chi_prob: float = 0.2
    local_prob: float = 0.0
    local_deg: float = 30.0
    include_chi: bool = True
    clash_nm: float = 0.15
    quench_tolerance_kj_mol_nm: float = 10.0
    quench_max_iterations: int = 1000
    tolerance_kj_mol_nm: float = 1.0
    polish_candidates: int = 3
    min_polish_s: float = 3.0
    reset_after: int = 100
    keep_minima: int = 10
    platform: Optional[str] = None
    threads: Optional[int] = None
    progress: bool = False
    checkpoint_path: Optional[str] = None
    checkpoint_interval_s: float = 30.0
    resume: bool = False
    method_name: str = "basin_hopping"

    def __post_init__(self) -> None:
        if self.budget_s is None and self.max_steps is None:
            raise ValueError("TorsionHoppingConfig needs a limit: set budget_s (seconds) or max_steps")
        if self.budget_s is not None and not (self.budget_s > 0):
            raise ValueError(f"TorsionHoppingConfig.budget_s must be positive seconds, got {self.budget_s}")
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError(f"TorsionHoppingConfig.max_steps must be >= 0, got {self.max_steps}")
        if self.temperature is not None and not (self.temperature >= 0):
            raise ValueError(f"TorsionHoppingConfig.temperature must be >= 0 kJ/mol, got {self.temperature}")
        if not (self.temperature_per_residue >= 0):
            raise ValueError(
                f"TorsionHoppingConfig.temperature_per_residue must be >= 0 kJ/mol, got {self.temperature_per_residue}"
            )
        for name in ("quench_tolerance_kj_mol_nm", "tolerance_kj_mol_nm"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"TorsionHoppingConfig.{name} must be a positive force in kJ/mol/nm, got {value}")
        if self.quench_max_iterations < 0 or self.polish_candidates < 1 or self.keep_minima < 1 or self.reset_after < 0:
            raise ValueError(
                "TorsionHoppingConfig: quench_max_iterations >= 0, polish_candidates >= 1, keep_minima >= 1, "
                "reset_after >= 0"
            )


# -------------------------------------------------------------------- quench
class _Quencher:
    """LocalEnergyMinimizer in one reused Context; counts force calls."""

    def __init__(self, omm_system: Any, platform: Optional[str], threads: Optional[int]) -> None:
        import openmm

        self.context, self.platform = make_context(omm_system, openmm.VerletIntegrator(0.001), platform, threads)
        self.force_calls = 0
        self.failures = 0
        self.iterations: List[int] = []

    def __call__(
        self, x: np.ndarray, tolerance: float, max_iterations: int, deadline: Optional[float] = None
    ) -> Tuple[float, np.ndarray, np.ndarray]:
        """Minimise from ``x [N, 3]`` nm; ``(energy kJ/mol, positions [N, 3] nm, forces [N, 3])``."""
        import openmm

        self.context.setPositions(x)
        try:
            its = _minimize_in(self.context, tolerance, max_iterations, deadline, time.perf_counter(), [], 0, 0)
            energy, pos, forces = _state(self.context)
        except openmm.OpenMMException:  # e.g. "Particle coordinate is NaN" after an L-BFGS blow-up
            self.failures += 1
            self.force_calls += 1
            x = np.asarray(x, dtype=np.float64)
            return math.inf, x, np.zeros_like(x)
        self.force_calls += its + 1
        self.iterations.append(its)
        if not (math.isfinite(energy) and np.isfinite(pos).all()):
            self.failures += 1
            return math.inf, np.asarray(x, dtype=np.float64), np.zeros_like(pos)
        return energy, pos, forces


class PivotProposal:
    """A :class:`PivotMove` (or any ``propose(x, numpy Generator)``) as a loop step proposal.

    Args:
        move: The move.
        rng: Numpy generator of the proposals (checkpointed).
    """

    def __init__(self, move: Any, rng: np.random.Generator) -> None:
        self.move = move
        self.rng = rng

    def propose(self, walkers: Sequence[Any]) -> List[np.ndarray]:
        """One proposal ``[N, 3]`` nm per walker, from its current minimum."""
        return [self.move.propose(w.x, self.rng) for w in walkers]

    def state_dict(self) -> Dict[str, Any]:
        """The generator's state."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.rng.bit_generator.state = state["rng"]


class OpenMMQuench:
    """The OpenMM quench as a loop quench: one configuration finishes per step.

    Starts are minimised fully (no iteration cap, to ``start_tolerance``),
    hops with ``max_iterations`` to ``tolerance``; every quench stops at the
    deadline it is given. Minimising the start to the user's tolerance makes
    the search begin where OpenMM's own minimiser would end, so the result
    is never above it; on a protein whose minimisation outlasts the budget
    the whole run is that minimisation.
    A minimiser blow-up is reported as an invalid (infinite-energy) result.

    Args:
        quencher: The :class:`_Quencher` (Context and counters).
        tolerance: LocalEnergyMinimizer tolerance of the hops, kJ/mol/nm.
        max_iterations: Iteration cap of a hop's quench.
        start_tolerance: Tolerance of the starts' minimisation (None: ``tolerance``).
    """

    def __init__(
        self, quencher: "_Quencher", tolerance: float, max_iterations: int, start_tolerance: Optional[float] = None
    ) -> None:
        self.quencher = quencher
        self.tolerance = float(tolerance)
        self.max_iterations = int(max_iterations)
        self.start_tolerance = self.tolerance if start_tolerance is None else float(start_tolerance)
        self.queue: List[Tuple[int, np.ndarray, str]] = []

    def reset(self, rows: Sequence[int], configs: Sequence[np.ndarray], phase: str = "hop") -> None:
        """Queue ``configs`` for ``rows``."""
        self.queue.extend((int(r), c, phase) for r, c in zip(rows, configs))

    def step(self, deadline: Optional[float] = None) -> List[Quenched]:
        """Minimise the next queued configuration (by ``deadline``)."""
        if not self.queue:
            return []
        row, x, phase = self.queue.pop(0)
        start = phase == "start"
        e, y, _ = self.quencher(
            x, self.start_tolerance if start else self.tolerance, 0 if start else self.max_iterations, deadline
        )
        return [Quenched(row, y, e, math.isfinite(e))]


class OpenMMPolish:
    """Polish the lowest minima to the user's tolerance; the lowest result is the answer.

    The best candidate is always polished (up to the deadline), the others
    while time is left.

    Args:
        quencher: The :class:`_Quencher`.
        tolerance: Polish tolerance, kJ/mol/nm.
    """

    def __init__(self, quencher: "_Quencher", tolerance: float) -> None:
        self.quencher = quencher
        self.tolerance = float(tolerance)

    def polish(
        self, candidates: Sequence[Tuple[np.ndarray, float]], deadline: Optional[float]
    ) -> Tuple[np.ndarray, float, np.ndarray]:
        """``(positions, energy, forces)`` of the lowest polished candidate."""
        final_e, final_x, final_f = math.inf, None, None
        for k, (cand, _) in enumerate(candidates):
            if k > 0 and deadline is not None and time.perf_counter() >= deadline:
                break
            e, x, f = self.quencher(cand, self.tolerance, 0, deadline)
            if e < final_e:
                final_e, final_x, final_f = e, x, f
        if final_x is None:  # every polish failed: keep the search's best
            final_x, final_e = candidates[0]
            self.quencher.context.setPositions(final_x)
            _, _, final_f = _state(self.quencher.context)
        return final_x, final_e, final_f


# ---------------------------------------------------------------------- run
def torsion_hopping(
    target: Any,
    config: Optional[TorsionHoppingConfig] = None,
    *,
    starts: Optional[Sequence[Any]] = None,
    move: Optional[PivotMove] = None,
    acceptance: Optional[Any] = None,
    observer: Optional[Observer] = None,
) -> Result:
    """Basin hopping for a peptide in torsion space (pivot moves + OpenMM quenches).

    Args:
        target: A System with an OpenMM oracle and a topology (e.g.
            :func:`~openmm_actionmin.systems.peptides.peptide`), or anything
            :func:`~.openmm_baselines.resolve_target` accepts that has a topology.
        config: :class:`TorsionHoppingConfig` (default settings if None).
        starts: Optional start structures, each ``[N, 3]`` nm (e.g. action
            trainer candidates); all are quenched and the walk begins from the
            lowest. An entry ``None`` stands for the target's own start
            positions. Default: the target's start positions.
        move: Proposal object with ``propose(x [N, 3], numpy Generator) -> [N, 3]``
            (default :meth:`PivotMove.from_topology` with the config's settings).
        acceptance: Object with ``accept(e_new [1], e_old [1], torch Generator) -> bool [1]``
            (default :class:`~.steps.Metropolis` at ``config.temperature``, or
            ``temperature_per_residue`` times the residue count).
        observer: Optional ``positions [N, 3] nm -> {column: value}`` (e.g. a CA
            RMSD) evaluated on the best structure whenever it changes; its
            columns are added to every history row.

    Returns:
        A :class:`Result` (nm, kJ/mol) holding the lowest polished minimum;
        history rows have ``wall_s``, ``energy`` (the hop's quenched minimum),
        ``best_energy``, ``force_calls``, ``accepted``, ``phase`` and the
        observer's columns; ``extra`` has ``final_rms_force``,
        ``start_energy``, ``hops``, ``acceptance_rate``, ``minima_energies``,
        ``clash_retries``, ``quench_failures`` (minimiser blow-ups, scored
        as infinite energy and rejected), ``mean_quench_iterations``, ``platform``, ``config``.

    Raises:
        ValueError: no topology, bad start positions (NaN, wrong shape), or a
            checkpoint of another system.
    """
    t_entry = time.perf_counter()
    cfg = config if config is not None else TorsionHoppingConfig()
    tgt = resolve_target(target)
    if tgt.topology is None:
        raise ValueError("torsion_hopping needs an OpenMM topology (bond graph) to find rotatable bonds")
    n = tgt.system.getNumParticles()
    start_list = (
        [_check_positions(tgt, s) for s in starts]
        if starts is not None and len(starts) > 0
        else [_check_positions(tgt, None)]
    )
    temperature = cfg.temperature
    if temperature is None:
        temperature = cfg.temperature_per_residue * max(tgt.topology.getNumResidues(), 1)
    acceptance = acceptance if acceptance is not None else Metropolis(float(temperature))
    rng = np.random.default_rng(int(cfg.seed))
    tgen = torch.Generator().manual_seed(int(cfg.seed) + 1_000_003)
    quencher = _Quencher(tgt.system, cfg.platform or tgt.platform_name, cfg.threads)
    store = MinimaDatabase(cfg.keep_minima, energy_tol=MINIMA_ENERGY_TOL_KJ_MOL, fingerprint_tol=None)
    ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    identity = None
    if ckpt is not None:
        identity = (
            checkpoints.run_identity(target, cfg.method_name, cfg.seed)
            if hasattr(target, "space")
            else checkpoints.RunIdentity(cfg.method_name, int(cfg.seed), str(tgt.name), n, "")
        )
    resuming = ckpt is not None and cfg.resume and ckpt.exists()
    kept: Dict[str, Any] = {"start_energy": math.inf, "observed": {}}
    minimised: Optional[Tuple[np.ndarray, float, np.ndarray]] = None

    def observe(x: np.ndarray) -> None:
        if observer is not None:
            kept["observed"] = dict(observer(x))

    if not resuming:
        for s in start_list:  # the start energies (one force call each)
            quencher.context.setPositions(s)
            kept["start_energy"] = min(kept["start_energy"], _state(quencher.context)[0])
            quencher.force_calls += 1
        if len(start_list) == 1 and cfg.budget_s is not None:
            # One uninterrupted minimisation of the input, which may use the whole budget: on a
            # protein whose minimisation outlasts the budget the run is OpenMM's minimiser itself
            # (no restart before the polish), and otherwise the hops start from its minimum.
            end = t_entry + float(cfg.budget_s)
            e_min, x_min, f_min = quencher(start_list[0], cfg.tolerance_kj_mol_nm, 0, end)
            if math.isfinite(e_min):
                start_list = [x_min]
                minimised = (x_min, e_min, f_min)
    # the pivots are built after the input's minimisation, which may need every second of the budget
    move = (
        move
        if move is not None
        else PivotMove.from_topology(
            tgt.topology,
            include_chi=cfg.include_chi,
            max_residues=cfg.max_residues,
            basin_prob=cfg.basin_prob,
            noise_deg=cfg.noise_deg,
            chi_prob=cfg.chi_prob,
            local_prob=cfg.local_prob,
            local_deg=cfg.local_deg,
            clash_nm=cfg.clash_nm,
        )
    )

    def history_row(event: str, info: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        if event == "sweep":
            return None
        if event == "end":
            observe(info["x"])
        phase = {"start": "start", "hop": "hop", "end": "polish"}[event]
        return {
            "wall_s": info["wall_s"],
            "energy": info["energy"],
            "best_energy": info["best_energy"],
            "force_calls": info["force_calls"],
            "accepted": info["accepted"],
            "phase": phase,
            **kept["observed"],
        }

    reserve = 0.0
    if cfg.budget_s is not None:  # the polish gets min_polish_s, at most a quarter of the budget
        reserve = min(max(cfg.min_polish_s, 0.0), 0.25 * float(cfg.budget_s))
    settings = LoopSettings(
        budget_s=cfg.budget_s,
        polish_reserve_s=reserve,
        max_steps=cfg.max_steps,
        polish_candidates=cfg.polish_candidates,
        checkpoint_path=None if ckpt is None else str(ckpt),
        checkpoint_interval_s=cfg.checkpoint_interval_s,
        resume=cfg.resume,
        identity=identity,
        progress=cfg.progress,
        label=cfg.method_name,
    )
    retries0 = getattr(move, "clash_retries", 0)
    kept["clash_retries"] = 0
    loop = BasinHoppingLoop(
        starts=[] if resuming else start_list,
        n_walkers=1,
        step=PivotProposal(move, rng),
        quench=OpenMMQuench(
            quencher, cfg.quench_tolerance_kj_mol_nm, cfg.quench_max_iterations, start_tolerance=cfg.tolerance_kj_mol_nm
        ),
        acceptance=acceptance,
        storage=store,
        generator=tgen,
        force_calls=lambda: quencher.force_calls,
        settings=settings,
        restart=ResetToBest(cfg.reset_after),
        polish=OpenMMPolish(quencher, cfg.tolerance_kj_mol_nm),
        history_row=history_row,
        on_best=observe,
        save_extra=lambda: {
            **kept,
            "clash_retries": kept["clash_retries"] + getattr(move, "clash_retries", 0) - retries0,
            "config": dataclasses.asdict(cfg),
        },
        load_extra=kept.update,
    )
    if minimised is not None and time.perf_counter() - t_entry >= float(cfg.budget_s) - reserve:
        # the input's minimisation used the budget: no time for a hop or a polish restart
        x_min, e_min, f_min = minimised
        wall = time.perf_counter() - t_entry
        observe(x_min)
        row = {
            "wall_s": wall,
            "energy": e_min,
            "best_energy": e_min,
            "force_calls": quencher.force_calls,
            "accepted": True,
            **kept["observed"],
        }
        out = HopOutcome(
            x=x_min,
            energy=e_min,
            search_energy=e_min,
            polish_info=f_min,
            walkers=[],
            hops=0,
            accepted=0,
            history=[{**row, "phase": "start"}, {**row, "phase": "polish"}],
            time_to_target_s=None,
            force_calls_to_target=None,
            stop_reason="budget",
            search_s=wall,
            wall_s=wall,
            force_calls=quencher.force_calls,
            resumed=False,
            unfinished=False,
            counters={},
        )
    else:
        out = loop.run(spent_s=time.perf_counter() - t_entry)
    clash_retries = kept["clash_retries"] + getattr(move, "clash_retries", 0) - retries0
    final_f = out.polish_info
    hops = max(out.hops, 1)
    return tgt.result(
        positions=out.x,
        energy=float(out.energy),
        method=cfg.method_name,
        seed=cfg.seed,
        force_calls=out.force_calls,
        wall_s=out.wall_s,
        history=out.history,
        extra={
            "final_rms_force": rms_force(final_f) if final_f is not None else math.nan,
            "start_energy": kept["start_energy"],
            "hops": out.hops,
            "accepted": out.accepted,
            "acceptance_rate": out.accepted / hops,
            "resets": out.counters.get("resets", 0),
            "temperature_kj_mol": getattr(acceptance, "temperature", temperature),
            "best_search_energy": out.search_energy,
            "minima_energies": store.energies,
            "clash_retries": clash_retries,
            "quench_failures": quencher.failures,
            "mean_quench_iterations": float(np.mean(quencher.iterations)) if quencher.iterations else 0.0,
            "n_pivots": len(move.pivots) if hasattr(move, "pivots") else None,
            "platform": quencher.platform,
            "tolerance_kj_mol_nm": cfg.tolerance_kj_mol_nm,
            "config": dataclasses.asdict(cfg),
        },
    )
