"""Torsion space for peptides: backbone phi/psi and side-chain chi angles.

A peptide's low-energy conformations differ mostly in their rotatable
dihedrals; bond lengths and angles barely move. :class:`TorsionSpace` therefore
searches over *changes of torsion angles* (radians) relative to a start
structure and rebuilds every Cartesian position, hydrogens included, from a
Z-matrix in torch, batched and differentiable.

How the Z-matrix is built (from the start topology and coordinates):

1. A breadth-first spanning tree of the bond graph is grown from the first
   heavy atom (residue 1's N, or an ACE cap), backbone atoms first, so every
   backbone atom's parent is its predecessor along the chain (CA's parent is
   N, C's parent is CA, the next N's parent is C).
2. Every atom ``i`` (after the first three, which are fixed Cartesian anchors)
   gets three earlier-placed references ``(a, b, c)``: ``a`` its parent,
   ``b`` the parent of ``a``, ``c`` the parent of ``b`` (near the root, where
   parents are missing, other already placed neighbours stand in). Its bond
   length ``|i - a|``, angle ``i-a-b`` and dihedral ``i-a-b-c`` are measured
   from the start coordinates.
3. A *free torsion* about the tree edge ``b -> a`` adds the same offset to the
   dihedral of every child of ``a``, so that all substituents of ``a`` rotate
   rigidly together and everything further down the tree follows. Edges are
   free when both atoms are heavy, ``a`` has a heavy child, the rotation moves
   both ends of every ring-closing bond together (so ring bonds and proline's
   phi are never free), and the edge is not the peptide bond (omega) unless
   ``include_omega=True``. Methyl, hydroxyl and amine rotors (only hydrogens
   downstream) stay fixed.

Search variables ``z [B, d]`` are torsion offsets in radians, one per free
torsion, ``z = 0`` reproducing the start structure exactly (every internal
coordinate is taken from the structure itself). Positions come out in the
units of the start coordinates (nm for OpenMM systems), in the start's frame:
the three anchor atoms never move.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .spaces import SearchSpace

BACKBONE_NAMES = ("N", "CA", "C")


@dataclasses.dataclass(frozen=True)
class Torsion:
    """One free torsion of a :class:`TorsionSpace`.

    Attributes:
        kind: ``"phi"``, ``"psi"``, ``"omega"`` or ``"chi"``.
        label: Readable name, e.g. ``"phi TYR2"`` or ``"chi CB-CG TRP9"``.
        residue_index: Zero-based index of the residue of the rotating atom.
        atoms: The four atom indices ``(c, b, a, i)`` defining the dihedral
            (``b -> a`` is the rotation axis, ``i`` a representative moved atom).
        start_angle: The dihedral of ``atoms`` in the start structure, radians.
    """

    kind: str
    label: str
    residue_index: int
    atoms: Tuple[int, int, int, int]
    start_angle: float


def dihedral(p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor) -> torch.Tensor:
    """Dihedral angle p0-p1-p2-p3 (IUPAC sign convention), radians.

    Args:
        p0: Points ``[..., 3]``; ``p1``, ``p2``, ``p3`` likewise.

    Returns:
        Angles ``[...]`` in ``(-pi, pi]``.
    """
    b0 = p0 - p1
    b1 = p2 - p1
    b2 = p3 - p2
    b1n = b1 / torch.linalg.norm(b1, dim=-1, keepdim=True)
    v = b0 - (b0 * b1n).sum(-1, keepdim=True) * b1n
    w = b2 - (b2 * b1n).sum(-1, keepdim=True) * b1n
    x = (v * w).sum(-1)
    y = (torch.cross(b1n, v, dim=-1) * w).sum(-1)
    return torch.atan2(y, x)


def _angle(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Bond angle p0-p1-p2 in radians, rows ``[M, 3]`` -> ``[M]``."""
    u = p0 - p1
    v = p2 - p1
    cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.arccos(np.clip(cos, -1.0, 1.0))


def nerf_place(
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    bond: torch.Tensor,
    angle: torch.Tensor,
    torsion: torch.Tensor,
) -> torch.Tensor:
    """Place atoms from internal coordinates (Natural Extension Reference Frame).

    The new atom ``i`` gets ``|i - a| = bond``, angle ``i-a-b = angle`` and
    dihedral ``i-a-b-c = torsion``.

    Args:
        a: Bonded reference positions ``[..., M, 3]``; ``b``, ``c`` likewise.
        bond: Bond lengths ``[M]``.
        angle: Bond angles ``[M]`` (radians).
        torsion: Dihedrals ``[..., M]`` (radians).

    Returns:
        Positions ``[..., M, 3]``.
    """
    bc = a - b
    bc = bc / torch.linalg.norm(bc, dim=-1, keepdim=True)
    n = torch.cross(b - c, bc, dim=-1)
    n = n / torch.linalg.norm(n, dim=-1, keepdim=True)
    m = torch.cross(n, bc, dim=-1)
    d0 = -bond * torch.cos(angle)
    rs = bond * torch.sin(angle)
    d1 = rs * torch.cos(torsion)
    d2 = rs * torch.sin(torsion)
    return a + d0[..., None] * bc + d1[..., None] * m + d2[..., None] * n


class TorsionSpace(SearchSpace):
    """Torsion-angle offsets around a start structure, mapped to Cartesian positions.

    Args:
        topology: OpenMM topology with bonds (e.g. from ``PDBFile`` or
            pdbfixer); any molecule whose bond graph is connected.
        positions: Start positions ``[N, 3]`` (nm for OpenMM systems); every
            bond length, angle and fixed dihedral is taken from them.
        max_delta: Half-width of the search box of every torsion offset,
            radians (default pi: the whole circle).
        include_chi: Free side-chain torsions (chi) as well as phi/psi.
        include_omega: Free the peptide-bond torsions (omega) too.
        dtype: Dtype of bounds and geometry (z may come in any float dtype).

    Attributes:
        torsions: The free :class:`Torsion` list, in the order of ``z``'s columns.
        dim: Number of free torsions.
        event_shape: ``(N, 3)``.

    Raises:
        ValueError: the topology has no bonds, is disconnected, or its atom
            count does not match ``positions``.
    """

    def __init__(
        self,
        topology,
        positions: Union[torch.Tensor, np.ndarray],
        *,
        max_delta: float = math.pi,
        include_chi: bool = True,
        include_omega: bool = False,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        pos = np.asarray(
            positions.detach().cpu() if isinstance(positions, torch.Tensor) else positions, dtype=np.float64
        )
        atoms = list(topology.atoms())
        n = len(atoms)
        if pos.shape != (n, 3):
            raise ValueError(
                f"TorsionSpace: topology has {n} atoms but positions have shape {pos.shape}; pass positions [N, 3]"
            )
        if n < 4:
            raise ValueError(f"TorsionSpace needs at least 4 atoms, got {n}")
        neighbours: List[List[int]] = [[] for _ in range(n)]
        for bond in topology.bonds():
            i, j = bond[0].index, bond[1].index
            neighbours[i].append(j)
            neighbours[j].append(i)
        if not any(neighbours):
            raise ValueError(
                "TorsionSpace: the topology has no bonds; load it with PDBFile/pdbfixer so standard bonds are created"
            )
        for nb in neighbours:
            nb.sort()

        # Root: the first heavy atom (the N of residue 1 for a plain chain, the cap for ACE-capped ones).
        root = next((a.index for a in atoms if a.element is None or a.element.symbol != "H"), 0)
        parent = [-1] * n
        order = [root]
        seen = [False] * n
        seen[root] = True
        queue = deque([root])
        while queue:
            u = queue.popleft()
            # Backbone successors first, so CA (then C, then the next N) are first children.
            for v in sorted(neighbours[u], key=lambda k: (atoms[k].name not in BACKBONE_NAMES, k)):
                if not seen[v]:
                    seen[v] = True
                    parent[v] = u
                    order.append(v)
                    queue.append(v)
        if len(order) != n:
            missing = next(a for a in atoms if not seen[a.index])
            raise ValueError(
                f"TorsionSpace: the bond graph is disconnected; atom {missing.name} of residue "
                f"{missing.residue.name}{missing.residue.index + 1} (index {missing.index}) is not bonded to the "
                "chain. "
                "Remove waters/ions or add the missing bonds."
            )
        rank = {atom: k for k, atom in enumerate(order)}
        children: List[List[int]] = [[] for _ in range(n)]
        for atom in order[1:]:
            children[parent[atom]].append(atom)

        # References (a, b, c) for every atom after the three anchors.
        refs: Dict[int, Tuple[int, int, int]] = {}
        for i in order[3:]:
            a = parent[i]
            before = rank[i]  # only atoms placed before i can be references
            b = parent[a] if parent[a] >= 0 else next(k for k in neighbours[a] if k != i and rank[k] < before)
            c = parent[b] if parent[b] >= 0 and parent[b] != a else -1
            if c < 0:
                cand = [k for k in neighbours[b] if k not in (a, i) and rank[k] < before]
                cand += [k for k in neighbours[a] if k not in (b, i) and rank[k] < before]
                cand += [k for k in order[: rank[i]] if k not in (a, b)]
                c = cand[0]
            refs[i] = (a, b, c)

        built = order[3:]
        level = {k: 0 for k in order[:3]}
        for i in built:
            level[i] = 1 + max(level[r] for r in refs[i])
        idx = np.array(built, dtype=np.int64)
        ra = np.array([refs[i][0] for i in built])
        rb = np.array([refs[i][1] for i in built])
        rc = np.array([refs[i][2] for i in built])
        bond_len = np.linalg.norm(pos[idx] - pos[ra], axis=-1)
        bond_ang = _angle(pos[idx], pos[ra], pos[rb])
        t = torch.as_tensor
        dih = dihedral(t(pos[rc]), t(pos[rb]), t(pos[ra]), t(pos[idx])).numpy()

        # Free torsions about tree edges b -> a.
        tree_edges = {(min(i, parent[i]), max(i, parent[i])) for i in order[1:]}
        ring_closures = [(i, j) for i in range(n) for j in neighbours[i] if i < j and (i, j) not in tree_edges]
        heavy = [a.element is None or a.element.symbol != "H" for a in atoms]

        def descendants(a: int) -> set:
            out, stack = set(), [a]
            while stack:
                u = stack.pop()
                for v in children[u]:
                    out.add(v)
                    stack.append(v)
            return out

        torsions: List[Torsion] = []
        column_of_axis: Dict[Tuple[int, int], int] = {}
        for a in order[1:]:
            b = parent[a]
            if parent[b] < 0 or not heavy[a] or not heavy[b]:
                continue
            kids = children[a]
            if not any(heavy[k] for k in kids):
                continue
            if any(refs.get(k, (None, None))[:2] != (a, b) for k in kids):
                continue
            # The axis must not lie in a ring: no ring-closing bond may join the
            # rotating side (a and its subtree) to the fixed side.
            moved = descendants(a) | {a}
            if any((p in moved) != (q in moved) for p, q in ring_closures):
                continue
            name_a, name_b = atoms[a].name, atoms[b].name
            res = atoms[a].residue
            if name_b == "N" and name_a == "CA":
                kind = "phi"
            elif name_b == "CA" and name_a == "C":
                kind = "psi"
            elif {name_a, name_b} == {"C", "N"}:
                kind = "omega"
                if not include_omega:
                    continue
            elif name_a in BACKBONE_NAMES or (name_b in BACKBONE_NAMES and name_b != "CA"):
                continue
            else:
                kind = "chi"
                if not include_chi:
                    continue
            rep = kids[0]
            c = refs[rep][2]
            label = (
                f"{kind} {res.name}{res.index + 1}"
                if kind != "chi"
                else f"chi {name_b}-{name_a} {res.name}{res.index + 1}"
            )
            start = float(dihedral(t(pos[c]), t(pos[b]), t(pos[a]), t(pos[rep])).item())
            column_of_axis[(a, b)] = len(torsions)
            torsions.append(Torsion(kind, label, res.index, (int(c), int(b), int(a), int(rep)), start))
        column = np.array([column_of_axis.get((refs[i][0], refs[i][1]), -1) for i in built], dtype=np.int64)

        self.torsions = torsions
        self.dim = len(torsions)
        self.event_shape = (n, 3)
        self.n_atoms = n
        self.order = order
        self.parent = parent
        self.lower = torch.full((self.dim,), -float(max_delta), dtype=dtype)
        self.upper = -self.lower
        self.start = torch.as_tensor(pos, dtype=dtype)
        # Per-level index tensors for batched NeRF building.
        levels = np.array([level[i] for i in built])
        self._levels = []
        for lv in sorted(set(levels.tolist())):
            sel = np.nonzero(levels == lv)[0]
            self._levels.append(
                dict(
                    idx=torch.as_tensor(idx[sel]),
                    a=torch.as_tensor(ra[sel]),
                    b=torch.as_tensor(rb[sel]),
                    c=torch.as_tensor(rc[sel]),
                    bond=torch.as_tensor(bond_len[sel], dtype=dtype),
                    angle=torch.as_tensor(bond_ang[sel], dtype=dtype),
                    torsion=torch.as_tensor(dih[sel], dtype=dtype),
                    column=torch.as_tensor(column[sel]),
                )
            )
        self._rep = torch.as_tensor([list(tr.atoms) for tr in torsions], dtype=torch.long).reshape(-1, 4)
        self._start_angles = torch.as_tensor([tr.start_angle for tr in torsions], dtype=dtype)

    # ------------------------------------------------------------------
    def labels(self) -> List[str]:
        """Labels of the free torsions, in column order."""
        return [t.label for t in self.torsions]

    def kinds(self) -> List[str]:
        """Kinds (``phi``/``psi``/``omega``/``chi``) of the free torsions, in column order."""
        return [t.kind for t in self.torsions]

    def to_config(self, z: torch.Tensor) -> torch.Tensor:
        """Rebuild Cartesian positions from torsion offsets.

        Args:
            z: Torsion offsets from the start, radians, ``[B, dim]``.

        Returns:
            Positions ``[B, N, 3]`` in the start's units, dtype of ``z``;
            differentiable in ``z``.

        Raises:
            ValueError: if ``z`` is not ``[B, dim]``.
        """
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"TorsionSpace.to_config expects z of shape [B, {self.dim}], got {tuple(z.shape)}")
        dtype, device = z.dtype, z.device
        batch = z.shape[0]
        x = self.start.to(dtype=dtype, device=device).expand(batch, self.n_atoms, 3)
        zpad = torch.cat([z, torch.zeros(batch, 1, dtype=dtype, device=device)], dim=1)
        for lv in self._levels:
            col = lv["column"].to(device)
            col = torch.where(col < 0, torch.full_like(col, self.dim), col)
            tors = lv["torsion"].to(dtype=dtype, device=device) + zpad[:, col]
            new = nerf_place(
                x[:, lv["a"]],
                x[:, lv["b"]],
                x[:, lv["c"]],
                lv["bond"].to(dtype=dtype, device=device),
                lv["angle"].to(dtype=dtype, device=device),
                tors,
            )
            x = x.index_copy(1, lv["idx"].to(device), new)
        return x

    def torsion_angles(self, x: torch.Tensor) -> torch.Tensor:
        """Absolute values of the free torsions in configurations.

        Args:
            x: Positions ``[B, N, 3]``.

        Returns:
            Dihedrals ``[B, dim]``, radians in ``(-pi, pi]``.
        """
        r = self._rep.to(x.device)
        return dihedral(x[:, r[:, 0]], x[:, r[:, 1]], x[:, r[:, 2]], x[:, r[:, 3]])

    def from_config(self, x: torch.Tensor) -> torch.Tensor:
        """Torsion offsets of configurations relative to the start.

        Only the free torsions are read; bond lengths, angles and fixed
        dihedrals of ``x`` are ignored, so ``to_config(from_config(x))``
        equals ``x`` only when ``x`` shares the start's fixed geometry.

        Args:
            x: Positions ``[B, N, 3]``.

        Returns:
            Offsets ``z [B, dim]`` wrapped to ``(-pi, pi]``.
        """
        delta = self.torsion_angles(x) - self._start_angles.to(dtype=x.dtype, device=x.device)
        return torch.atan2(torch.sin(delta), torch.cos(delta))

    def __repr__(self) -> str:
        kinds = self.kinds()
        counts = ", ".join(f"{k}={kinds.count(k)}" for k in ("phi", "psi", "omega", "chi") if kinds.count(k))
        return f"TorsionSpace(n_atoms={self.n_atoms}, dim={self.dim}: {counts})"


def backbone_dihedrals(
    topology, positions: Union[torch.Tensor, np.ndarray]
) -> List[Tuple[Optional[float], Optional[float]]]:
    """Backbone (phi, psi) of every residue, degrees (None where undefined).

    Args:
        topology: OpenMM topology.
        positions: Positions ``[N, 3]``.

    Returns:
        One ``(phi, psi)`` pair per residue.
    """
    pos = torch.as_tensor(np.asarray(positions, dtype=np.float64))
    names: List[Dict[str, int]] = [{a.name: a.index for a in res.atoms()} for res in topology.residues()]
    out: List[Tuple[Optional[float], Optional[float]]] = []

    def dih(ids: Sequence[Optional[int]]) -> Optional[float]:
        if any(k is None for k in ids):
            return None
        return math.degrees(float(dihedral(*(pos[k] for k in ids))))

    for k, res in enumerate(names):
        prev_c = names[k - 1].get("C") if k > 0 else None
        next_n = names[k + 1].get("N") if k + 1 < len(names) else None
        phi = dih([prev_c, res.get("N"), res.get("CA"), res.get("C")])
        psi = dih([res.get("N"), res.get("CA"), res.get("C"), next_n])
        out.append((phi, psi))
    return out
