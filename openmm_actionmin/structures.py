"""Structure identity (fingerprints, RMSD) and export (XYZ, PDB, mdtraj, ASE).

Length conventions at the export boundary:

* ``"nm"``: written as is to mdtraj/PDB (which store nm internally and write
  Angstrom in the PDB file), times 10 to XYZ/ASE (Angstrom).
* ``"angstrom"`` (also ``"A"``, ``"Å"``): divided by 10 for mdtraj, as is for
  XYZ/ASE.
* ``"sigma"`` (reduced Lennard-Jones units): **one sigma is written as one
  Angstrom** everywhere, i.e. as 0.1 nm to mdtraj/PDB and 1 Angstrom to
  XYZ/ASE. The numbers in every exported file are therefore the reduced
  coordinates themselves; the files say so in their comment line / REMARK.
  Non-atomic (``"dimensionless"``) positions cannot be exported.

Element symbols for clusters without a topology (see :func:`cluster_symbols`):
single-component LJ atoms are written as argon ``Ar``; binary LJ type A as
``Ar`` and type B as ``Ne``; ionic clusters as ``Na`` (positive) and ``Cl``
(negative). The elements are labels for viewers only: the energies are those
of the reduced model, not of real argon or neon.

Fingerprints: the sorted list of all pair distances (per type pair for
multi-component clusters) is invariant under rotation, translation,
reflection and permutation of like atoms. It is not a complete invariant
(rare homometric structures share it), so :class:`~.search.steps.MinimaDatabase`
also compares energies.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np

from .oracles.base import Units
from .fileio import atomic_write_text

#: Length units -> nanometres per unit at the export boundary (see module doc).
_NM_PER_UNIT = {
    "nm": 1.0,
    "angstrom": 0.1,
    "a": 0.1,
    "å": 0.1,
    "sigma": 0.1,  # convention: 1 sigma written as 1 Angstrom
}

#: Element written for each cluster atom kind (see module doc).
LJ_SYMBOL = "Ar"
BINARY_SYMBOLS = ("Ar", "Ne")
IONIC_SYMBOLS = ("Na", "Cl")


# --------------------------------------------------------------------- units
def nm_per_length_unit(units: Units) -> float:
    """Nanometres per ``units.length`` at the export boundary.

    Args:
        units: Units of the positions.

    Returns:
        The factor ``f`` with ``x_nm = f * x``; 0.1 for reduced ``"sigma"``
        (1 sigma written as 1 Angstrom).

    Raises:
        ValueError: for a length unit that has no export convention.
    """
    key = str(units.length).strip().lower()
    if key not in _NM_PER_UNIT:
        raise ValueError(
            f"cannot export positions in length unit {units.length!r}: known units are "
            f"{sorted(set(_NM_PER_UNIT) - {'a', 'å'})}; non-atomic results can only be saved as .json"
        )
    return _NM_PER_UNIT[key]


def _positions(positions: Any) -> np.ndarray:
    """Positions as float64 ``[N, 3]`` numpy, with a clear error otherwise."""
    if hasattr(positions, "detach"):
        positions = positions.detach().cpu().numpy()
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3 or x.shape[0] < 1:
        raise ValueError(f"positions must have shape [N, 3] with N >= 1, got {x.shape}")
    if not np.all(np.isfinite(x)):
        atom = int(np.argwhere(~np.isfinite(x))[0, 0])
        raise ValueError(f"positions contain NaN/inf (first at atom {atom}); cannot export a non-finite structure")
    return x


def _symbols(symbols: Optional[Sequence[str]], n: int) -> List[str]:
    if symbols is None:
        return [LJ_SYMBOL] * n
    symbols = [str(s) for s in symbols]
    if len(symbols) != n:
        raise ValueError(f"got {len(symbols)} symbols for {n} atoms; pass one element symbol per atom")
    return symbols


def cluster_symbols(types: Optional[Sequence[int]], n: int, *, ionic: bool = False) -> List[str]:
    """Element labels of cluster atoms (see the module doc for the convention).

    Args:
        types: Type index per atom ``[N]`` (``None``: all type 0).
        n: Number of atoms N.
        ionic: Label types 0/1 as ``Na``/``Cl`` instead of ``Ar``/``Ne``.

    Returns:
        ``[N]`` element symbols.

    Raises:
        ValueError: more than two types, or a wrong number of types.
    """
    if types is None:
        return [IONIC_SYMBOLS[0] if ionic else LJ_SYMBOL] * n
    types = [int(t) for t in types]
    if len(types) != n:
        raise ValueError(f"got {len(types)} types for {n} atoms")
    table = IONIC_SYMBOLS if ionic else BINARY_SYMBOLS
    if types and (min(types) < 0 or max(types) >= len(table)):
        raise ValueError(f"cluster types must be 0 or 1 to get element labels, got {sorted(set(types))}; pass symbols explicitly")
    return [table[t] for t in types]


# ------------------------------------------------------------------- mdtraj
def cluster_topology(symbols: Sequence[str]):
    """An mdtraj topology of unbonded atoms, one residue per atom.

    Args:
        symbols: Element symbols ``[N]``; residue and atom names are the
            upper-cased symbol.

    Returns:
        ``mdtraj.Topology``.
    """
    import mdtraj as md

    top = md.Topology()
    chain = top.add_chain()
    for i, sym in enumerate(symbols):
        try:
            element = md.element.get_by_symbol(sym)
        except KeyError as err:
            raise ValueError(f"atom {i}: unknown element symbol {sym!r}; use a real element (e.g. 'Ar')") from err
        residue = top.add_residue(sym.upper(), chain, resSeq=i + 1)
        top.add_atom(sym.upper(), element, residue)
    return top


def _as_mdtraj_topology(topology: Any):
    import mdtraj as md

    if isinstance(topology, md.Topology):
        return topology
    if hasattr(topology, "atoms") and hasattr(topology, "residues") and hasattr(topology, "chains"):
        return md.Topology.from_openmm(topology)
    raise TypeError(f"topology must be an mdtraj or OpenMM Topology, got {type(topology).__name__}")


def to_mdtraj(positions: Any, units: Units, topology: Any = None, symbols: Optional[Sequence[str]] = None):
    """One-frame ``mdtraj.Trajectory`` of a structure.

    Args:
        positions: ``[N, 3]`` in ``units.length``.
        units: Units of ``positions``; converted to nm (reduced sigma as 0.1 nm).
        topology: Optional OpenMM or mdtraj topology; otherwise unbonded atoms
            named by ``symbols`` (default all ``Ar``).
        symbols: Element symbols ``[N]`` used when there is no topology.

    Returns:
        ``mdtraj.Trajectory`` with ``xyz [1, N, 3]`` in nm.

    Raises:
        ValueError: wrong shape, unknown unit, or atom-count mismatch.
    """
    import mdtraj as md

    x = _positions(positions)
    top = _as_mdtraj_topology(topology) if topology is not None else cluster_topology(_symbols(symbols, x.shape[0]))
    if top.n_atoms != x.shape[0]:
        raise ValueError(f"topology has {top.n_atoms} atoms but positions have {x.shape[0]}; they must describe the same system")
    return md.Trajectory(x[None] * nm_per_length_unit(units), top)


def to_ase(positions: Any, units: Units, symbols: Optional[Sequence[str]] = None):
    """An ``ase.Atoms`` of a structure (Angstrom; reduced sigma as 1 Angstrom).

    Args:
        positions: ``[N, 3]`` in ``units.length``.
        units: Units of ``positions``.
        symbols: Element symbols ``[N]`` (default all ``Ar``).

    Returns:
        ``ase.Atoms`` without a cell or periodicity; ``info["length_unit"]``
        records the original unit.
    """
    import ase

    x = _positions(positions)
    atoms = ase.Atoms(symbols=_symbols(symbols, x.shape[0]), positions=x * nm_per_length_unit(units) * 10.0)
    atoms.info["length_unit"] = units.length
    return atoms


def write_xyz(path: os.PathLike, positions: Any, units: Units, symbols: Optional[Sequence[str]] = None, energy: Optional[float] = None) -> Path:
    """Write an extended-XYZ file (atomic write), readable by ``ase.io.read``.

    Coordinates are written in Angstrom (reduced sigma as 1 Angstrom) with 10
    decimals; the comment line carries ``energy=<value>`` (in
    ``units.energy``), the energy and length units, and the sigma convention.

    Args:
        path: Output path.
        positions: ``[N, 3]`` in ``units.length``.
        units: Units of ``positions`` and ``energy``.
        symbols: Element symbols ``[N]`` (default all ``Ar``).
        energy: Energy to record in the comment line, if any.

    Returns:
        The path written.
    """
    x = _positions(positions)
    syms = _symbols(symbols, x.shape[0])
    xa = x * nm_per_length_unit(units) * 10.0
    comment = ["Properties=species:S:1:pos:R:3"]
    if energy is not None:
        comment.append(f"energy={float(energy):.12g}")
    comment.append(f"energy_unit={_token(units.energy)}")
    comment.append(f"length_unit={_token(units.length)}")
    if str(units.length).lower() == "sigma":
        comment.append('convention="1 sigma written as 1 angstrom"')
    lines = [str(x.shape[0]), " ".join(comment)]
    lines += [f"{s:<3s} {a:18.10f} {b:18.10f} {c:18.10f}" for s, (a, b, c) in zip(syms, xa)]
    path = Path(path)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _token(text: str) -> str:
    text = str(text)
    return f'"{text}"' if any(c in text for c in ' ="') else text


def write_pdb(
    path: os.PathLike,
    positions: Any,
    units: Units,
    topology: Any = None,
    symbols: Optional[Sequence[str]] = None,
    energy: Optional[float] = None,
) -> Path:
    """Write a PDB file through mdtraj (atomic write).

    PDB stores Angstrom with 3 decimals; reduced sigma coordinates appear as
    the reduced numbers (1 sigma = 1 Angstrom). A ``REMARK`` line records the
    energy and units.

    Args:
        path: Output path.
        positions: ``[N, 3]`` in ``units.length``.
        units: Units of ``positions`` and ``energy``.
        topology: Optional OpenMM or mdtraj topology (else unbonded atoms).
        symbols: Element symbols ``[N]`` used when there is no topology.
        energy: Energy for the REMARK line, if any.

    Returns:
        The path written.
    """
    traj = to_mdtraj(positions, units, topology=topology, symbols=symbols)
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_file = os.path.join(tmp, "structure.pdb")
        traj.save_pdb(tmp_file)
        with open(tmp_file, encoding="utf-8") as fh:
            body = fh.read()
    remarks = []
    if energy is not None:
        remarks.append(f"REMARK   1 ENERGY {float(energy):.10g} {units.energy}")
    if str(units.length).lower() == "sigma":
        remarks.append("REMARK   1 REDUCED UNITS: 1 SIGMA WRITTEN AS 1 ANGSTROM")
    text = "\n".join(remarks) + ("\n" if remarks else "") + body
    atomic_write_text(path, text)
    return path


# ------------------------------------------------------------ fingerprints
def _pair_distances(x: np.ndarray) -> np.ndarray:
    diff = x[:, None, :] - x[None, :, :]
    return np.sqrt((diff * diff).sum(-1))


def fingerprint(x: Any, types: Optional[Sequence[int]] = None, decimals: Optional[int] = 4) -> np.ndarray:
    """Rotation-, translation-, reflection- and permutation-invariant fingerprint.

    The sorted pair distances, grouped by unordered type pair ``(a, b)``
    with ``a <= b`` in increasing order (so like atoms may be permuted, unlike
    atoms may not be swapped).

    Args:
        x: Positions ``[N, 3]``.
        types: Type index per atom ``[N]`` (``None``: one type).
        decimals: Round to this many decimals (``None``: no rounding). Rounding
            makes fingerprints hashable-equal for identical minima but can split
            values near a rounding boundary; use :func:`same_structure` for a
            tolerance comparison.

    Returns:
        ``[N (N - 1) / 2]`` float64 array.
    """
    x = _positions(x)
    n = x.shape[0]
    d = _pair_distances(x)
    i, j = np.triu_indices(n, 1)
    if types is None:
        out = np.sort(d[i, j])
    else:
        t = np.asarray(types, dtype=np.int64)
        if t.shape != (n,):
            raise ValueError(f"types must have shape [{n}], got {t.shape}")
        lo = np.minimum(t[i], t[j])
        hi = np.maximum(t[i], t[j])
        key = lo * (int(t.max()) + 1) + hi
        dij = d[i, j]
        out = np.concatenate([np.sort(dij[key == k]) for k in np.unique(key)])
    return np.round(out, decimals) if decimals is not None else out


def fingerprint_batch(x: Any, types: Optional[Sequence[int]] = None):
    """Unrounded fingerprints of a batch in torch (same ordering as :func:`fingerprint`).

    Args:
        x: Positions ``[B, N, 3]`` (torch tensor or array).
        types: Type index per atom ``[N]`` (``None``: one type).

    Returns:
        ``torch.Tensor [B, N (N - 1) / 2]``.
    """
    import torch

    x = torch.as_tensor(x)
    n = x.shape[1]
    i, j = torch.triu_indices(n, n, offset=1, device=x.device)
    d = torch.linalg.vector_norm(x[:, i] - x[:, j], dim=-1)
    if types is None:
        return torch.sort(d, dim=1).values
    t = torch.as_tensor(list(types), dtype=torch.long, device=x.device)
    lo = torch.minimum(t[i], t[j])
    hi = torch.maximum(t[i], t[j])
    key = lo * (int(t.max()) + 1) + hi
    parts = [torch.sort(d[:, key == k], dim=1).values for k in torch.unique(key)]
    return torch.cat(parts, dim=1)


def same_structure(a: Any, b: Any, tol: float = 1e-3, types: Optional[Sequence[int]] = None) -> bool:
    """Whether two structures are the same up to rotation, translation, reflection and permutation.

    Compares unrounded fingerprints: the largest difference between matching
    sorted pair distances must be below ``tol`` (length units of ``a``).

    Args:
        a: Positions ``[N, 3]``.
        b: Positions ``[N, 3]``.
        tol: Tolerance on pair distances.
        types: Type index per atom ``[N]``, shared by both.

    Returns:
        ``True`` if the fingerprints agree within ``tol``.
    """
    fa = fingerprint(a, types, decimals=None)
    fb = fingerprint(b, types, decimals=None)
    if fa.shape != fb.shape:
        return False
    return bool(np.max(np.abs(fa - fb), initial=0.0) < tol)


# -------------------------------------------------------------------- RMSD
def kabsch_rmsd(a: Any, b: Any) -> float:
    """RMSD between two structures after optimal superposition (Kabsch).

    Removes translation and proper rotation (no reflection). It is *not*
    permutation invariant: atom ``i`` of ``a`` is matched with atom ``i`` of
    ``b``. Use :func:`same_structure` to compare clusters of identical atoms.

    Args:
        a: Positions ``[N, 3]``.
        b: Positions ``[N, 3]``, same units as ``a``.

    Returns:
        RMSD in the length units of the input.
    """
    pa = _positions(a)
    pb = _positions(b)
    if pa.shape != pb.shape:
        raise ValueError(f"kabsch_rmsd needs the same number of atoms, got {pa.shape[0]} and {pb.shape[0]}")
    pa = pa - pa.mean(0)
    pb = pb - pb.mean(0)
    u, s, vt = np.linalg.svd(pa.T @ pb)
    sign = np.sign(np.linalg.det(u @ vt))
    s[-1] *= sign if sign != 0 else 1.0
    msd = (np.sum(pa * pa) + np.sum(pb * pb) - 2.0 * np.sum(s)) / pa.shape[0]
    return float(np.sqrt(max(msd, 0.0)))


def rmsd_to_reference(traj: Any, reference: Any, atom_indices: Optional[Sequence[int]] = None, frame: int = 0) -> np.ndarray:
    """RMSD of every frame of ``traj`` to ``reference`` via ``mdtraj.rmsd`` (nm).

    ``mdtraj.rmsd`` recentres its arguments in place; copies are passed so
    neither input changes.

    Args:
        traj: ``mdtraj.Trajectory`` (nm).
        reference: ``mdtraj.Trajectory`` with the same atoms.
        atom_indices: Atoms to superpose and compare (default: all).
        frame: Frame of ``reference`` to use.

    Returns:
        ``[n_frames]`` RMSD in nm.
    """
    import mdtraj as md

    if traj.n_atoms != reference.n_atoms:
        raise ValueError(f"rmsd_to_reference: trajectory has {traj.n_atoms} atoms, reference {reference.n_atoms}")
    idx = None if atom_indices is None else np.asarray(atom_indices, dtype=np.int64)
    return md.rmsd(traj.slice(slice(None), copy=True), reference.slice(slice(None), copy=True), frame=frame, atom_indices=idx)
