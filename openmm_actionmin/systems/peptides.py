"""Peptide and protein systems: from a one-letter sequence, or from a user's PDB.

:func:`peptide` builds the heavy atoms offline with PeptideBuilder (ideal
Engh-Huber-style geometry, given backbone phi/psi), writes them as PDB, and lets
:meth:`OpenMMOracle.from_pdb <openmm_actionmin.oracles.openmm.OpenMMOracle.from_pdb>`
(pdbfixer) add the terminal OXT and the hydrogens and build the force field.
:func:`from_pdb` wraps a prepared PDB. Both return a :class:`System` whose
oracle speaks nm and kJ/mol.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..spaces import Displacement
from ..torsions import TorsionSpace
from .base import System

#: One-letter codes PeptideBuilder can build.
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
#: Backbone (phi, psi) of an ideal right-handed alpha helix, degrees.
HELIX_PHI_PSI = (-57.0, -47.0)

Conformation = Union[str, Sequence[Tuple[float, float]]]


def _check_sequence(sequence: str) -> str:
    if not isinstance(sequence, str) or not sequence.strip():
        raise ValueError(
            "peptide sequence must be a non-empty string of one-letter amino-acid codes, e.g. 'YYDPETGTWY'"
        )
    seq = sequence.strip().upper()
    for k, letter in enumerate(seq):
        if letter not in AMINO_ACIDS:
            raise ValueError(
                f"peptide sequence {sequence!r}: letter {letter!r} at position {k + 1} is not one of the 20 "
                f"standard one-letter codes ({AMINO_ACIDS})"
            )
    if len(seq) < 2:
        raise ValueError(f"peptide sequence {sequence!r} has one residue; give at least two")
    return seq


def _phi_psi(seq: str, conformation: Conformation) -> Optional[List[Tuple[float, float]]]:
    """Per-residue (phi, psi) in degrees, or None for PeptideBuilder's extended chain."""
    if isinstance(conformation, str):
        if conformation == "extended":
            return None
        if conformation == "helix":
            return [HELIX_PHI_PSI] * len(seq)
        raise ValueError(f"unknown peptide conformation {conformation!r}; use 'extended', 'helix' or a (phi, psi) list")
    pairs = [tuple(float(v) for v in p) for p in conformation]
    if len(pairs) != len(seq) or any(len(p) != 2 for p in pairs):
        raise ValueError(
            f"conformation must give one (phi, psi) pair in degrees per residue: {len(seq)} for {seq}, got {len(pairs)}"
        )
    if not all(math.isfinite(v) for p in pairs for v in p):
        raise ValueError("conformation (phi, psi) angles must be finite degrees")
    return pairs  # type: ignore[return-value]


def build_heavy_atom_pdb(sequence: str, conformation: Conformation = "extended") -> str:
    """PDB text of the heavy atoms of a peptide built by PeptideBuilder.

    The first residue's phi and the last residue's psi are not defined by
    PeptideBuilder's chain growth and are ignored. ``"extended"`` is
    PeptideBuilder's extended chain (phi = -120, psi = 140 degrees, omega = 180).

    Args:
        sequence: One-letter sequence, e.g. ``"YYDPETGTWY"``.
        conformation: ``"extended"``, ``"helix"`` or one (phi, psi) pair in
            degrees per residue.

    Returns:
        PDB text (Angstrom) without hydrogens or the terminal OXT.

    Raises:
        ValueError: unknown letters or a malformed conformation.
    """
    import PeptideBuilder
    from Bio.PDB import PDBIO

    seq = _check_sequence(sequence)
    pairs = _phi_psi(seq, conformation)
    if pairs is None:
        structure = PeptideBuilder.make_extended_structure(seq)
    else:
        phi = [p[0] for p in pairs[1:]]
        psi_im1 = [p[1] for p in pairs[:-1]]
        structure = PeptideBuilder.make_structure(seq, phi, psi_im1)
    writer = PDBIO()
    writer.set_structure(structure)
    buf = io.StringIO()
    writer.save(buf)
    return buf.getvalue()


def _space(kind: str, topology: Any, positions: torch.Tensor, radius_nm: float):
    if kind == "torsion":
        return TorsionSpace(topology, positions)
    if kind == "displacement":
        return Displacement(positions, radius_nm)
    raise ValueError(f"unknown search space {kind!r}; use 'torsion' or 'displacement'")


def _symbols(topology: Any) -> List[str]:
    return [a.element.symbol if a.element is not None else "X" for a in topology.atoms()]


def peptide(
    sequence: str,
    conformation: Conformation = "extended",
    *,
    forcefield: Union[str, Sequence[str]] = "amber14-all.xml",
    solvent: str = "obc2",
    seed: Optional[int] = None,
    perturb_deg: float = 20.0,
    space: str = "torsion",
    radius_nm: float = 0.3,
    name: Optional[str] = None,
    **oracle_kwargs: Any,
) -> System:
    """A peptide built from its sequence, with an OpenMM oracle (nm, kJ/mol).

    Args:
        sequence: One-letter sequence, e.g. ``"YYDPETGTWY"`` (CLN025).
        conformation: ``"extended"`` (PeptideBuilder's extended chain),
            ``"helix"`` (phi, psi = -57, -47) or one (phi, psi) pair in degrees
            per residue.
        forcefield: Force-field XML name(s).
        solvent: ``"obc2"`` (native GBSAOBCForce), ``"obc2-xml"``, ``"gbn2"``
            or ``"none"``.
        seed: None keeps the built chain as the start. An integer perturbs
            every free backbone phi/psi of the start by a uniform random
            offset in ``[-perturb_deg, perturb_deg]`` (reproducible per seed).
        perturb_deg: Half-width of that perturbation, degrees.
        space: Search space around the start: ``"torsion"`` (phi/psi/chi
            offsets, :class:`~openmm_actionmin.torsions.TorsionSpace`) or
            ``"displacement"`` (Cartesian, ``radius_nm`` per coordinate).
        radius_nm: Displacement radius (displacement space only), nm.
        name: System name (default: the sequence).
        **oracle_kwargs: Passed to ``OpenMMOracle.from_pdb`` (``platform``,
            ``threads_per_context``, ``n_contexts``, ``transform``, ...).

    Returns:
        A :class:`System` with ``start_positions [N, 3]`` nm, ``symbols``,
        ``topology`` and ``metadata`` (sequence, conformation, seed, ...).
        ``reference_positions`` is None (no known answer).
    """
    from ..oracles.openmm import OpenMMOracle

    seq = _check_sequence(sequence)
    text = build_heavy_atom_pdb(seq, conformation)
    with tempfile.TemporaryDirectory(prefix="actionmin_peptide_") as tmp:
        path = Path(tmp) / f"{seq}.pdb"
        path.write_text(text)
        oracle = OpenMMOracle.from_pdb(path, forcefield=forcefield, solvent=solvent, **oracle_kwargs)
    topology = oracle.topology
    start = oracle.positions.clone().to(torch.float64)
    torsions = TorsionSpace(topology, start)
    if seed is not None:
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.zeros(1, torsions.dim, dtype=torch.float64)
        backbone = torch.tensor([k in ("phi", "psi") for k in torsions.kinds()])
        noise = (2.0 * torch.rand(1, torsions.dim, generator=gen, dtype=torch.float64) - 1.0) * math.radians(
            perturb_deg
        )
        z[:, backbone] = noise[:, backbone]
        start = torsions.to_config(z)[0].detach()
        torsions = TorsionSpace(topology, start)
    search_space = torsions if space == "torsion" else _space(space, topology, start, radius_nm)
    oracle.positions = start.clone()
    return System(
        name=name or seq,
        oracle=oracle,
        space=search_space,
        start_positions=start,
        symbols=_symbols(topology),
        topology=topology,
        metadata={
            "sequence": seq,
            "conformation": conformation if isinstance(conformation, str) else [list(p) for p in conformation],
            "forcefield": forcefield,
            "solvent": solvent,
            "seed": seed,
            "perturb_deg": perturb_deg if seed is not None else 0.0,
            "builder": "PeptideBuilder heavy atoms + pdbfixer (OXT, hydrogens at pH 7)",
        },
    )


def from_pdb(
    path: Union[str, os.PathLike],
    *,
    forcefield: Union[str, Sequence[str]] = "amber14-all.xml",
    solvent: str = "obc2",
    space: str = "displacement",
    radius_nm: float = 0.1,
    name: Optional[str] = None,
    keep_water: bool = False,
    keep_heterogens: bool = False,
    add_hydrogens: bool = True,
    **oracle_kwargs: Any,
) -> System:
    """A System for a user's PDB file (prepared by pdbfixer), with an OpenMM oracle.

    Preparation (:func:`~openmm_actionmin.pdbprep.prepare_pdb`) keeps the
    ACE/NME caps, replaces modified residues by their standard parents,
    removes waters, ions and ligands unless asked to keep them, splits a chain
    at each break (C-N longer than 2 A) instead of bonding across it, and adds
    missing heavy atoms and hydrogens. Every change is listed in
    ``metadata["preparation"]`` (:meth:`PreparationReport.as_dict
    <openmm_actionmin.pdbprep.PreparationReport.as_dict>`, whose ``"lines"``
    say it in words) and logged to the ``openmm_actionmin.pdbprep`` logger.

    Args:
        path: PDB file.
        forcefield: Force-field XML name(s).
        solvent: ``"obc2"``, ``"obc2-xml"``, ``"gbn2"`` or ``"none"``.
        space: ``"displacement"`` (Cartesian, ``radius_nm`` per coordinate,
            default) or ``"torsion"`` (phi/psi/chi offsets; needs a single
            connected molecule).
        radius_nm: Displacement radius, nm.
        name: System name (default: the file stem).
        keep_water: Keep crystal waters (removed by default; they need a
            water model in ``forcefield``, e.g. ``"amber14/tip3p.xml"``).
        keep_heterogens: Keep ions and ligands (removed by default; they
            need templates in ``forcefield``). Caps are always kept.
        add_hydrogens: Add missing hydrogens (pdbfixer, pH 7).
        **oracle_kwargs: Passed to ``OpenMMOracle.from_pdb``.

    Returns:
        A :class:`System` whose ``start_positions`` and
        ``reference_positions`` are the PDB's own prepared coordinates
        ``[N, 3]`` nm.

    Raises:
        PDBPreparationError: the file cannot be prepared (the message names
            the file, residue or atom).
    """
    from ..oracles.openmm import OpenMMOracle

    path = Path(path)
    oracle = OpenMMOracle.from_pdb(
        path,
        forcefield=forcefield,
        solvent=solvent,
        keep_water=keep_water,
        keep_heterogens=keep_heterogens,
        add_hydrogens=add_hydrogens,
        **oracle_kwargs,
    )
    topology = oracle.topology
    start = oracle.positions.clone().to(torch.float64)
    return System(
        name=name or path.stem,
        oracle=oracle,
        space=_space(space, topology, start, radius_nm),
        reference_positions=start.clone(),
        start_positions=start,
        symbols=_symbols(topology),
        topology=topology,
        metadata={
            "pdb": str(path),
            "forcefield": forcefield,
            "solvent": solvent,
            "preparation": oracle.preparation.report.as_dict(),
        },
    )


def ca_indices(topology: Any) -> np.ndarray:
    """Indices of the CA atoms of a topology, in residue order."""
    return np.array([a.index for a in topology.atoms() if a.name == "CA"], dtype=np.int64)
