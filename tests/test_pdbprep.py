"""PDB preparation: pdbfixer repairs and clear errors (real pdbfixer/OpenMM, no mocks)."""

from pathlib import Path

import pytest
import torch

from openmm_actionmin.data import data_path
from openmm_actionmin.pdbprep import PDBPreparationError, check_pdb_text, prepare_pdb

TRPCAGE = data_path("systems", "pdb", "1l2y_trpcage_model1.pdb")
CLN025 = data_path("systems", "pdb", "5awl_cln025.pdb")


def _lines(path):
    return Path(path).read_text().splitlines()


def _write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cln025_waters_removed_and_hydrogens_added():
    prep = prepare_pdb(CLN025)
    assert prep.removed_waters == 12
    assert prep.added_hydrogens == 73
    assert prep.added_heavy_atoms == 0
    assert prep.n_residues == 10 and prep.n_atoms == 166
    assert all(r.name not in ("HOH", "WAT") for r in prep.topology.residues())
    assert prep.positions.shape == (166, 3) and prep.positions.dtype == torch.float64
    # nm, not Angstrom: a 10-residue hairpin spans about 2 nm
    span = float((prep.positions.max(0).values - prep.positions.min(0).values).max())
    assert 1.0 < span < 4.0
    assert prep.modeller.topology.getNumAtoms() == 166


def test_preparation_is_reproducible_for_a_seed():
    a = prepare_pdb(CLN025, seed=3).positions
    b = prepare_pdb(CLN025, seed=3).positions
    assert torch.equal(a, b)


def test_trpcage_keeps_its_hydrogens():
    prep = prepare_pdb(TRPCAGE, add_hydrogens=False)
    assert prep.n_atoms == 304 and prep.added_hydrogens == 0 and prep.removed_waters == 0


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nothere.pdb"
    with pytest.raises(PDBPreparationError, match="PDB file not found: .*nothere.pdb"):
        prepare_pdb(missing)


def test_empty_pdb(tmp_path):
    path = _write(tmp_path, "empty.pdb", ["REMARK nothing here", "END"])
    with pytest.raises(PDBPreparationError, match="empty.pdb contains no ATOM records"):
        prepare_pdb(path)


def test_truncated_atom_line_names_file_and_line(tmp_path):
    lines = _lines(TRPCAGE)
    idx = next(i for i, ln in enumerate(lines) if ln.startswith("ATOM")) + 4
    lines[idx] = lines[idx][:40]
    path = _write(tmp_path, "cut.pdb", lines)
    with pytest.raises(PDBPreparationError, match=rf"cut.pdb, line {idx + 1}: ATOM record is truncated"):
        prepare_pdb(path)


def test_malformed_coordinate_names_file_line_and_columns(tmp_path):
    lines = _lines(TRPCAGE)
    idx = next(i for i, ln in enumerate(lines) if ln.startswith("ATOM")) + 7
    lines[idx] = lines[idx][:38] + "  12.x45" + lines[idx][46:]
    path = _write(tmp_path, "bad.pdb", lines)
    with pytest.raises(
        PDBPreparationError, match=rf"bad.pdb, line {idx + 1}: .*malformed y coordinate in columns 39-46"
    ):
        check_pdb_text(path)


def test_unknown_residue_is_named_with_number(tmp_path):
    lines = [
        ln[:17] + "XYZ" + ln[20:] if ln.startswith("ATOM") and ln[22:26].strip() == "5" else ln
        for ln in _lines(TRPCAGE)
    ]
    path = _write(tmp_path, "unknown.pdb", lines)
    with pytest.raises(PDBPreparationError, match="unknown residue XYZ 5 .*Provide a force-field XML with a template"):
        prepare_pdb(path)


def test_missing_hydrogens_named_when_not_adding():
    with pytest.raises(PDBPreparationError, match="residue TYR 1 .*hydrogens are missing.*add_hydrogens=True"):
        prepare_pdb(CLN025, add_hydrogens=False)


def test_kept_water_needs_a_template_then_works_with_one():
    with pytest.raises(PDBPreparationError, match="unknown residue HOH"):
        prepare_pdb(CLN025, keep_water=True)
    prep = prepare_pdb(CLN025, keep_water=True, forcefield=["amber14-all.xml", "amber14/tip3p.xml"])
    assert prep.removed_waters == 0
    assert sum(1 for r in prep.topology.residues() if r.name == "HOH") == 12
    assert prep.n_atoms == 166 + 12 * 3


def test_heterogens_removed_on_request_and_missing_heavy_atom_added(tmp_path):
    lines = _lines(CLN025)
    # drop the hydroxyl oxygen of Tyr 1 (a missing heavy atom) and add a zinc ion as a HETATM heterogen
    lines = [
        ln
        for ln in lines
        if not (ln.startswith(("ATOM", "ANISOU")) and ln[12:16].strip() == "OH" and ln[22:26].strip() == "1")
    ]
    end = max(i for i, ln in enumerate(lines) if ln.startswith(("ATOM", "HETATM")))
    lines.insert(end + 1, "HETATM  999 ZN    ZN A 101      20.000  20.000  20.000  1.00  0.00          ZN")
    path = _write(tmp_path, "het.pdb", lines)
    prep = prepare_pdb(path)
    assert prep.removed_heterogens == ["ZN 101"]
    assert prep.added_heavy_atoms == 1 and prep.n_atoms == 166
    kept = prepare_pdb(path, keep_heterogens=True, forcefield=["amber14-all.xml", "amber14/tip3p.xml"])
    assert kept.removed_heterogens == [] and any(r.name == "ZN" for r in kept.topology.residues())


def test_missing_residue_reported_and_rebuilt_on_request(tmp_path):
    seq = "ASN LEU TYR ILE GLN TRP LEU LYS ASP GLY GLY PRO SER SER GLY ARG PRO PRO PRO SER".split()
    seqres = [f"SEQRES   1     20  {' '.join(seq[:13])}", f"SEQRES   2     20  {' '.join(seq[13:])}"]
    body = [ln for ln in _lines(TRPCAGE) if not (ln.startswith("ATOM") and ln[22:26].strip() == "10")]
    path = _write(tmp_path, "gap.pdb", seqres + body)
    prep = prepare_pdb(path)
    assert prep.missing_residues == [(0, 9, ["GLY"])]
    assert prep.n_residues == 19 and prep.added_residues == 0
    # the gap is not bonded across: the chain is split there, each piece with its terminal groups
    assert prep.topology.getNumChains() == 2 and len(prep.report.chain_breaks) == 1
    assert prep.report.chain_breaks[0].startswith("ASP 9 | GLY 11")
    assert sum(1 for a in prep.topology.atoms() if a.name == "OXT") == 2
    rebuilt = prepare_pdb(path, add_missing_residues=True)
    assert rebuilt.n_residues == 20 and rebuilt.added_residues == 1 and rebuilt.n_atoms == 304
    assert rebuilt.topology.getNumChains() == 1 and rebuilt.report.chain_breaks == []
