"""Prepare a PDB file for an OpenMM force field, with clear errors and a report of every change.

:func:`prepare_pdb` reads a PDB file, checks its text before OpenMM sees it, and
runs pdbfixer: replaces modified residues by their standard parents, removes
waters and heterogens unless asked to keep them, finds missing residues, splits
each chain at its breaks, adds missing heavy atoms (including terminal OXT) and,
on request, hydrogens at a given pH. The result is checked against the force
field so that an unknown residue or a residue without hydrogens is reported by
name and number instead of failing deep inside ``ForceField.createSystem``.
Every change goes into a :class:`PreparationReport` (one line per kind of
change from :meth:`PreparationReport.lines`, also logged at INFO level to the
``openmm_actionmin.pdbprep`` logger).

Units: positions come back in nanometres (PDB files are in Angstrom; pdbfixer and
OpenMM convert on reading).

Definitions used here:

* *water*: a residue named HOH, WAT, H2O, SOL, TIP3, TIP4, TIP5, SPC or DOD.
* *cap*: ACE, NME (and NHE, NH2 where the force field has a template): kept,
  never removed as heterogens.
* *modified residue*: a residue with a MODRES record or in pdbfixer's table of
  substitutions (MSE, CAS, ...): replaced by its standard parent (CAS -> CYS).
* *heterogen*: a residue read from HETATM records that is none of the above
  nor a standard amino acid / nucleotide. Removed by default (reported as
  ions, one-atom residues, or ligands); an in-chain one (with N, CA and C
  atoms) leaves a chain break. Residues in ATOM records are never removed
  silently: an unknown one is an error.
* *chain break*: consecutive residues of a chain whose C-N (or O3'-P) distance
  exceeds :data:`MAX_LINK_A` = 2 A. The chain is split there into separate
  chains, so that each piece gets terminal groups and no bond crosses the gap.
* *missing residues*: gaps found by pdbfixer from SEQRES records. They are
  reported in :attr:`PreparedStructure.missing_residues`; only with
  ``add_missing_residues=True`` are internal gaps rebuilt (terminal gaps never,
  and a rebuilt gap is not split).
* *truncated file*: no END or ENDMDL record. It is used with a warning when its
  last residue is complete; a file cut in the middle of its last residue is
  refused (add an END line to use it as it is).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
import torch

from .errors import OracleError

#: Residue names treated as water.
WATER_NAMES = frozenset({"HOH", "WAT", "H2O", "SOL", "TIP3", "TIP4", "TIP5", "SPC", "DOD"})

#: Terminal caps kept (never removed as heterogens) when the force field has a template for them.
CAP_NAMES = frozenset({"ACE", "NME", "NHE", "NH2"})
#: Longest polymer link (C-N, O3'-P) between consecutive residues that is a bond, Angstrom.
MAX_LINK_A = 2.0

ForceFieldSpec = Union[str, os.PathLike, Sequence[str], Any]

#: Logger of the preparation: one INFO line per kind of change, a WARNING for a truncated file.
logger = logging.getLogger("openmm_actionmin.pdbprep")


class PDBPreparationError(OracleError):
    """A PDB file cannot be prepared for the force field (the message says why and what to do)."""


@dataclasses.dataclass
class PreparationReport:
    """Every change made to a PDB structure while preparing it.

    Residues are named ``"NAME number (chain X)"``.

    Attributes:
        source: The PDB file.
        n_chains_read: Chains that hold the kept residues, before any split.
        n_residues_read: Residues read.
        n_atoms_read: Atoms read.
        replaced_residues: Modified residues replaced by their standard parent
            (MODRES records or pdbfixer's table), ``"CAS 65 (chain A) -> CYS"``.
        removed_waters: Water residues removed.
        removed_ions: Ions (one-atom heterogens) removed, name -> count.
        removed_ligands: Other heterogens removed, name -> count.
        removed_in_chain: In-chain residues removed (modified residues
            without a standard parent); the chain is split at each.
        kept_caps: Terminal caps kept (ACE, NME, ...).
        kept_heterogens: Heterogens kept with ``keep_heterogens=True``.
        missing_residues: Gaps found from SEQRES and whether they were rebuilt.
        added_residues: Missing residues rebuilt.
        chain_breaks: Chain breaks, ``"GLN 137 (chain A) | MET 154 (chain A)
            (link 9.61 A)"``: the chain is split there into two chains, each
            with its own terminal groups.
        completed_residues: Residues given missing heavy atoms, with the names.
        added_terminal_atoms: Terminal atoms (OXT) added.
        added_heavy_atoms: Heavy atoms added in all (missing atoms, terminal
            atoms and rebuilt residues).
        added_hydrogens: Hydrogens added.
        ph: pH used for the hydrogens.
        truncated: The file has no END or ENDMDL record (it may have been cut
            off; a file whose last residue is also incomplete is refused).
        n_chains: Chains of the prepared structure.
        n_residues: Residues of the prepared structure.
        n_atoms: Atoms of the prepared structure.
    """

    source: str = ""
    n_chains_read: int = 0
    n_residues_read: int = 0
    n_atoms_read: int = 0
    replaced_residues: List[str] = dataclasses.field(default_factory=list)
    removed_waters: int = 0
    removed_ions: Dict[str, int] = dataclasses.field(default_factory=dict)
    removed_ligands: Dict[str, int] = dataclasses.field(default_factory=dict)
    removed_in_chain: List[str] = dataclasses.field(default_factory=list)
    kept_caps: List[str] = dataclasses.field(default_factory=list)
    kept_heterogens: List[str] = dataclasses.field(default_factory=list)
    missing_residues: List[str] = dataclasses.field(default_factory=list)
    added_residues: int = 0
    chain_breaks: List[str] = dataclasses.field(default_factory=list)
    completed_residues: List[str] = dataclasses.field(default_factory=list)
    added_terminal_atoms: int = 0
    added_heavy_atoms: int = 0
    added_hydrogens: int = 0
    ph: float = 7.0
    truncated: bool = False
    n_chains: int = 0
    n_residues: int = 0
    n_atoms: int = 0

    def warnings(self) -> List[str]:
        """Lines that deserve the user's attention before the run (a truncated file)."""
        if not self.truncated:
            return []
        return [f"warning: {self.source} has no END record: it may be cut off; it is used as read"]

    def lines(self) -> List[str]:
        """One line per kind of change (empty when nothing was changed)."""
        out = []

        def short(items: List[str], n: int = 6) -> str:
            return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")

        def counted(d: Dict[str, int]) -> str:
            return ", ".join(f"{k} x{v}" for k, v in sorted(d.items()))

        if self.replaced_residues:
            out.append(
                f"replaced {len(self.replaced_residues)} modified residue(s) by the standard parent: "
                f"{short(self.replaced_residues)}"
            )
        if self.removed_waters:
            out.append(f"removed {self.removed_waters} water(s) (keep them with --keep-water / keep_water=True)")
        if self.removed_ions:
            out.append(
                f"removed ions: {counted(self.removed_ions)} (keep them with --keep-heterogens and a force field "
                "with ion templates)"
            )
        if self.removed_ligands:
            out.append(
                f"removed ligands/heterogens: {counted(self.removed_ligands)} (keep them with --keep-heterogens "
                "and a force field with their templates)"
            )
        if self.removed_in_chain:
            out.append(
                f"removed {len(self.removed_in_chain)} in-chain residue(s) without a template: "
                f"{short(self.removed_in_chain)} (the chain is split there)"
            )
        if self.kept_heterogens:
            out.append(f"kept {len(self.kept_heterogens)} heterogen(s): {short(self.kept_heterogens)}")
        if self.missing_residues:
            out.append(f"residues missing from SEQRES: {short(self.missing_residues, 4)}")
        if self.chain_breaks:
            out.append(
                f"split {len(self.chain_breaks)} chain break(s) into separate chains (not bonded across): "
                f"{short(self.chain_breaks, 4)}; {self.n_chains_read} -> {self.n_chains} chains"
            )
        if self.added_heavy_atoms:
            parts = []
            if self.completed_residues:
                parts.append(
                    f"missing atoms of {len(self.completed_residues)} residue(s): {short(self.completed_residues, 4)}"
                )
            if self.added_terminal_atoms:
                parts.append(f"{self.added_terminal_atoms} terminal OXT")
            if self.added_residues:
                parts.append(f"{self.added_residues} rebuilt residue(s)")
            out.append(f"added {self.added_heavy_atoms} heavy atom(s): {'; '.join(parts)}")
        if self.added_hydrogens:
            out.append(f"added {self.added_hydrogens} hydrogen(s) at pH {self.ph:g}")
        return out

    def as_dict(self) -> Dict[str, Any]:
        """The report as plain JSON-ready values, with its ``lines`` and ``warnings``."""
        out = dataclasses.asdict(self)
        out["lines"] = self.lines()
        out["warnings"] = self.warnings()
        return out


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
        report: Every change made, :class:`PreparationReport`.
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
    report: PreparationReport = dataclasses.field(default_factory=PreparationReport)


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


def check_residues(
    topology, forcefield, *, path: Union[str, os.PathLike] = "<topology>", hydrogens_added: bool = True
) -> None:
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
    first alternate location); replace modified residues by their standard
    parents; remove waters unless ``keep_water`` and heterogens (non-water,
    non-cap, non-standard HETATM residues) unless ``keep_heterogens``; find
    missing residues (rebuild internal gaps only with
    ``add_missing_residues``); split chains at breaks (C-N > 2 A) not being
    rebuilt; find and add missing heavy atoms and terminal atoms; add
    hydrogens at ``ph`` if ``add_hydrogens``; check every residue against the
    force field (:func:`check_residues`). The changes are in
    ``result.report`` and logged (see the module docstring).

    Args:
        path: The PDB file.
        forcefield: Force field (``ForceField`` or XML names) used for the
            template check and for hydrogen placement of its residues.
        keep_water: Keep water residues.
        keep_heterogens: Keep non-water heterogens: ions and ligands (they
            then need templates; ``"amber14/tip3p.xml"`` has AMBER's ions).
            Caps (ACE, NME) are kept either way.
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
            unknown residue, missing hydrogens with ``add_hydrogens=False``, or
            a file cut in the middle of its last residue (no END record).
    """
    import openmm
    from pdbfixer import PDBFixer

    path = Path(path)
    hetatm_keys = check_pdb_text(path)
    ff = load_forcefield(forcefield)

    try:
        fixer = PDBFixer(filename=str(path), platform=openmm.Platform.getPlatformByName("Reference"))
    except Exception as exc:  # pdbfixer/OpenMM raise several types for bad files
        raise PDBPreparationError(f"{path}: OpenMM/pdbfixer cannot read the file: {exc}") from exc
    saved_random_state = random.getstate()
    random.seed(seed)
    try:
        prepared = _fix(
            fixer, path, ff, hetatm_keys, keep_water, keep_heterogens, add_hydrogens, ph, add_missing_residues, seed
        )
    finally:
        random.setstate(saved_random_state)
    for line in prepared.report.warnings():
        logger.warning(line)
    for line in prepared.report.lines():
        logger.info(line)
    return prepared


def _scan_ending(path: Path) -> Tuple[bool, Optional[Tuple[str, str, str, str]]]:
    """Whether a PDB file has an END/ENDMDL record, and its last ATOM/HETATM residue.

    Returns:
        ``(has_end, (chain id, residue number, insertion code, residue name))``
        of the last residue before the first ENDMDL (or None without atoms).
    """
    has_end = False
    last = None
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            if raw.startswith("ENDMDL") or raw.rstrip() == "END" or raw.startswith("END "):
                has_end = True
                if raw.startswith("ENDMDL"):
                    break
            elif raw.startswith(("ATOM  ", "HETATM")) and len(raw) >= 27:
                last = (raw[21].strip(), raw[22:26].strip(), raw[26].strip(), raw[17:20].strip())
    return has_end, last


def _residue_key(residue) -> Tuple[str, str, str]:
    return (residue.chain.id.strip(), str(residue.id).strip(), (residue.insertionCode or "").strip())


def _label(residue) -> str:
    chain = residue.chain.id.strip()
    return f"{residue.name} {residue.id}{(residue.insertionCode or '').strip()}" + (
        f" (chain {chain})" if chain else ""
    )


def _link_atoms(first, second):
    """The atoms of a polymer link between two consecutive residues (C-N or O3'-P), or None."""
    for a_name, b_name in (("C", "N"), ("O3'", "P")):
        a = next((x for x in first.atoms() if x.name == a_name), None)
        b = next((x for x in second.atoms() if x.name == b_name), None)
        if a is not None and b is not None:
            return a, b
    return None


def _find_breaks(topology, positions_nm: np.ndarray) -> List[Tuple[int, int, float]]:
    """Chain breaks: ``(chain index, index in chain of the residue after the break, link length in A)``.

    A break is a pair of consecutive residues of one chain whose link (C-N for
    proteins, O3'-P for nucleic acids) is longer than :data:`MAX_LINK_A`.
    """
    breaks = []
    for chain in topology.chains():
        residues = list(chain.residues())
        for k in range(len(residues) - 1):
            link = _link_atoms(residues[k], residues[k + 1])
            if link is None:
                continue
            d = 10.0 * float(np.linalg.norm(positions_nm[link[0].index] - positions_nm[link[1].index]))
            if d > MAX_LINK_A:
                breaks.append((chain.index, k + 1, d))
    return breaks


def _split_chains(fixer, split_at: Dict[int, List[int]]) -> Dict[Tuple[int, int], Tuple[int, int]]:
    """Split chains of ``fixer.topology`` before the given residue indices (in place).

    Args:
        fixer: The PDBFixer.
        split_at: chain index -> indices in that chain of the residues that
            start a new chain.

    Returns:
        Map from ``(old chain index, index in chain)`` to ``(new chain index,
        index in the new chain)`` for every residue position, with one entry
        for the position after the last residue of each old chain.
    """
    from openmm import app, unit

    old = fixer.topology
    new = app.Topology()
    new.setPeriodicBoxVectors(old.getPeriodicBoxVectors())
    atom_map = {}
    position_map: Dict[Tuple[int, int], Tuple[int, int]] = {}
    cut_pairs = set()
    for chain in old.chains():
        starts = set(split_at.get(chain.index, []))
        new_chain = new.addChain(chain.id)
        offset = 0
        previous = None
        residues = list(chain.residues())
        for k, residue in enumerate(residues):
            if k in starts:
                new_chain = new.addChain(chain.id)
                offset = k
                cut_pairs.add((previous, residue))
            position_map[(chain.index, k)] = (new_chain.index, k - offset)
            new_residue = new.addResidue(residue.name, new_chain, residue.id, residue.insertionCode)
            for atom in residue.atoms():
                atom_map[atom] = new.addAtom(atom.name, atom.element, new_residue, atom.id)
            previous = residue
        position_map[(chain.index, len(residues))] = (new_chain.index, len(residues) - offset)
    for a, b in old.bonds():
        if (a.residue, b.residue) in cut_pairs or (b.residue, a.residue) in cut_pairs:
            continue
        new.addBond(atom_map[a], atom_map[b])
    order = sorted(atom_map, key=lambda atom: atom_map[atom].index)
    positions = [fixer.positions[atom.index] for atom in order]
    fixer.topology = new
    fixer.positions = unit.Quantity([p.value_in_unit(unit.nanometer) for p in positions], unit.nanometer)
    return position_map


def _delete(fixer, residues) -> None:
    from openmm import app

    if residues:
        modeller = app.Modeller(fixer.topology, fixer.positions)
        modeller.delete(residues)
        fixer.topology = modeller.topology
        fixer.positions = modeller.positions


def _counts(names: List[str]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for n in names:
        out[n] = out.get(n, 0) + 1
    return out


def _fix(fixer, path, ff, hetatm_keys, keep_water, keep_heterogens, add_hydrogens, ph, add_missing_residues, seed):
    """The pdbfixer steps of :func:`prepare_pdb` (random state already seeded)."""
    from openmm import app, unit

    report = PreparationReport(
        source=str(path),
        n_chains_read=fixer.topology.getNumChains(),
        n_residues_read=fixer.topology.getNumResidues(),
        n_atoms_read=fixer.topology.getNumAtoms(),
    )
    has_end, last_key = _scan_ending(path)
    report.truncated = not has_end
    standard = _standard_residue_names()
    templates = set(getattr(ff, "_templates", {}))

    # 1. modified residues (MODRES or pdbfixer's table) -> their standard parents
    fixer.findNonstandardResidues()
    if fixer.nonstandardResidues:
        report.replaced_residues = [f"{_label(r)} -> {new}" for r, new in fixer.nonstandardResidues]
        renamed = {r.name: new for r, new in fixer.nonstandardResidues}
        for sequence in getattr(fixer, "sequences", []):  # SEQRES must match the replaced names
            sequence.residues = [renamed.get(name, name) for name in sequence.residues]
        fixer.replaceNonstandardResidues()

    # 2. waters and heterogens
    removed_waters = 0
    removed_het: List[str] = []
    ions: List[str] = []
    ligands: List[str] = []
    in_chain: List[str] = []
    kept: List[str] = []
    to_delete = []
    for residue in fixer.topology.residues():
        if residue.name in WATER_NAMES:
            if not keep_water:
                to_delete.append(residue)
                removed_waters += 1
            continue
        if residue.name in standard or _residue_key(residue) not in hetatm_keys:
            continue
        if residue.name in CAP_NAMES and residue.name in templates:
            report.kept_caps.append(_label(residue))
            continue
        if keep_heterogens:
            kept.append(_label(residue))
            continue
        to_delete.append(residue)
        removed_het.append(f"{residue.name} {residue.id}")
        atom_names = {a.name for a in residue.atoms()}
        if residue.name in CAP_NAMES:
            ligands.append(residue.name)
        elif {"N", "CA", "C"} <= atom_names:
            in_chain.append(_label(residue))
        elif len(atom_names) == 1:
            ions.append(residue.name)
        else:
            ligands.append(residue.name)
    _delete(fixer, to_delete)
    report.removed_waters = removed_waters
    report.removed_ions = _counts(ions)
    report.removed_ligands = _counts(ligands)
    report.removed_in_chain = in_chain
    report.kept_heterogens = kept
    report.n_chains_read = sum(1 for chain in fixer.topology.chains() if any(True for _ in chain.residues()))

    # 3. gaps from SEQRES; only internal ones are rebuilt, and only on request
    fixer.findMissingResidues()
    missing = [(int(c), int(r), list(names)) for (c, r), names in sorted(fixer.missingResidues.items())]
    chains = list(fixer.topology.chains())
    keep: Dict[Tuple[int, int], List[str]] = {}
    for (c, r), names in sorted(fixer.missingResidues.items()):
        residues = list(chains[c].residues())
        internal = 0 < r < len(residues)
        if add_missing_residues and internal and all(name in standard for name in names):
            keep[(c, r)] = names
        where = (
            f"between {_label(residues[r - 1])} and {_label(residues[r])}"
            if internal
            else f"before {_label(residues[0])}"
            if r == 0
            else f"after {_label(residues[-1])}"
        )
        action = "rebuilt" if (c, r) in keep else "not modelled"
        report.missing_residues.append(f"{len(names)} residue(s) {where} ({action})")
    added_residues = sum(len(v) for v in keep.values())
    report.added_residues = added_residues

    # 4. chain breaks: never bonded across; the chain is split there instead
    pos_nm = np.asarray(fixer.positions.value_in_unit(unit.nanometer), dtype=np.float64).reshape(-1, 3)
    split_at: Dict[int, List[int]] = {}
    for c, k, d in _find_breaks(fixer.topology, pos_nm):
        if (c, k) in keep:
            continue
        residues = list(chains[c].residues())
        split_at.setdefault(c, []).append(k)
        report.chain_breaks.append(f"{_label(residues[k - 1])} | {_label(residues[k])} (link {d:.2f} A)")
    if split_at:
        position_map = _split_chains(fixer, split_at)
        keep = {position_map[key]: names for key, names in keep.items()}
    fixer.missingResidues = keep

    # 5. missing heavy atoms and terminal groups; a file cut mid-residue is refused
    fixer.findMissingAtoms()
    if report.truncated and last_key is not None:
        for residue, atoms in fixer.missingAtoms.items():
            if _residue_key(residue) == last_key[:3] and residue.name == last_key[3]:
                raise PDBPreparationError(
                    f"{path} looks truncated: it has no END record and its last residue {_label(residue)} lacks "
                    f"atoms {', '.join(a.name for a in atoms)}; restore the complete file, or add an END line to use "
                    "it as it is (the missing atoms are then rebuilt)"
                )
    report.completed_residues = [
        f"{_label(r)} +{len(a)} ({', '.join(x.name for x in a)})" for r, a in fixer.missingAtoms.items()
    ]
    report.added_terminal_atoms = sum(len(t) for t in fixer.missingTerminals.values())
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
            nonstandard = [r for r in residues if r.name not in standard and r.name not in CAP_NAMES]
            if culprit is not None and culprit.name not in standard:
                raise _unknown_residue_error(path, [culprit]) from exc
            if nonstandard:
                raise _unknown_residue_error(path, nonstandard) from exc
            raise PDBPreparationError(f"{path}: adding hydrogens failed: {exc}") from exc
        added_h = fixer.topology.getNumAtoms() - n_before
    report.added_heavy_atoms = added_heavy
    report.added_hydrogens = added_h
    report.ph = ph

    check_residues(fixer.topology, ff, path=path, hydrogens_added=add_hydrogens)

    modeller = app.Modeller(fixer.topology, fixer.positions)
    pos = np.asarray(modeller.positions.value_in_unit(unit.nanometer), dtype=np.float64).reshape(-1, 3)
    report.n_chains = modeller.topology.getNumChains()
    report.n_residues = modeller.topology.getNumResidues()
    report.n_atoms = modeller.topology.getNumAtoms()
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
        report=report,
    )


def long_links(topology, positions_nm) -> List[Tuple[str, str, float]]:
    """Bonded inter-residue links (C-N, O3'-P) longer than :data:`MAX_LINK_A`.

    Args:
        topology: ``openmm.app.Topology``.
        positions_nm: Positions ``[N, 3]`` in nm.

    Returns:
        ``(residue, residue, length in A)`` for each such bond; empty for a
        prepared structure.
    """
    pos = np.asarray(positions_nm, dtype=np.float64).reshape(-1, 3)
    out = []
    for a, b in topology.bonds():
        if a.residue is b.residue or {a.name, b.name} not in ({"C", "N"}, {"O3'", "P"}):
            continue
        d = 10.0 * float(np.linalg.norm(pos[a.index] - pos[b.index]))
        if d > MAX_LINK_A:
            out.append((_label(a.residue), _label(b.residue), d))
    return out


def residue_summary(topology) -> Dict[str, int]:
    """Count residues by name (a quick look at a prepared topology)."""
    counts: Dict[str, int] = {}
    for residue in topology.residues():
        counts[residue.name] = counts.get(residue.name, 0) + 1
    return counts


__all__ = [
    "CAP_NAMES",
    "MAX_LINK_A",
    "PDBPreparationError",
    "PreparationReport",
    "PreparedStructure",
    "WATER_NAMES",
    "check_pdb_text",
    "check_residues",
    "load_forcefield",
    "long_links",
    "prepare_pdb",
    "residue_summary",
]
