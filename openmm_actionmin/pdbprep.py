"""Prepare a PDB file for an OpenMM force field, with clear errors.

:func:`prepare_pdb` reads a PDB file, checks its text before OpenMM sees it, and
runs pdbfixer: removes waters and heterogens on request, finds missing residues
and atoms, adds missing heavy atoms (including terminal OXT) and, on request,
hydrogens at a given pH. The result is checked against the force field so that
an unknown residue or a residue without hydrogens is reported by name and
number instead of failing deep inside ``ForceField.createSystem``.

Units: positions come back in nanometres (PDB files are in Angstrom; pdbfixer and
OpenMM convert on reading).

Definitions used here:

* *water*: a residue named HOH, WAT, H2O, SOL, TIP3, TIP4, TIP5, SPC or DOD.
* *heterogen*: a residue read from HETATM records that is neither water nor a
  standard amino acid / nucleotide (pdbfixer's standard names). Residues in
  ATOM records are never removed silently: an unknown one is an error.
* *missing residues*: gaps found by pdbfixer from SEQRES records. They are
  reported in :attr:`PreparedStructure.missing_residues`; only with
  ``add_missing_residues=True`` are internal gaps rebuilt (terminal gaps never).
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Sequence, Set, Tuple, Union

import numpy as np
import torch

from .errors import OracleError

#: Residue names treated as water.
WATER_NAMES = frozenset({"HOH", "WAT", "H2O", "SOL", "TIP3", "TIP4", "TIP5", "SPC", "DOD"})

ForceFieldSpec = Union[str, os.PathLike, Sequence[str], Any]


class PDBPreparationError(OracleError):
    """A PDB file cannot be prepared for the force field (the message says why and what to do)."""


@dataclasses.dataclass
class PreparedStructure:
    """A PDB structure made ready for a force field.

    Attributes:
        path: The source file.
        topology: ``openmm.app.Topology`` of the prepared structure.
        positions: Prepared coordinates ``[N, 3]`` in nm (float64 tensor).
        modeller: ``openmm.app.Modeller`` holding the topology and positions
            (with OpenMM units), for further editing.
        missing_residues: Gaps found from SEQRES, as
            ``(chain_index, residue_index, [residue names])``.
        added_residues: Number of missing residues rebuilt.
        added_heavy_atoms: Number of heavy atoms added (missing atoms and
            terminal atoms).
        added_hydrogens: Number of hydrogens added.
        removed_waters: Number of water residues removed.
        removed_heterogens: Names of the heterogen residues removed, as
            ``"NAME number"``.
        n_atoms: Atoms in the prepared structure.
        n_residues: Residues in the prepared structure.
    """

    path: Path
    topology: object
    positions: torch.Tensor
    modeller: object
    missing_residues: List[Tuple[int, int, List[str]]] = dataclasses.field(default_factory=list)
    added_residues: int = 0
    added_heavy_atoms: int = 0
    added_hydrogens: int = 0
    removed_waters: int = 0
    removed_heterogens: List[str] = dataclasses.field(default_factory=list)
    n_atoms: int = 0
    n_residues: int = 0


# ----------------------------------------------------------------- text check
def check_pdb_text(path: Union[str, os.PathLike]) -> Set[Tuple[str, str, str]]:
    """Check the ATOM/HETATM records of a PDB file before OpenMM reads it.

    Every ATOM and HETATM line must reach column 54 and have numbers in the
    coordinate columns 31-38, 39-46 and 47-54; the file must contain at least one
    ATOM record.

    Args:
        path: The PDB file.

    Returns:
        The residues read from HETATM records, as ``(chain id, residue number,
        insertion code)`` keys (stripped strings).

    Raises:
        PDBPreparationError: the file is missing, has no ATOM records, or has a
            malformed line (naming the file, the line number and what is wrong).
    """
    path = Path(path)
    if not path.exists():
        raise PDBPreparationError(f"PDB file not found: {path} (check the path; it is resolved from {Path.cwd()})")
    if path.is_dir():
        raise PDBPreparationError(f"{path} is a directory, not a PDB file")
    n_atom = 0
    hetatm: Set[Tuple[str, str, str]] = set()
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            record = line[:6]
            if record not in ("ATOM  ", "HETATM"):
                if line.startswith("ENDMDL"):
                    break  # only the first model is used
                continue
            what = record.strip()
            if len(line) < 54:
                raise PDBPreparationError(
                    f"{path}, line {lineno}: {what} record is truncated ({len(line)} characters; the coordinates "
                    f"need columns 31-54): {line!r}. Repair or regenerate the file."
                )
            for axis, (lo, hi) in zip("xyz", ((30, 38), (38, 46), (46, 54))):
                field = line[lo:hi]
                try:
                    value = float(field)
                except ValueError:
                    raise PDBPreparationError(
                        f"{path}, line {lineno}: {what} record has a malformed {axis} coordinate in columns "
                        f"{lo + 1}-{hi}: {field!r} is not a number. Repair the line: {line!r}"
                    ) from None
                if not np.isfinite(value):
                    raise PDBPreparationError(
                        f"{path}, line {lineno}: {what} record has a non-finite {axis} coordinate {field!r} in "
                        f"columns {lo + 1}-{hi}. Repair the line: {line!r}"
                    )
            if record == "ATOM  ":
                n_atom += 1
            else:
                hetatm.add((line[21].strip(), line[22:26].strip(), line[26].strip()))
    if n_atom == 0:
        raise PDBPreparationError(
            f"{path} contains no ATOM records (empty or not a PDB file); a protein or peptide structure is needed"
        )
    return hetatm


# ---------------------------------------------------------------- force field
def load_forcefield(forcefield: ForceFieldSpec):
    """Return an ``openmm.app.ForceField`` from file names or pass one through.

    Args:
        forcefield: A ``ForceField``, one XML file name, or a sequence of names
            (OpenMM's bundled names such as ``"amber14-all.xml"`` or paths).

    Returns:
        The ``openmm.app.ForceField``.
    """
    from openmm import app

    if isinstance(forcefield, app.ForceField):
        return forcefield
    files = [forcefield] if isinstance(forcefield, (str, os.PathLike)) else list(forcefield)
    try:
        return app.ForceField(*[str(f) for f in files])
    except (ValueError, OSError) as exc:
        raise PDBPreparationError(f"cannot load force field {files}: {exc}") from exc


def _standard_residue_names() -> Set[str]:
    import pdbfixer.pdbfixer as pf

    return set(pf.proteinResidues) | set(pf.dnaResidues) | set(pf.rnaResidues)


def _unknown_residue_error(path, residues) -> PDBPreparationError:
    names = ", ".join(f"{r.name} {r.id} (chain {r.chain.id})" for r in residues[:5])
    return PDBPreparationError(
        f"{path}: unknown residue {names}: the force field has no template for it. Provide a force-field "
        "XML with a template for this residue (forcefield=[..., 'my_residue.xml']) or remove it from the PDB "
        "(HETATM residues are removed with keep_heterogens=False)."
    )


def check_residues(topology, forcefield, *, path: Union[str, os.PathLike] = "<topology>", hydrogens_added: bool = True) -> None:
    """Check that every residue matches a template of the force field.

    Args:
        topology: ``openmm.app.Topology`` to check.
        forcefield: ``openmm.app.ForceField``.
        path: Source file, named in the error messages.
        hydrogens_added: Whether hydrogens were added (changes the advice for
            a standard residue that does not match).

    Raises:
        PDBPreparationError: naming the first unmatched residue(s): an unknown
            residue (no template: provide one or remove it), or a standard
            residue that does not match (missing hydrogens when
            ``hydrogens_added`` is False).
    """
    unmatched = forcefield.getUnmatchedResidues(topology)
    if not unmatched:
        return
    standard = _standard_residue_names()
    unknown = [r for r in unmatched if r.name not in standard]
    if unknown:
        raise _unknown_residue_error(path, unknown)
    residue = unmatched[0]
    n_h = sum(1 for a in residue.atoms() if a.element is not None and a.element.symbol == "H")
    names = ", ".join(f"{r.name} {r.id}" for r in unmatched[:5])
    if not hydrogens_added:
        raise PDBPreparationError(
            f"{path}: residue {residue.name} {residue.id} (chain {residue.chain.id}) has {n_h} hydrogen(s) and does "
            f"not match its force-field template: hydrogens are missing (unmatched: {names}). Pass "
            "add_hydrogens=True to add them, or supply a structure with all hydrogens."
        )
    raise PDBPreparationError(
        f"{path}: residue {residue.name} {residue.id} (chain {residue.chain.id}) does not match any force-field "
        f"template even after adding atoms and hydrogens (unmatched: {names}); check its atom names and bonds."
    )


# --------------------------------------------------------------- preparation
def prepare_pdb(
    path: Union[str, os.PathLike],
    *,
    forcefield: ForceFieldSpec = "amber14-all.xml",
    keep_water: bool = False,
    keep_heterogens: bool = False,
    add_hydrogens: bool = True,
    ph: float = 7.0,
    add_missing_residues: bool = False,
    seed: int = 0,
) -> PreparedStructure:
    """Read, repair and check a PDB file for a force field.

    Steps: text check (:func:`check_pdb_text`); read with pdbfixer (first model,
    first alternate location); remove waters unless ``keep_water`` and
    heterogens (non-water, non-standard HETATM residues) unless
    ``keep_heterogens``; find missing residues (rebuild internal gaps only with
    ``add_missing_residues``); find and add missing heavy atoms and terminal
    atoms; add hydrogens at ``ph`` if ``add_hydrogens``; check every residue
    against the force field (:func:`check_residues`).

    Args:
        path: The PDB file.
        forcefield: Force field (``ForceField`` or XML names) used for the
            template check and for hydrogen placement of its residues.
        keep_water: Keep water residues.
        keep_heterogens: Keep non-water heterogens (they then need templates).
        add_hydrogens: Add missing hydrogens. If False, a residue that lacks
            hydrogens is an error naming the residue.
        ph: pH for protonation states when adding hydrogens.
        add_missing_residues: Rebuild internal missing residues found from
            SEQRES (terminal gaps are never rebuilt).
        seed: Seed of the random initial placement of added atoms (OpenMM's
            Modeller draws from Python's ``random`` module; its state is saved
            and restored). Added atoms are relaxed on the deterministic
            Reference platform, so the same file and seed give the same
            positions.

    Returns:
        A :class:`PreparedStructure` with positions ``[N, 3]`` in nm.

    Raises:
        PDBPreparationError: missing file, no ATOM records, malformed line,
            unknown residue, or missing hydrogens with ``add_hydrogens=False``.
    """
    from openmm import app, unit
    from pdbfixer import PDBFixer

    path = Path(path)
    hetatm_keys = check_pdb_text(path)
    ff = load_forcefield(forcefield)
    import openmm

    try:
        fixer = PDBFixer(filename=str(path), platform=openmm.Platform.getPlatformByName("Reference"))
    except Exception as exc:  # pdbfixer/OpenMM raise several types for bad files
        raise PDBPreparationError(f"{path}: OpenMM/pdbfixer cannot read the file: {exc}") from exc
    saved_random_state = random.getstate()
    random.seed(seed)
    try:
        return _fix(fixer, path, ff, hetatm_keys, keep_water, keep_heterogens, add_hydrogens, ph, add_missing_residues, seed)
    finally:
        random.setstate(saved_random_state)


def _fix(fixer, path, ff, hetatm_keys, keep_water, keep_heterogens, add_hydrogens, ph, add_missing_residues, seed):
    """The pdbfixer steps of :func:`prepare_pdb` (random state already seeded)."""
    from openmm import app, unit

    standard = _standard_residue_names()
    removed_waters = 0
    removed_het: List[str] = []
    to_delete = []
    for residue in fixer.topology.residues():
        if residue.name in WATER_NAMES:
            if not keep_water:
                to_delete.append(residue)
                removed_waters += 1
            continue
        key = (residue.chain.id.strip(), str(residue.id).strip(), (residue.insertionCode or "").strip())
        if not keep_heterogens and key in hetatm_keys and residue.name not in standard:
            to_delete.append(residue)
            removed_het.append(f"{residue.name} {residue.id}")
    if to_delete:
        modeller = app.Modeller(fixer.topology, fixer.positions)
        modeller.delete(to_delete)
        fixer.topology = modeller.topology
        fixer.positions = modeller.positions

    fixer.findMissingResidues()
    missing = [(int(c), int(r), list(names)) for (c, r), names in sorted(fixer.missingResidues.items())]
    if add_missing_residues:
        chains = list(fixer.topology.chains())
        keep = {}
        for (c, r), names in fixer.missingResidues.items():
            n_res = len(list(chains[c].residues()))
            if 0 < r < n_res:  # internal gap only
                keep[(c, r)] = names
        fixer.missingResidues = keep
        added_residues = sum(len(v) for v in keep.values())
    else:
        fixer.missingResidues = {}
        added_residues = 0
    fixer.findMissingAtoms()
    n_before = fixer.topology.getNumAtoms()
    fixer.addMissingAtoms(seed=seed)
    added_heavy = fixer.topology.getNumAtoms() - n_before

    added_h = 0
    if add_hydrogens:
        n_before = fixer.topology.getNumAtoms()
        try:
            fixer.addMissingHydrogens(ph, forcefield=ff)
        except Exception as exc:  # OpenMM raises ValueError/Exception for residues it cannot match
            residues = list(fixer.topology.residues())
            match = re.search(r"No template found for residue (\d+) \(", str(exc))
            culprit = residues[int(match.group(1))] if match and int(match.group(1)) < len(residues) else None
            nonstandard = [r for r in residues if r.name not in standard]
            if culprit is not None and culprit.name not in standard:
                raise _unknown_residue_error(path, [culprit]) from exc
            if nonstandard:
                raise _unknown_residue_error(path, nonstandard) from exc
            raise PDBPreparationError(f"{path}: adding hydrogens failed: {exc}") from exc
        added_h = fixer.topology.getNumAtoms() - n_before

    check_residues(fixer.topology, ff, path=path, hydrogens_added=add_hydrogens)

    modeller = app.Modeller(fixer.topology, fixer.positions)
    pos = np.asarray(modeller.positions.value_in_unit(unit.nanometer), dtype=np.float64).reshape(-1, 3)
    return PreparedStructure(
        path=path,
        topology=modeller.topology,
        positions=torch.as_tensor(pos, dtype=torch.float64),
        modeller=modeller,
        missing_residues=missing,
        added_residues=added_residues,
        added_heavy_atoms=added_heavy,
        added_hydrogens=added_h,
        removed_waters=removed_waters,
        removed_heterogens=removed_het,
        n_atoms=modeller.topology.getNumAtoms(),
        n_residues=modeller.topology.getNumResidues(),
    )


def residue_summary(topology) -> Dict[str, int]:
    """Count residues by name (a quick look at a prepared topology)."""
    counts: Dict[str, int] = {}
    for residue in topology.residues():
        counts[residue.name] = counts.get(residue.name, 0) + 1
    return counts


__all__ = [
    "PDBPreparationError",
    "PreparedStructure",
    "WATER_NAMES",
    "check_pdb_text",
    "check_residues",
    "load_forcefield",
    "prepare_pdb",
    "residue_summary",
]
