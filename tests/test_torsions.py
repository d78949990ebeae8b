"""Torsion space: Z-matrix rebuild, known-structure reproduction, gradients."""

import io
import math

import numpy as np
import pytest
import torch

PeptideBuilder = pytest.importorskip("PeptideBuilder")
from Bio.PDB import PDBIO  # noqa: E402
from openmm.app import PDBFile  # noqa: E402

from openmm_actionmin.geometry import kabsch_rmsd  # noqa: E402
from openmm_actionmin.torsions import TorsionSpace, backbone_dihedrals, dihedral  # noqa: E402


def _pdb(structure) -> PDBFile:
    writer = PDBIO()
    writer.set_structure(structure)
    buf = io.StringIO()
    writer.save(buf)
    return PDBFile(io.StringIO(buf.getvalue()))


def _xyz(pdb: PDBFile) -> np.ndarray:
    return np.asarray(pdb.getPositions(asNumpy=True)._value, dtype=np.float64)


SEQ = "YYDPETGTWY"


@pytest.fixture(scope="module")
def extended():
    return _pdb(PeptideBuilder.make_extended_structure(SEQ))


def test_free_torsions_are_the_chemical_ones(extended):
    space = TorsionSpace(extended.topology, _xyz(extended))
    kinds = space.kinds()
    labels = space.labels()
    # 10 residues: phi for residues 2..10 except proline 4 (ring), psi for all 10.
    assert kinds.count("phi") == 8
    assert "phi PRO4" not in labels
    assert kinds.count("psi") == 10
    assert kinds.count("omega") == 0
    # Ring bonds never rotate; chi1/chi2 of Tyr/Trp do; hydroxyl rotors (CZ-OH) have no heavy child.
    assert "chi CA-CB TYR1" in labels and "chi CB-CG TRP9" in labels
    assert not any("CE1-CZ" in s or "CZ-OH" in s or "PRO4" in s and s.startswith("chi") for s in labels)
    with_omega = TorsionSpace(extended.topology, _xyz(extended), include_omega=True)
    assert with_omega.kinds().count("omega") == 9
    assert TorsionSpace(extended.topology, _xyz(extended), include_chi=False).dim == 18
    assert space.event_shape == (extended.topology.getNumAtoms(), 3)
    assert torch.allclose(space.upper, torch.full((space.dim,), math.pi, dtype=torch.float64))


def test_zero_offsets_rebuild_the_start_exactly(extended):
    pos = _xyz(extended)
    space = TorsionSpace(extended.topology, pos)
    x = space.to_config(torch.zeros(2, space.dim, dtype=torch.float64))
    assert x.shape == (2, len(pos), 3)
    assert torch.allclose(x[1], torch.as_tensor(pos), atol=1e-10)


def test_torsions_of_a_helix_rebuild_the_helix(extended):
    """Set the extended chain's torsions to those of a PeptideBuilder helix (same bond geometry)."""
    n = len(SEQ)
    phis = [-57.0] * (n - 1)
    # PeptideBuilder rebuilds the proline ring for the phi it is given; keep Pro's ring (phi) as in the start.
    phis[SEQ.index("P") - 1] = backbone_dihedrals(extended.topology, _xyz(extended))[SEQ.index("P")][0]
    helix = _pdb(PeptideBuilder.make_structure(SEQ, phis, [-47.0] * (n - 1)))
    target = torch.as_tensor(_xyz(helix))
    space = TorsionSpace(extended.topology, _xyz(extended))
    start_rmsd = kabsch_rmsd(space.start.numpy(), target.numpy())
    z = space.from_config(target[None])
    rebuilt = space.to_config(z)[0]
    rmsd_a = 10.0 * kabsch_rmsd(rebuilt.numpy(), target.numpy())
    assert 10.0 * start_rmsd > 5.0  # the two conformations really differ
    assert rmsd_a < 0.1
    # and the backbone dihedrals are those of the helix
    dih = backbone_dihedrals(extended.topology, rebuilt.numpy())
    assert all(abs(psi - (-47.0)) < 0.5 for _, psi in dih[:-1])
    # the torsion angles read back are the offsets we applied
    assert torch.allclose(space.from_config(rebuilt[None]), z, atol=1e-8)


def test_offsets_move_only_downstream_atoms(extended):
    pos = _xyz(extended)
    space = TorsionSpace(extended.topology, pos)
    col = space.labels().index("psi GLY7")
    z = torch.zeros(1, space.dim, dtype=torch.float64)
    z[0, col] = 1.0
    x = space.to_config(z)[0].numpy()
    moved = np.linalg.norm(x - pos, axis=1) > 1e-8
    residues = np.array([a.residue.index for a in extended.topology.atoms()])
    assert not moved[residues < 6].any()
    assert moved[residues > 6].all()
    # bonded distances are unchanged by a torsion move
    for bond in extended.topology.bonds():
        i, j = bond[0].index, bond[1].index
        assert abs(np.linalg.norm(x[i] - x[j]) - np.linalg.norm(pos[i] - pos[j])) < 1e-8


def test_gradcheck_float64():
    pdb = _pdb(PeptideBuilder.make_extended_structure("GYA"))
    space = TorsionSpace(pdb.topology, _xyz(pdb))
    z = (
        0.3 * torch.randn(2, space.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ).requires_grad_()
    assert torch.autograd.gradcheck(lambda q: space.to_config(q), (z,), eps=1e-6, atol=1e-6)


def test_dihedral_convention():
    p = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 1.0, 0], [0, 1.0, 1.0]], dtype=torch.float64)
    assert abs(float(dihedral(p[0], p[1], p[2], p[3])) - (-math.pi / 2)) < 1e-12


def test_bad_input_errors(extended):
    pos = _xyz(extended)
    with pytest.raises(ValueError, match="positions have shape"):
        TorsionSpace(extended.topology, pos[:-1])
    space = TorsionSpace(extended.topology, pos)
    with pytest.raises(ValueError, match=r"expects z of shape \[B, %d\]" % space.dim):
        space.to_config(torch.zeros(space.dim, dtype=torch.float64))
    # a disconnected atom (e.g. a water oxygen) is named in the error
    from openmm.app import Element, Modeller

    modeller = Modeller(extended.topology, extended.positions)
    chain = modeller.topology.addChain()
    res = modeller.topology.addResidue("HOH", chain)
    modeller.topology.addAtom("O", Element.getBySymbol("O"), res)
    xyz = np.vstack([pos, [[5.0, 5.0, 5.0]]])
    with pytest.raises(ValueError, match="atom O of residue HOH11"):
        TorsionSpace(modeller.topology, xyz)
