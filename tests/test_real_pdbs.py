"""Real PDB files through preparation and ``actionmin minimize``: caps, modified residues, waters, gaps, truncation.

The structures are pdbfixer's own test files (systems/README.md): ACE-ALA-NME,
the NMR structure 1VII with hydrogens, and the crystal structure 1BHL (HIV-1
integrase core: two in-chain S-(dimethylarsenic)cysteines, 53 waters and a
16-residue gap between GLN 137 and MET 154).
"""

import math
import re
from pathlib import Path

import numpy as np
import pytest

import openmm_actionmin as am
from openmm_actionmin.cli import main
from openmm_actionmin.data import data_path
from openmm_actionmin.pdbprep import MAX_LINK_A, PDBPreparationError, long_links, prepare_pdb

DIPEPTIDE = data_path("systems", "pdb", "alanine_dipeptide.pdb")
VILLIN_NMR = data_path("systems", "pdb", "1vii_villin_nmr.pdb")
INTEGRASE = data_path("systems", "pdb", "1bhl_integrase_core.pdb")


def _cli(capsys, *argv):
    code = main(["minimize", *map(str, argv), "--method", "openmm", "--quiet"])
    out = capsys.readouterr()
    return code, out.out, out.err


def _start_energy(stdout):
    match = re.search(r"start energy (\S+) kJ/mol", stdout)
    assert match, stdout
    return float(match.group(1))


def _peptide_links_A(prep):
    """Lengths (A) of every bonded C-N link between two residues of the prepared topology."""
    pos = prep.positions.numpy()
    return [
        10.0 * float(np.linalg.norm(pos[a.index] - pos[b.index]))
        for a, b in prep.topology.bonds()
        if a.residue is not b.residue and {a.name, b.name} == {"C", "N"}
    ]


def test_alanine_dipeptide_keeps_its_caps_and_runs(capsys):
    prep = prepare_pdb(DIPEPTIDE)
    assert [r.name for r in prep.topology.residues()] == ["ACE", "ALA", "NME"]
    assert prep.report.kept_caps == ["ACE 1 (chain A)", "NME 3 (chain A)"]
    assert prep.removed_heterogens == [] and prep.report.added_hydrogens == 12 and prep.n_atoms == 22
    code, out, err = _cli(capsys, DIPEPTIDE, "--budget-s", "5")
    assert code == 0, err
    assert "preparation: added 12 hydrogen(s) at pH 7" in out
    assert math.isfinite(_start_energy(out))


def test_preparation_report_reaches_the_result():
    result = am.minimize(str(DIPEPTIDE), "openmm", budget_s=3, progress=False)
    report = result.extra["preparation"]
    assert report["kept_caps"] == ["ACE 1 (chain A)", "NME 3 (chain A)"]
    assert report["lines"] == ["added 12 hydrogen(s) at pH 7"] and report["truncated"] is False


def test_nmr_structure_with_hydrogens_runs_unchanged(capsys):
    prep = prepare_pdb(VILLIN_NMR)
    assert prep.report.lines() == [] and prep.n_atoms == 596
    code, out, err = _cli(capsys, VILLIN_NMR, "--budget-s", "5")
    assert code == 0, err
    assert math.isfinite(_start_energy(out))


def test_crystal_structure_modified_residues_waters_and_gap(capsys):
    prep = prepare_pdb(INTEGRASE)
    report = prep.report
    assert report.replaced_residues == ["CAS 65 (chain A) -> CYS", "CAS 130 (chain A) -> CYS"]
    assert report.removed_waters == 53
    assert report.missing_residues == ["16 residue(s) between GLN 137 (chain A) and MET 154 (chain A) (not modelled)"]
    assert len(report.chain_breaks) == 1 and report.chain_breaks[0].startswith("GLN 137 (chain A) | MET 154 (chain A)")
    assert report.n_chains_read == 1 and report.n_chains == prep.topology.getNumChains() == 2
    assert prep.n_residues == 135  # 133 standard + 2 replaced, nothing removed from the chain
    links = _peptide_links_A(prep)
    assert len(links) == 133 and max(links) < MAX_LINK_A  # 135 residues in 2 chains: 133 peptide bonds
    assert long_links(prep.topology, prep.positions.numpy()) == []
    code, out, err = _cli(capsys, INTEGRASE, "--budget-s", "5")
    assert code == 0, err
    for text in ("CAS 65 (chain A) -> CYS", "removed 53 water(s)", "split 1 chain break(s)", "1 -> 2 chains"):
        assert text in out
    start = _start_energy(out)
    assert math.isfinite(start) and start < 0.0  # bonding across the gap gave +680,009 kJ/mol


def test_unknown_in_chain_residue_splits_the_chain(tmp_path):
    lines = [ln for ln in Path(INTEGRASE).read_text().splitlines() if not ln.startswith("MODRES")]
    lines = [
        ln[:17] + "ZZZ" + ln[20:] if ln.startswith(("HETATM", "ANISOU")) and ln[17:20] == "CAS" else ln for ln in lines
    ]
    path = tmp_path / "modified.pdb"
    path.write_text("\n".join(lines) + "\n")
    prep = prepare_pdb(path)
    assert prep.report.removed_in_chain == ["ZZZ 65 (chain A)", "ZZZ 130 (chain A)"]
    breaks = prep.report.chain_breaks
    assert [b.split(" (link")[0] for b in breaks] == [
        "ASP 64 (chain A) | THR 66 (chain A)",
        "ALA 129 (chain A) | TRP 131 (chain A)",
        "GLN 137 (chain A) | MET 154 (chain A)",
    ]
    assert prep.topology.getNumChains() == 4
    assert max(_peptide_links_A(prep)) < MAX_LINK_A
    assert any("removed 2 in-chain residue(s)" in line for line in prep.report.lines())


def test_file_cut_mid_residue_is_refused(tmp_path, capsys):
    lines = Path(INTEGRASE).read_text().splitlines()
    cut = next(
        i
        for i, ln in enumerate(lines)
        if ln.startswith("ATOM") and ln[22:26].strip() == "100" and ln[12:16].strip() == "CB"
    )
    path = tmp_path / "cut.pdb"
    path.write_text("\n".join(lines[: cut + 1]) + "\n")
    with pytest.raises(
        PDBPreparationError,
        match=r"cut.pdb looks truncated: it has no END record and its last residue "
        r"\w+ 100 \(chain A\) lacks atoms .*add an END line",
    ):
        prepare_pdb(path)
    code, out, err = _cli(capsys, path, "--budget-s", "5")
    assert code == 2 and "looks truncated" in err and len(err.strip().splitlines()) == 1


def test_file_cut_between_residues_is_used_with_a_warning(tmp_path, capsys):
    lines = [
        ln
        for ln in Path(DIPEPTIDE).read_text().splitlines()
        if " NME " not in ln and not ln.startswith(("END", "CONECT"))
    ]
    path = tmp_path / "cut.pdb"
    path.write_text("\n".join(lines) + "\n")
    prep = prepare_pdb(path)
    assert prep.report.truncated and prep.report.added_terminal_atoms == 1
    code, out, err = _cli(capsys, path, "--budget-s", "3")
    assert code == 0, err
    assert "preparation: warning:" in out and "has no END record" in out


def test_keep_water_flag_reaches_the_preparation(capsys):
    cln025 = data_path("systems", "pdb", "5awl_cln025.pdb")
    code, out, err = _cli(capsys, cln025, "--budget-s", "3", "--keep-water")
    assert code == 0, err
    assert "removed 12 water(s)" not in out and math.isfinite(_start_energy(out))
    code, out, err = _cli(capsys, cln025, "--budget-s", "3")
    assert code == 0 and "removed 12 water(s)" in out
